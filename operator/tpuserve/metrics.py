"""The operator's Prometheus metrics. Names, types and labels are documented in docs/metrics.md (a contract
with the Helm chart's dashboards); tests/operator/test_metrics_doc.py keeps the two in sync."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from time import perf_counter

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tpuserve.api import KIND_NAMES, BenchmarkRun, InferenceServer, LlamaCheckpoint
from tpuserve.results import BenchmarkSummary, LatencyStats

RUN_LABELS = ("namespace", "name", "server", "model", "accelerator", "topology")
STATS = ("mean", "p50", "p90", "p95", "p99", "max")
KINDS = KIND_NAMES
RECONCILE_RESULTS = ("ok", "retry", "error", "invalid")
CHILDREN = (
    (LlamaCheckpoint.KIND, "Job"),
    (InferenceServer.KIND, "Deployment"),
    (InferenceServer.KIND, "Service"),
    (InferenceServer.KIND, "PodMonitoring"),
    (InferenceServer.KIND, "ServiceMonitor"),
    (BenchmarkRun.KIND, "Job"),
)
# The kinds woken when a dependency changes (a server by its checkpoint, a run by its server).
DEPENDANTS = (InferenceServer.KIND, BenchmarkRun.KIND)
GCS_OPERATIONS = ("check_source",)


class OperatorMetrics:
    """Every metric of the operator, registered on one registry (the default one in production)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        def run_gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, [*RUN_LABELS, *extra], registry=registry)

        self.registry = registry
        self.request_throughput = run_gauge("tpuserve_benchmark_request_throughput", "Successful requests per second.")
        self.input_throughput = run_gauge("tpuserve_benchmark_input_throughput_tokens", "Input tokens per second.")
        self.output_throughput = run_gauge("tpuserve_benchmark_output_throughput_tokens", "Output tokens per second.")
        self.successful_requests = run_gauge("tpuserve_benchmark_successful_requests", "Requests that completed.")
        self.failed_requests = run_gauge("tpuserve_benchmark_failed_requests", "Requests that failed.")
        self.duration = run_gauge("tpuserve_benchmark_duration_seconds", "First request sent to last response.")
        self.latencies: dict[str, Gauge] = {
            "ttft_ms": run_gauge("tpuserve_benchmark_ttft_seconds", "Time to first token.", "stat"),
            "tpot_ms": run_gauge("tpuserve_benchmark_tpot_seconds", "JetStream TPOT (latency / tokens).", "stat"),
            "decode_tpot_ms": run_gauge("tpuserve_benchmark_decode_tpot_seconds", "Decode time per token.", "stat"),
            "itl_ms": run_gauge("tpuserve_benchmark_itl_seconds", "Inter-token latency.", "stat"),
            "latency_ms": run_gauge("tpuserve_benchmark_latency_seconds", "End-to-end request latency.", "stat"),
        }
        self.goodput = run_gauge("tpuserve_benchmark_goodput_requests", "Requests per second that met every SLO.")
        self.cost = run_gauge(
            "tpuserve_benchmark_cost_per_million_output_tokens_usd", "USD per million output tokens (on-demand)."
        )
        self.roofline = run_gauge("tpuserve_benchmark_roofline_efficiency", "Output throughput / decode ceiling.")
        self.completion = run_gauge("tpuserve_benchmark_completion_timestamp_seconds", "When the run finished.")
        self.succeeded = run_gauge("tpuserve_benchmark_succeeded", "1 if the run succeeded, 0 if it failed.")
        self.objects = Gauge(
            "tpuserve_objects", "Objects by kind and phase.", ["kind", "namespace", "phase"], registry=registry
        )
        self.reconciles = Counter("tpuserve_reconcile", "Reconcile passes.", ["kind", "result"], registry=registry)
        self.reconcile_seconds = Histogram(
            "tpuserve_reconcile_duration_seconds",
            "Time of one reconcile pass.",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.children_created = Counter(
            "tpuserve_children_created", "Children created.", ["kind", "child"], registry=registry
        )
        self.status_updates = Counter("tpuserve_status_updates", "Status patches written.", ["kind"], registry=registry)
        self.wakeups = Counter(
            "tpuserve_dependency_wakeups", "Dependants woken by a dependency change.", ["kind"], registry=registry
        )
        self.gcs_errors = Counter(
            "tpuserve_gcs_errors", "Transient GCS failures (retried).", ["operation"], registry=registry
        )
        self.info = Gauge(
            "tpuserve_operator_info", "The operator's version (always 1).", ["version"], registry=registry
        )
        self._runs: dict[tuple[str, str], tuple[str, ...]] = {}
        self._phases: dict[tuple[str, str, str], str] = {}  # (kind, namespace, name) -> phase
        self._deleted: set[str] = set()  # uids of deleted objects
        self._lock = threading.Lock()

    def started(self) -> None:
        """Series that dashboards read before anything happened: the info gauge and zeroed counters."""
        from tpuserve import __version__

        self.info.labels(__version__).set(1)
        for kind in KINDS:
            for result in RECONCILE_RESULTS:
                self.reconciles.labels(kind, result)
            self.status_updates.labels(kind)
            self.reconcile_seconds.labels(kind)
        for kind, child in CHILDREN:
            self.children_created.labels(kind, child)
        for kind in DEPENDANTS:
            self.wakeups.labels(kind)
        for operation in GCS_OPERATIONS:
            self.gcs_errors.labels(operation)

    def _run_gauges(self) -> list[Gauge]:
        return [
            self.request_throughput,
            self.input_throughput,
            self.output_throughput,
            self.successful_requests,
            self.failed_requests,
            self.duration,
            self.goodput,
            self.cost,
            self.roofline,
            self.completion,
            self.succeeded,
        ]

    # --- finished runs ----------------------------------------------------------------------------------
    def record_run(
        self,
        labels: Mapping[str, str],
        summary: BenchmarkSummary,
        *,
        succeeded: bool,
        completion_timestamp: float,
        cost: float | None,
        roofline: float | None,
    ) -> None:
        values = tuple(labels.get(k, "") for k in RUN_LABELS)
        key = (values[0], values[1])
        with self._lock:
            if self._runs.get(key) not in (None, values):
                self._remove_values(self._runs[key])
            self._runs[key] = values
        self.request_throughput.labels(*values).set(summary.request_throughput)
        self.input_throughput.labels(*values).set(summary.input_throughput)
        self.output_throughput.labels(*values).set(summary.output_throughput)
        self.successful_requests.labels(*values).set(summary.successful_requests)
        self.failed_requests.labels(*values).set(summary.failed_requests)
        self.duration.labels(*values).set(summary.duration_seconds)
        for field, gauge in self.latencies.items():
            stats: LatencyStats | None = getattr(summary, field)
            if stats is None:
                continue
            for stat, ms in zip(
                STATS, (stats.mean, stats.median, stats.p90, stats.p95, stats.p99, stats.max), strict=True
            ):
                gauge.labels(*values, stat).set(ms / 1000.0)
        if summary.goodput is not None:
            self.goodput.labels(*values).set(summary.goodput.rate)
        if cost is not None:
            self.cost.labels(*values).set(cost)
        if roofline is not None:
            self.roofline.labels(*values).set(roofline)
        self.completion.labels(*values).set(completion_timestamp)
        self.succeeded.labels(*values).set(1 if succeeded else 0)

    def forget_run(self, namespace: str, name: str) -> None:
        with self._lock:
            values = self._runs.pop((namespace, name), None)
        if values is not None:
            self._remove_values(values)

    def _remove_values(self, values: tuple[str, ...]) -> None:
        for gauge in self._run_gauges():
            with suppress(KeyError):
                gauge.remove(*values)
        for gauge in self.latencies.values():
            for stat in STATS:
                with suppress(KeyError):
                    gauge.remove(*values, stat)

    # --- objects by phase -------------------------------------------------------------------------------
    def set_phase(self, kind: str, namespace: str, name: str, phase: str | None, uid: str | None = None) -> None:
        """Count the object under its phase; phase None (deletion) forgets it. A late reconcile of an object
        already deleted (same uid) does not bring it back."""
        key = (kind, namespace, name)
        with self._lock:
            if phase is not None and uid is not None and uid in self._deleted:
                return
            if phase is None and uid is not None:
                self._deleted.add(uid)
            old = self._phases.pop(key, None)
            if phase is not None:
                self._phases[key] = phase
        if old is not None:
            self.objects.labels(kind, namespace, old).dec()
        if phase is not None:
            self.objects.labels(kind, namespace, phase).inc()

    # --- reconciles -------------------------------------------------------------------------------------
    @contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.reconcile_seconds.labels(kind).observe(perf_counter() - start)


_default: OperatorMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> OperatorMetrics:
    """The process-wide metrics on the default registry (created once; kopf may restart in one process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = OperatorMetrics()
        return _default


def serve(host: str, port: int) -> None:
    """Start the /metrics HTTP endpoint in a daemon thread (port 0: disabled)."""
    if port:
        start_http_server(port, addr=host)
