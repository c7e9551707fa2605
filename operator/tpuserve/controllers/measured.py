"""What a benchmark measured, typed: the server's slice, image, arguments as rendered, and the engine facts the
roofline needs (weight dtype, quantization, decode batch) from the InferenceServer's model, not parsed back
from argument strings; and the figures derived from them (cost per million output tokens, roofline efficiency).
"""

from __future__ import annotations

from typing import Any

from tpuserve import llama, tpu
from tpuserve.api import InferenceServer, MeasuredServer, Runtime
from tpuserve.controllers import render, render_vllm
from tpuserve.results import BenchmarkSummary, readable
from tpuserve.settings import OperatorSettings


def measured_server(
    server: InferenceServer, server_status: dict[str, Any], target: str, default_image: str
) -> MeasuredServer:
    """What is measured, from the InferenceServer's model: typed weight dtype, quantization and decode batch."""
    spec = server.spec
    tpu_slice = spec.tpu.resolve()
    if spec.runtime == Runtime.VLLM_TPU:
        # vLLM loads the published weights as they are (bfloat16 for the catalog's Llama 3.x); no AQT here.
        weight_dtype, quantization, batch = "bfloat16", None, spec.vllm_settings().max_num_seqs
    else:
        engine = spec.engine
        weight_dtype = str(engine.weight_dtype)
        quantization = str(engine.quantization) if engine.quantization else None
        batch = max(int(engine.per_device_batch_size * tpu_slice.chips), 1)  # MaxText's slots are per chip
    return MeasuredServer(
        name=server.metadata.get("name"),
        endpoint=target,
        model=spec.model,
        accelerator=tpu_slice.accelerator_label,
        topology=tpu_slice.topology,
        chips=tpu_slice.chips,
        machine_type=tpu_slice.machine.name,
        replicas=int(server_status.get("readyReplicas") or spec.replicas),
        image=spec.effective_image(default_image),
        engine_args=_server_args(server, server_status.get("checkpointPath") or ""),
        weight_dtype=weight_dtype,
        quantization=quantization,
        decode_batch=batch,
    )


def _server_args(server: InferenceServer, checkpoint_path: str) -> list[str]:
    """The server's arguments as rendered: MaxText key=value for JetStream, vLLM --flag=value for vLLM."""
    if server.spec.runtime == Runtime.VLLM_TPU:
        hub = server.spec.hugging_face
        source = render_vllm.WeightSource(checkpoint_path, hub=hub is not None, revision=hub.revision if hub else None)
        return render_vllm.vllm_args(server.spec, source)
    return render.server_args(server.spec, checkpoint_path)


def derived(
    settings: OperatorSettings, server: str | None, m: MeasuredServer | None, summary: BenchmarkSummary
) -> tuple[float | None, float | None]:
    """Cost per million output tokens and roofline efficiency, for runs against a known TPU slice."""
    if server is None or m is None or not m.accelerator or not m.topology or summary.output_throughput <= 0:
        return None, None
    try:
        tpu_slice = tpu.resolve(m.accelerator, m.topology)
    except tpu.CatalogError:
        return None, None
    replicas = max(m.replicas or 1, 1)
    price = settings.usd_per_chip_hour(tpu_slice.generation)
    cost = tpu.cost_per_million_tokens(tpu_slice, summary.output_throughput / replicas, price)
    roofline = None
    if m.model in llama.MODELS and m.decode_batch and summary.successful_requests > 0:
        arch = llama.arch(m.model)
        dtype = m.weight_dtype or "bfloat16"
        weight_bytes = arch.weight_bytes(llama.stored_weight_dtype(dtype, m.quantization))
        # Mean live context during decode: the prompt plus half the answer.
        context = (summary.total_input_tokens + summary.total_output_tokens / 2) / summary.successful_requests
        ceiling = tpu.decode_roofline_tokens_per_second(
            tpu_slice, weight_bytes, arch.kv_bytes_per_token(dtype), m.decode_batch, context
        )
        roofline = summary.output_throughput / (ceiling * replicas)
    return readable(cost), (readable(roofline) if roofline is not None else None)
