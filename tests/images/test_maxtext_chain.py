"""The workload images together, for real: Meta checkpoint -> MaxText conversion (converter image) -> `tpuserve
convert verify` -> MaxText's JetStream server (server image, CPU) -> a Decode request and `tpuserve bench run`
(bench image).

Real: MaxText maxtext-v0.2.3's own conversion scripts (llama_or_mistral_ckpt, then generate_param_only_checkpoint
with the argv tpuserve's converter runs), MaxText's server with JetStream, tpuserve's verify and benchmark, all
inside the built images. Test-made: the tiny Llama-architecture checkpoint (tests/images/tiny.py, seeded random
weights in Meta's format) and the one entry it needs in MaxText's converter table (tests/images/in_container/
convert_scanned.py). The server runs with no network; the clients join its network namespace (127.0.0.1:9000,
MaxText's fixed port), so nothing on the host can collide with it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.images import tiny
from tests.images.build import BuildResult
from tests.images.chain import SERVER_READY_SECONDS, WORK, Converted, Workspace, server_args
from tests.images.docker import DockerDaemon
from tpuserve.results import BenchmarkSummary

# Building an image from scratch takes minutes (the converter more than ten on a busy 2-core machine).
pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.mark.parametrize("layout", ["scanned", "unscanned"])
def test_real_maxtext_conversion_passes_tpuserve_verify(
    layout: str,
    converted: Converted,
    docker_daemon: DockerDaemon,
    built_image: Callable[[str], BuildResult],
    workspace: Workspace,
) -> None:
    items = converted.scanned_items if layout == "scanned" else converted.unscanned_items
    result = docker_daemon.run(
        "run", "--rm", "--network", "none", "-v", f"{workspace.host}:{WORK}", built_image("converter").tag,
        "convert", "verify", items, "--model", "llama2-7b", "--layout", layout, "--arch-json", f"{WORK}/arch.json",
        "--json",
        check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"]
    assert report["foundLayout"] == layout
    assert report["parameterCount"] == tiny.TINY.num_parameters


@pytest.fixture(scope="module")
def server(
    converted: Converted, docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], workspace: Workspace
) -> Iterator[str]:
    """MaxText's JetStream server (server image) on the converted checkpoint; yields its container name."""
    name = f"tpuserve-test-server-{uuid.uuid4().hex[:8]}"
    docker_daemon.run(
        "run", "--detach", "--name", name, "--network", "none", "-v", f"{workspace.host}:{WORK}:ro",
        built_image("server").tag, *server_args(converted, prometheus_port=9100),
    )  # fmt: skip
    try:
        yield name
    finally:
        logs = docker_daemon.run("logs", "--tail", "60", name, check=False)
        print(f"server log tail:\n{logs.stdout}{logs.stderr}")
        docker_daemon.run("rm", "--force", name, check=False)


def _decode(
    daemon: DockerDaemon, bench_image: str, server: str, ws: Workspace, prompt: str
) -> dict[str, object] | None:
    result = daemon.run(
        "run", "--rm", "--network", f"container:{server}", "-v", f"{ws.host}:{WORK}:ro", "--entrypoint", "python3",
        bench_image, f"{WORK}/scripts/decode_once.py", "127.0.0.1:9000", prompt, "8",
        check=False, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_server_image_serves_the_converted_checkpoint(
    server: str, docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], workspace: Workspace
) -> None:
    bench_image = built_image("bench").tag
    deadline = time.monotonic() + SERVER_READY_SECONDS
    answer = None
    while answer is None:
        state = docker_daemon.run("inspect", "--format", "{{.State.Running}}", server).stdout.strip()
        assert state == "true", docker_daemon.run("logs", "--tail", "80", server, check=False).stderr
        assert time.monotonic() < deadline, "the server did not answer in time"
        answer = _decode(docker_daemon, bench_image, server, workspace, "The capital of France is")
        if answer is None:
            time.sleep(5)
    token_ids = answer["token_ids"]
    # The first token comes from the prefill, then up to max_tokens decode steps.
    assert isinstance(token_ids, list)
    assert 0 < len(token_ids) <= 9
    assert all(0 <= t < tiny.TINY.vocab_size for t in token_ids)


def test_bench_image_benchmarks_the_server(
    server: str, docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], workspace: Workspace
) -> None:
    bench_image = built_image("bench").tag
    result = docker_daemon.run(
        "run", "--rm", "--network", f"container:{server}", "-v", f"{workspace.host}:{WORK}", bench_image,
        "bench", "run", "--target", "127.0.0.1:9000", "--dataset", "synthetic",
        "--synthetic-input-length", "8", "--synthetic-output-length", "4", "--tokenizer", tiny.TINY.maxtext_tokenizer,
        "--num-prompts", "4", "--max-output-length", "4", "--warmup", "none",
        "--server-wait", str(SERVER_READY_SECONDS),
        "--request-timeout", "300", "--output", f"{WORK}/bench", "--termination-message-path", f"{WORK}/bench.summary",
        "--progress", "never",
        check=False, timeout=SERVER_READY_SECONDS + 600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Successful requests: 4" in result.stdout
    summary = BenchmarkSummary.from_termination_message((workspace.host / "bench.summary").read_text())
    assert summary.successful_requests == 4
    assert summary.failed_requests == 0
    assert summary.total_output_tokens > 0
