"""The JetStream servers' dashboard: the JetStream/MaxText servers' own metrics (../shared/facts/jetstream-maxtext.md),
scraped when an InferenceServer sets spec.metrics.podMonitoring or serviceMonitor (label id = pod name)."""

from __future__ import annotations

from tpuserve_dev.chart.grafana import Dashboard, Panel, Row, Target, Variable, p50_p99, server_dashboard

# v0.2.2 exports these two gauges (label id = pod name, idx = generate engine)...
JS_PREFILL_BACKLOG = "jetstream_prefill_backlog_size"
JS_SLOTS_AVAILABLE = "jetstream_slots_available_percentage"
# ...newer MaxText servers add these.
JS_TRANSFER_BACKLOG = "jetstream_transfer_backlog_size"
JS_GENERATE_BACKLOG = "jetstream_generate_backlog_size"
JS_SLOTS_USED = "jetstream_slots_used_percentage"
JS_TTFT = "jetstream_time_to_first_token"  # histogram
JS_TPOT = "jetstream_time_per_output_token"  # histogram
JS_REQUEST_SUCCESS = "jetstream_request_success_count"  # counter (exported as ..._total)
JS_QUEUE_DURATION = "jetstream_queue_duration"

DESCRIPTION = (
    "The JetStream/MaxText servers' own metrics, when an InferenceServer sets spec.metrics.podMonitoring or "
    "serviceMonitor (label id = pod name). v0.2.2 servers export the backlog and slot gauges only."
)


def jetstream_dashboard() -> Dashboard:
    pod = 'id=~"$pod"'
    newer = [
        Panel(
            "Time to first token p50 / p99 (server side)",
            "From jetstream_time_to_first_token (newer MaxText servers only).",
            p50_p99(JS_TTFT, selector=f"{{{pod}}}", newer_server_only=True),
            unit="s",
        ),
        Panel(
            "Time per output token p50 / p99 (server side)",
            "From jetstream_time_per_output_token (newer MaxText servers only).",
            p50_p99(JS_TPOT, selector=f"{{{pod}}}", newer_server_only=True),
            unit="s",
        ),
        Panel(
            "Generate and transfer backlogs",
            "Requests waiting between prefill and decode (newer servers only).",
            [
                Target(f"{JS_GENERATE_BACKLOG}{{{pod}}}", "generate {{id}}", newer_server_only=True),
                Target(f"{JS_TRANSFER_BACKLOG}{{{pod}}}", "transfer {{id}}", newer_server_only=True),
            ],
        ),
        Panel(
            "Successful requests per second",
            "From jetstream_request_success_count (newer servers only).",
            [
                Target(
                    f"sum by (id) (rate({JS_REQUEST_SUCCESS}_total{{{pod}}}[$__rate_interval]))",
                    "{{id}}",
                    newer_server_only=True,
                )
            ],
            unit="reqps",
        ),
    ]
    servers = Variable("pod", "Server pod", f"label_values({JS_PREFILL_BACKLOG}, id)")
    return server_dashboard(
        "jetstream",
        "JetStream",
        DESCRIPTION,
        servers,
        [
            Row(
                "Queue and slots (every JetStream version)",
                [
                    Panel(
                        "Prefill backlog",
                        "Requests waiting for prefill; GKE autoscales on it.",
                        [Target(f"{JS_PREFILL_BACKLOG}{{{pod}}}", "{{id}}")],
                    ),
                    Panel(
                        "Decode slots available",
                        "Free decode slots in the batch, per generate engine (idx); 0 means the batch is full.",
                        [Target(f"avg by (id) ({JS_SLOTS_AVAILABLE}{{{pod}}})", "{{id}}")],
                        unit="percentunit",
                    ),
                ],
            ),
            Row("Latency and throughput (newer MaxText servers)", newer),
        ],
    )
