"""The operator's own dashboard: reconciles, errors, durations, objects by phase, process resources (the
`tpuserve_*` metrics of docs/metrics.md and prometheus_client's process collector)."""

from __future__ import annotations

from tpuserve_dev.chart.grafana import Dashboard, Panel, Row, Target, Variable, histogram_quantile

RECONCILES = "tpuserve_reconcile_total"  # counter; labels kind, result (ok | retry | error | invalid)
RECONCILE_DURATION = "tpuserve_reconcile_duration_seconds"  # histogram; label kind
OBJECTS = "tpuserve_objects"  # gauge; labels kind, namespace, phase
CHILDREN_CREATED = "tpuserve_children_created_total"  # counter; labels kind, child
STATUS_UPDATES = "tpuserve_status_updates_total"  # counter; label kind
WAKEUPS = "tpuserve_dependency_wakeups_total"  # counter; label kind
GCS_ERRORS = "tpuserve_gcs_errors_total"  # counter; label operation
OPERATOR_INFO = "tpuserve_operator_info"  # gauge 1; label version
PROCESS_RSS = "process_resident_memory_bytes"  # prometheus_client's default process collector
PROCESS_CPU = "process_cpu_seconds_total"


def operator_dashboard() -> Dashboard:
    return Dashboard(
        uid="tpuserve-operator",
        title="tpuserve / Operator",
        description="The operator's health: reconciles, errors, durations, objects by phase, process resources.",
        time_from="now-6h",
        # The scrape job(s) of the operator: the ones that export its info metric (present from start-up).
        variables=[Variable("job", "Operator scrape job", f"label_values({OPERATOR_INFO}, job)")],
        rows=[
            Row(
                "Objects",
                [
                    Panel(
                        "Objects by kind and phase",
                        "LlamaCheckpoints, InferenceServers and BenchmarkRuns the operator sees, by phase.",
                        [Target(f"sum by (kind, phase) ({OBJECTS})", "{{kind}} {{phase}}")],
                        width=12,
                    ),
                    Panel(
                        "Failed objects",
                        "Objects in phase Failed: `kubectl describe` them for the reason.",
                        [Target(f'sum by (kind) ({OBJECTS}{{phase="Failed"}})', "{{kind}}", instant=True)],
                        kind="stat",
                        width=12,
                    ),
                ],
            ),
            Row(
                "Reconciles",
                [
                    Panel(
                        "Reconciles per second by kind and result",
                        "Handler runs; result=error retries with backoff.",
                        [
                            Target(
                                f"sum by (kind, result) (rate({RECONCILES}[$__rate_interval]))", "{{kind}} {{result}}"
                            )
                        ],
                        unit="ops",
                        width=8,
                    ),
                    Panel(
                        "Reconcile errors (last hour)",
                        "Reconciles that raised, by kind.",
                        # The operator pre-initialises every (kind, result): no errors shows 0, not "No data".
                        [
                            Target(
                                f'sum by (kind) (increase({RECONCILES}{{result=~"error|invalid"}}[1h]))',
                                "{{kind}}",
                            )
                        ],
                        width=8,
                    ),
                    Panel(
                        "Reconcile duration p50 / p99",
                        "From the reconcile duration histogram.",
                        [
                            Target(histogram_quantile("0.5", RECONCILE_DURATION, by="kind, le"), "p50 {{kind}}"),
                            Target(histogram_quantile("0.99", RECONCILE_DURATION, by="kind, le"), "p99 {{kind}}"),
                        ],
                        unit="s",
                        width=8,
                    ),
                ],
            ),
            Row(
                "Work",
                [
                    Panel(
                        "Children created",
                        "Jobs, Deployments, Services and monitors created; flat across an operator restart.",
                        [Target(f"sum by (kind, child) (increase({CHILDREN_CREATED}[$__rate_interval]))", "{{child}}")],
                        kind="timeseries",
                        width=6,
                    ),
                    Panel(
                        "Status updates",
                        "Status patches written (only when something changed).",
                        [Target(f"sum by (kind) (rate({STATUS_UPDATES}[$__rate_interval]))", "{{kind}}")],
                        unit="ops",
                        width=6,
                    ),
                    Panel(
                        "Dependency wake-ups",
                        "Servers woken by a checkpoint becoming Ready, runs woken by a server becoming Ready.",
                        [Target(f"sum by (kind) (increase({WAKEUPS}[$__rate_interval]))", "{{kind}}")],
                        width=6,
                    ),
                    Panel(
                        "GCS retries (last hour)",
                        "GCS calls that failed transiently and were retried; 0 is normal.",
                        [Target(f"sum by (operation) (increase({GCS_ERRORS}[1h]))", "{{operation}}")],
                        width=6,
                    ),
                ],
            ),
            Row(
                "Process",
                [
                    Panel(
                        "Up",
                        "1 when Prometheus can scrape the operator.",
                        [Target('up{job=~"$job"}', "{{instance}}", instant=True)],
                        kind="stat",
                        width=4,
                    ),
                    Panel(
                        "Version",
                        "The operator version running.",
                        [Target(f'{OPERATOR_INFO}{{job=~"$job"}}', "{{version}}", instant=True)],
                        kind="stat",
                        width=4,
                        options={"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
                    ),
                    Panel(
                        "Resident memory",
                        "Operator RSS (grows with the number of watched objects).",
                        [Target(f'{PROCESS_RSS}{{job=~"$job"}}', "{{instance}}")],
                        unit="bytes",
                        width=8,
                    ),
                    Panel(
                        "CPU",
                        "Operator CPU cores used.",
                        [Target(f'rate({PROCESS_CPU}{{job=~"$job"}}[$__rate_interval])', "{{instance}}")],
                        unit="short",
                        width=8,
                    ),
                ],
            ),
        ],
    )
