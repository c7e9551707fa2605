"""The operator's own dashboard: reconciles, errors, durations, objects by phase, process resources (the
`tpuserve_*` metrics of docs/metrics.md and prometheus_client's process collector)."""

from __future__ import annotations

from typing import Any

from tpuserve_dev.chart.grafana import Dashboard, Panel, Row, Target, Variable, by, increase, p50_p99, rate

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
JOBS = '{job=~"$job"}'  # the scrape jobs picked by the dashboard variable


def _per_second(title: str, description: str, counter: str, labels: str, *, width: int) -> Panel:
    return Panel(title, description, [by("sum", labels, rate(counter))], unit="ops", width=width)


def _increase(title: str, description: str, counter: str, labels: str, legend: str = "", window: str = "") -> Panel:
    """Events counted by the labels, per rate interval or in `window` (quarter-width: the Work row)."""
    target = by("sum", labels, increase(counter, window) if window else increase(counter), legend)
    return Panel(title, description, [target], width=6)


def _stat(title: str, description: str, series: str, legend: str, options: dict[str, Any] | None = None) -> Panel:
    """The latest value of a series, small."""
    target = Target(series, legend, instant=True)
    return Panel(title, description, [target], kind="stat", width=4, options=options or {})


def _per_instance(title: str, description: str, series: str, unit: str) -> Panel:
    """One line per operator process (scrape instance)."""
    return Panel(title, description, [Target(series, "{{instance}}")], unit=unit, width=8)


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
                        [by("sum", "kind, phase", OBJECTS)],
                    ),
                    Panel(
                        "Failed objects",
                        "Objects in phase Failed: `kubectl describe` them for the reason.",
                        [by("sum", "kind", f'{OBJECTS}{{phase="Failed"}}', instant=True)],
                        kind="stat",
                    ),
                ],
            ),
            Row(
                "Reconciles",
                [
                    _per_second(
                        "Reconciles per second by kind and result",
                        "Handler runs; result=error retries with backoff.",
                        RECONCILES,
                        "kind, result",
                        width=8,
                    ),
                    Panel(
                        "Reconcile errors (last hour)",
                        "Reconciles that raised, by kind.",
                        # The operator pre-initialises every (kind, result): no errors shows 0, not "No data".
                        [by("sum", "kind", increase(f'{RECONCILES}{{result=~"error|invalid"}}', "1h"))],
                        width=8,
                    ),
                    Panel(
                        "Reconcile duration p50 / p99",
                        "From the reconcile duration histogram.",
                        p50_p99(RECONCILE_DURATION, by="kind, le", legend="p{p} {{kind}}"),
                        unit="s",
                        width=8,
                    ),
                ],
            ),
            Row(
                "Work",
                [
                    _increase(
                        "Children created",
                        "Jobs, Deployments, Services and monitors created; flat across an operator restart.",
                        CHILDREN_CREATED,
                        "kind, child",
                        legend="{{child}}",
                    ),
                    _per_second(
                        "Status updates",
                        "Status patches written (only when something changed).",
                        STATUS_UPDATES,
                        "kind",
                        width=6,
                    ),
                    _increase(
                        "Dependency wake-ups",
                        "Servers woken by a checkpoint becoming Ready, runs woken by a server becoming Ready.",
                        WAKEUPS,
                        "kind",
                    ),
                    _increase(
                        "GCS retries (last hour)",
                        "GCS calls that failed transiently and were retried; 0 is normal.",
                        GCS_ERRORS,
                        "operation",
                        window="1h",
                    ),
                ],
            ),
            Row(
                "Process",
                [
                    _stat("Up", "1 when Prometheus can scrape the operator.", f"up{JOBS}", "{{instance}}"),
                    _stat(
                        "Version",
                        "The operator version running.",
                        f"{OPERATOR_INFO}{JOBS}",
                        "{{version}}",
                        options={"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
                    ),
                    _per_instance(
                        "Resident memory",
                        "Operator RSS (grows with the number of watched objects).",
                        f"{PROCESS_RSS}{JOBS}",
                        "bytes",
                    ),
                    _per_instance("CPU", "Operator CPU cores used.", rate(f"{PROCESS_CPU}{JOBS}"), "short"),
                ],
            ),
        ],
    )
