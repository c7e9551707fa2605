"""Fully populated status objects, built from the models, for checking that nothing the operator writes is
pruned by the CRD schema."""

from __future__ import annotations

from datetime import UTC, datetime

from tpuserve.api import (
    BenchmarkConditionType,
    BenchmarkPhase,
    BenchmarkRunStatus,
    CheckpointConditionType,
    CheckpointPhase,
    Condition,
    ConditionStatus,
    Endpoints,
    InferenceServerStatus,
    LlamaCheckpointStatus,
    MeasuredServer,
    ServerConditionType,
    ServerPhase,
    TpuStatus,
)
from tpuserve.results import BenchmarkSummary, Goodput, LatencyStats, StageBrief

T0 = datetime(2026, 11, 27, 20, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 27, 20, 5, 6, tzinfo=UTC)


def condition(kind: str, reason: str) -> Condition:
    return Condition(
        type=kind,
        status=ConditionStatus.TRUE,
        reason=reason,
        message=f"{kind} because {reason}",
        last_transition_time=T0,
        observed_generation=1,
    )


def checkpoint_status() -> LlamaCheckpointStatus:
    return LlamaCheckpointStatus(
        observed_generation=1,
        phase=CheckpointPhase.READY,
        conditions=[
            condition(CheckpointConditionType.CONVERTED, "JobSucceeded"),
            condition(CheckpointConditionType.READY, "CheckpointVerified"),
        ],
        scanned_path="gs://models-bucket/llama2-7b/maxtext/bf16/scanned/0/items",
        unscanned_path="gs://models-bucket/llama2-7b/maxtext/bf16/unscanned/checkpoints/0/items",
        manifest_path="gs://models-bucket/llama2-7b/maxtext/tpuserve-manifest.json",
        parameter_count=6738415616,
        job_name="llama2-7b-convert-1",
        start_time=T0,
        completion_time=T1,
        message="converted in 5m6s",
    )


def server_status() -> InferenceServerStatus:
    return InferenceServerStatus(
        observed_generation=2,
        phase=ServerPhase.READY,
        conditions=[
            condition(ServerConditionType.CHECKPOINT_READY, "CheckpointReady"),
            condition(ServerConditionType.SCHEDULED, "PodsBound"),
            condition(ServerConditionType.AVAILABLE, "ReplicasReady"),
        ],
        endpoints=Endpoints(grpc="server.ns.svc.cluster.local:9000", http="http://server.ns.svc.cluster.local:8000"),
        replicas=1,
        ready_replicas=1,
        tpu=TpuStatus(accelerator="tpu-v5-lite-podslice", topology="2x4", chips=8, machine_type="ct5lp-hightpu-8t"),
        checkpoint_path="gs://models-bucket/llama2-7b/maxtext/bf16/unscanned/checkpoints/0/items",
        deployment_name="server",
        service_name="server",
        message="1/1 replicas ready",
    )


def _stats(base: float) -> LatencyStats:
    return LatencyStats(mean=base * 1.1, median=base, p90=base * 1.5, p95=base * 1.7, p99=base * 2.0, max=base * 3.0)


def benchmark_status() -> BenchmarkRunStatus:
    summary = BenchmarkSummary(
        request_rate=4.0,
        successful_requests=995,
        failed_requests=5,
        duration_seconds=305.366344,
        total_input_tokens=217011,
        total_output_tokens=934964,
        request_throughput=3.26,
        input_throughput=710.66,
        output_throughput=3061.78,
        ttft_ms=_stats(140039.96),
        tpot_ms=_stats(164.01),
        decode_tpot_ms=_stats(31.5),
        itl_ms=_stats(30.25),
        latency_ms=_stats(170000.5),
        goodput=Goodput(requests=120, share=0.1206, rate=0.393),
        errors={"DEADLINE_EXCEEDED": 5},
        stages=[
            StageBrief(
                request_rate=4.0,
                successful_requests=995,
                failed_requests=5,
                request_throughput=3.26,
                output_throughput=3061.78,
                ttft_p50_ms=140039.96,
                ttft_p99_ms=278498.91,
                decode_tpot_p50_ms=31.5,
            ),
            StageBrief(
                concurrency=8,
                successful_requests=10,
                failed_requests=0,
                request_throughput=1.5,
                output_throughput=700.25,
            ),
        ],
        results_uri="gs://results-bucket/run1/results.json",
        message="5 requests timed out",
    )
    return BenchmarkRunStatus(
        observed_generation=1,
        phase=BenchmarkPhase.SUCCEEDED,
        conditions=[
            condition(BenchmarkConditionType.SERVER_READY, "ServerReady"),
            condition(BenchmarkConditionType.COMPLETE, "JobSucceeded"),
        ],
        job_name="bench-1",
        start_time=T0,
        completion_time=T1,
        server=MeasuredServer(
            name="server",
            endpoint="server.ns.svc.cluster.local:9000",
            model="llama2-7b",
            accelerator="tpu-v5-lite-podslice",
            topology="2x4",
            chips=8,
            machine_type="ct5lp-hightpu-8t",
            replicas=1,
            image="us-docker.pkg.dev/cloud-tpu-images/inference/maxengine-server:v0.2.2",
            engine_args=["per_device_batch_size=11", "ici_tensor_parallelism=-1"],
        ),
        results=summary,
        results_uri="gs://results-bucket/run1",
        cost_per_million_output_tokens=0.871,
        roofline_efficiency=0.44,
        message="995 of 1000 requests succeeded",
    )
