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

import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.images import tiny
from tests.images.build import BuildResult
from tests.images.docker import DockerDaemon
from tpuserve.convert import maxtext
from tpuserve.results import BenchmarkSummary

# Building an image from scratch takes minutes (the converter more than ten on a busy 2-core machine).
pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]

SCRIPTS = Path(__file__).parent / "in_container"
WORK = "/work"  # the workspace inside containers
RUN_NAME = "unscanned"
SERVER_READY_SECONDS = 900
CONVERSION_SECONDS = 1800


@dataclasses.dataclass
class Workspace:
    host: Path

    def container_path(self, relative: str) -> str:
        return f"{WORK}/{relative}"


@pytest.fixture(scope="module")
def workspace() -> Iterator[Workspace]:
    """A directory the images' non-root user (uid 65532) can write, with the in-container scripts and the
    tiny model's definitions."""
    host = Path(tempfile.mkdtemp(prefix="tpuserve-images-"))
    host.chmod(0o777)
    shutil.copytree(SCRIPTS, host / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (host / "arch.json").write_text(json.dumps(dataclasses.asdict(tiny.TINY)))
    (host / "table-entry.json").write_text(json.dumps(tiny.converter_table_entry(tiny.TINY)))
    for path in [host, *host.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    yield Workspace(host)
    shutil.rmtree(host, ignore_errors=True)


def _python_in(daemon: DockerDaemon, image: str, ws: Workspace, *args: str, timeout: float = CONVERSION_SECONDS) -> str:
    result = daemon.run(
        "run", "--rm", "--network", "none", "-v", f"{ws.host}:{WORK}", "--entrypoint", "python3", image, *args,
        check=False, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{args[:3]} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout


@dataclasses.dataclass(frozen=True)
class Converted:
    scanned_items: str  # container paths
    unscanned_items: str
    scanned_peak_rss: int
    unscanned_peak_rss: int


@pytest.fixture(scope="module")
def converted(
    docker_daemon: DockerDaemon, built_image: Callable[[str], BuildResult], workspace: Workspace
) -> Converted:
    """The real MaxText conversion of the tiny Meta checkpoint, scanned then unscanned, in the converter image."""
    image = built_image("converter").tag
    ws = workspace
    _python_in(docker_daemon, image, ws, f"{WORK}/scripts/make_meta_checkpoint.py", f"{WORK}/meta", f"{WORK}/arch.json")
    paths = maxtext.ConversionPaths(
        source_dir=f"{WORK}/meta",
        scanned_dir=f"{WORK}/out/scanned",
        scanned_items=f"{WORK}/out/scanned/0/items",
        unscanned_base=f"{WORK}/out",
        unscanned_run_name=RUN_NAME,
    )
    scanned = maxtext.scanned_argv("python3", tiny.TINY_NAME, paths)
    module_args = scanned[scanned.index(maxtext.SCANNED_MODULE) + 1 :]
    _python_in(
        docker_daemon, image, ws,
        f"{WORK}/scripts/peak_rss.py", f"{WORK}/scanned-rss.json", "--",
        "python3", f"{WORK}/scripts/convert_scanned.py", tiny.TINY_NAME, f"{WORK}/table-entry.json", "--", *module_args,
    )  # fmt: skip
    base_config = _python_in(
        docker_daemon,
        image,
        ws,
        "-c",
        "from tpuserve.convert.steps import find_maxtext_config; print(find_maxtext_config())",
    ).strip()
    # Exactly the argv tpuserve's converter runs, plus the tiny model's dimensions.
    unscanned = maxtext.unscanned_argv("python3", base_config, "llama2-7b", "bfloat16", paths)
    overrides = [o for o in tiny.maxtext_overrides(tiny.TINY) if not o.startswith("model_name=")]
    _python_in(
        docker_daemon, image, ws,
        f"{WORK}/scripts/peak_rss.py", f"{WORK}/unscanned-rss.json", "--", *unscanned, *overrides,
    )  # fmt: skip
    rss = {step: json.loads((ws.host / f"{step}-rss.json").read_text()) for step in ("scanned", "unscanned")}
    print(f"conversion peak RSS (tiny, {tiny.TINY.num_parameters:,} parameters): {json.dumps(rss)}")
    return Converted(
        scanned_items=paths.scanned_items,
        unscanned_items=f"{WORK}/out/{RUN_NAME}/checkpoints/0/items",
        scanned_peak_rss=rss["scanned"]["peak_rss_bytes"],
        unscanned_peak_rss=rss["unscanned"]["peak_rss_bytes"],
    )


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
    args = [
        *tiny.maxtext_overrides(tiny.TINY),
        f"tokenizer_path={tiny.TINY.maxtext_tokenizer}",
        f"load_parameters_path={converted.unscanned_items}",
        "per_device_batch_size=1",
        "max_prefill_predict_length=32",
        "max_target_length=64",
        "scan_layers=false",
        "weight_dtype=bfloat16",
        "attention=dot_product",
        "async_checkpointing=false",
        "hardware=cpu",
        "skip_jax_distributed_system=true",
        "prometheus_port=9100",
    ]
    docker_daemon.run(
        "run", "--detach", "--name", name, "--network", "none", "-v", f"{workspace.host}:{WORK}:ro",
        built_image("server").tag, *args,
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
