"""A BenchmarkRun's Job: `tpuserve bench run` with arguments from the spec and what reconcile resolved (the
target, the server's model and tokenizer, the protocol)."""

from __future__ import annotations

import math
from typing import Any

from tpuserve.api import BenchmarkRun, BenchmarkRunSpec, DatasetName, OpenAISpec, Protocol
from tpuserve.controllers import naming, pod_security
from tpuserve.controllers.render.common import (
    child_meta,
    env_list,
    number,
    pod_annotations,
    quantities,
    render_template,
    tolerations,
)
from tpuserve.settings import OperatorSettings

# The container's name, which the operator reads the results (termination message) of.
BENCH_CONTAINER = "bench"
# The benchmark gets this long after its own --timeout to write partial results before the Job is killed.
BENCH_DEADLINE_GRACE_SECONDS = 120
# The OpenAI API key is mounted from its Secret as a file (never an argument or a plain env value).
API_KEY_PATH = "/var/run/tpuserve/api-key/key"


def _rate_text(rate: float) -> str:
    return "inf" if math.isinf(rate) else number(rate)


def bench_args(
    spec: BenchmarkRunSpec,
    target: str,
    *,
    model: str | None,
    tokenizer: str | None,
    protocol: Protocol = Protocol.JETSTREAM,
) -> list[str]:
    args = ["bench", "run", "--target", target, "--dataset", str(spec.dataset.name)]
    if protocol == Protocol.OPENAI:
        openai = spec.openai or OpenAISpec()
        args += ["--protocol", str(protocol), "--endpoint", str(openai.endpoint)]
        if openai.ignore_eos:
            args += ["--ignore-eos"]
        if openai.api_key_secret is not None:
            args += ["--api-key-file", API_KEY_PATH]
    if spec.dataset.path:
        args += ["--dataset-path", spec.dataset.path]
    if spec.dataset.name == DatasetName.SYNTHETIC and spec.dataset.synthetic is not None:
        args += [
            "--synthetic-input-length",
            str(spec.dataset.synthetic.input_length),
            "--synthetic-output-length",
            str(spec.dataset.synthetic.output_length),
        ]
    # The server's tokenizer is the default for real datasets; synthetic prompts are token ids and need none
    # (a tokenizer there only decodes outputs, which a mock engine's out-of-vocabulary ids would break).
    tokenizer = spec.tokenizer_path or (tokenizer if spec.dataset.name != DatasetName.SYNTHETIC else None)
    if tokenizer:
        args += ["--tokenizer", tokenizer]
    args += ["--num-prompts", str(spec.num_prompts), "--max-output-length", str(spec.max_output_length)]
    args += ["--max-input-length", str(spec.max_input_length)]
    rates = spec.request_rates()
    if rates is None:
        args += ["--concurrency", str(spec.concurrency)]
    elif spec.sweep is not None:
        args += ["--sweep", ",".join(_rate_text(r) for r in rates)]
    else:
        args += ["--request-rate", _rate_text(rates[0])]
    if spec.burstiness is not None:
        args += ["--burstiness", number(spec.burstiness)]
    if spec.max_concurrency is not None:
        args += ["--max-concurrency", str(spec.max_concurrency)]
    args += ["--warmup", str(spec.warmup), "--seed", str(spec.seed)]
    if spec.slo is not None:
        if spec.slo.ttft_ms is not None:
            args += ["--slo-ttft-ms", number(spec.slo.ttft_ms)]
        if spec.slo.tpot_ms is not None:
            args += ["--slo-tpot-ms", number(spec.slo.tpot_ms)]
    if spec.output:
        args += ["--output", spec.output]
        if spec.save_request_outputs:
            args += ["--save-request-outputs"]
    args += ["--timeout", str(int(spec.timeout_seconds()))]
    if model:
        args += ["--model", model]
    return args


def render_bench_job(
    spec: BenchmarkRunSpec,
    owner_meta: dict[str, Any],
    settings: OperatorSettings,
    *,
    target: str,
    model: str | None,
    tokenizer: str | None,
    protocol: Protocol = Protocol.JETSTREAM,
) -> dict[str, Any]:
    node_selector = spec.node_selector or settings.benchmark_node_selector
    return render_template(
        "job-bench.yaml.j2",
        meta=child_meta(
            BenchmarkRun.KIND, owner_meta, naming.job_name_bench(owner_meta["name"]), "tpuserve-bench", "benchmark"
        ),
        deadline_seconds=int(spec.timeout_seconds()) + BENCH_DEADLINE_GRACE_SECONDS,
        ttl_seconds=settings.job_ttl_seconds,
        pod_annotations=pod_annotations(spec.pod_annotations, owner_meta),
        service_account=spec.service_account_name or settings.workload_service_account,
        node_selector=node_selector,
        tolerations=tolerations(spec.tolerations or settings.benchmark_tolerations),
        container=BENCH_CONTAINER,
        image=spec.effective_image(settings.bench_image),
        pull_policy=settings.image_pull_policy,
        args=bench_args(spec, target, model=model, tokenizer=tokenizer, protocol=protocol),
        api_key_secret=spec.openai.api_key_secret if spec.openai and protocol == Protocol.OPENAI else None,
        api_key_dir=API_KEY_PATH.rsplit("/", 1)[0],
        env=env_list(settings.bench_env),
        resources=quantities(spec.bench_resources().to_wire()),
        pod_security=pod_security.RESTRICTED.pod,
        container_security=pod_security.RESTRICTED.container,
    )
