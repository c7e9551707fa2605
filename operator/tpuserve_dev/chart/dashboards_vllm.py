"""The vLLM servers' dashboard (InferenceServers of runtime vllm-tpu): vLLM's own `vllm:` metrics (vllm 0.32
vllm/v1/metrics/loggers.py, ../shared/facts/vllm-tpu.md section 3; labels model_name and engine), scraped from
the API port's /metrics by the PodMonitoring/ServiceMonitor the operator creates. The served model name is the
InferenceServer's spec.model, so the `model` variable filters by it."""

from __future__ import annotations

from tpuserve_dev.chart.grafana import Dashboard, Panel, Row, Target, Variable, p50_p99, server_dashboard

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"  # fraction 0..1 (gpu_cache_usage_perc is gone since 0.12)
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
E2E = "vllm:e2e_request_latency_seconds"
QUEUE_TIME = "vllm:request_queue_time_seconds"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
REQUEST_SUCCESS = "vllm:request_success_total"
PREEMPTIONS = "vllm:num_preemptions_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"

MODEL = 'model_name=~"$model"'

DESCRIPTION = (
    "vLLM's own metrics from InferenceServers of runtime vllm-tpu (spec.metrics.podMonitoring or "
    "serviceMonitor: /metrics on port 8000). JetStream servers: the JetStream dashboard."
)


def _quantiles(histogram: str, legend: str) -> list[Target]:
    return p50_p99(
        histogram, by="le, model_name", selector=f"{{{MODEL}}}", legend=f"{legend} p{{p}} {{{{model_name}}}}"
    )


def vllm_dashboard() -> Dashboard:
    servers = Variable("model", "Served model", f"label_values({RUNNING}, model_name)")
    return server_dashboard(
        "vllm",
        "vLLM",
        DESCRIPTION,
        servers,
        [
            Row(
                "Load (autoscaling signals)",
                [
                    Panel(
                        "Requests running / waiting",
                        "Requests in the running batch, and queued for it: GKE's vLLM HPA scales on waiting.",
                        [
                            Target(f"sum by (model_name) ({RUNNING}{{{MODEL}}})", "running {{model_name}}"),
                            Target(f"sum by (model_name) ({WAITING}{{{MODEL}}})", "waiting {{model_name}}"),
                        ],
                    ),
                    Panel(
                        "KV-cache usage",
                        "Share of the KV-cache blocks in use; near 1 the scheduler preempts sequences.",
                        [Target(f"max by (model_name) ({KV_CACHE_USAGE}{{{MODEL}}})", "{{model_name}}")],
                        unit="percentunit",
                    ),
                ],
            ),
            Row(
                "Latency (server side)",
                [
                    Panel(
                        "Time to first token p50 / p99",
                        "From vllm:time_to_first_token_seconds: queueing plus prefill, per request.",
                        _quantiles(TTFT, "TTFT"),
                        unit="s",
                    ),
                    Panel(
                        "Inter-token latency p50 / p99",
                        "From vllm:inter_token_latency_seconds: one sample per streamed output step.",
                        _quantiles(ITL, "ITL"),
                        unit="s",
                    ),
                    Panel(
                        "End-to-end latency p50 / p99",
                        "From vllm:e2e_request_latency_seconds.",
                        _quantiles(E2E, "E2E"),
                        unit="s",
                    ),
                    Panel(
                        "Queue time p50 / p99",
                        "From vllm:request_queue_time_seconds: waiting before the first schedule.",
                        _quantiles(QUEUE_TIME, "queue"),
                        unit="s",
                    ),
                ],
            ),
            Row(
                "Throughput",
                [
                    Panel(
                        "Token rates",
                        "Prompt (prefill) and generated (decode) tokens per second.",
                        [
                            Target(
                                f"sum by (model_name) (rate({PROMPT_TOKENS}{{{MODEL}}}[$__rate_interval]))",
                                "prompt {{model_name}}",
                            ),
                            Target(
                                f"sum by (model_name) (rate({GENERATION_TOKENS}{{{MODEL}}}[$__rate_interval]))",
                                "generated {{model_name}}",
                            ),
                        ],
                        unit="short",
                    ),
                    Panel(
                        "Finished requests per second",
                        "By finish reason (stop, length, abort, ...).",
                        [
                            Target(
                                f"sum by (finished_reason) (rate({REQUEST_SUCCESS}{{{MODEL}}}[$__rate_interval]))",
                                "{{finished_reason}}",
                            )
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Preemptions per second",
                        "Sequences evicted for lack of KV-cache blocks (recomputed later): lower maxNumSeqs or give "
                        "the server more HBM.",
                        [
                            Target(
                                f"sum by (model_name) (rate({PREEMPTIONS}{{{MODEL}}}[$__rate_interval]))",
                                "{{model_name}}",
                            )
                        ],
                    ),
                    Panel(
                        "Prefix-cache hit rate",
                        "Prompt tokens served from cached prefixes / prompt tokens looked up (spec.vllm."
                        "enablePrefixCaching).",
                        [
                            Target(
                                f"sum by (model_name) (rate({PREFIX_HITS}{{{MODEL}}}[$__rate_interval])) / "
                                f"sum by (model_name) (rate({PREFIX_QUERIES}{{{MODEL}}}[$__rate_interval]))",
                                "{{model_name}}",
                            )
                        ],
                        unit="percentunit",
                    ),
                ],
            ),
        ],
    )
