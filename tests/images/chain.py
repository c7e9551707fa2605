"""The tiny model's conversion and MaxText server, shared by the image tests that need a converted checkpoint
(test_maxtext_chain.py: each image run by `docker run`; test_local_node_containers.py: the server and the bench
run as pods through the local node). The fixtures are in conftest.py."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from tests.images import tiny
from tests.images.docker import DockerDaemon
from tpuserve.convert import maxtext

SCRIPTS = Path(__file__).parent / "in_container"
WORK = "/work"  # the workspace inside containers
RUN_NAME = "unscanned"
SERVER_READY_SECONDS = 900
CONVERSION_SECONDS = 1800


@dataclasses.dataclass
class Workspace:
    host: Path


def make_workspace() -> Workspace:
    """A directory the images' non-root user (uid 65532) can write, with the in-container scripts and the
    tiny model's definitions."""
    host = Path(tempfile.mkdtemp(prefix="tpuserve-images-"))
    host.chmod(0o777)
    shutil.copytree(SCRIPTS, host / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (host / "arch.json").write_text(json.dumps(dataclasses.asdict(tiny.TINY)))
    (host / "table-entry.json").write_text(json.dumps(tiny.converter_table_entry(tiny.TINY)))
    for path in [host, *host.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return Workspace(host)


def python_in(daemon: DockerDaemon, image: str, ws: Workspace, *args: str, timeout: float = CONVERSION_SECONDS) -> str:
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


def convert(docker_daemon: DockerDaemon, image: str, ws: Workspace) -> Converted:
    """The real MaxText conversion of the tiny Meta checkpoint, scanned then unscanned, in the converter image."""
    python_in(docker_daemon, image, ws, f"{WORK}/scripts/make_meta_checkpoint.py", f"{WORK}/meta", f"{WORK}/arch.json")
    paths = maxtext.ConversionPaths(
        source_dir=f"{WORK}/meta",
        scanned_dir=f"{WORK}/out/scanned",
        scanned_items=f"{WORK}/out/scanned/0/items",
        unscanned_base=f"{WORK}/out",
        unscanned_run_name=RUN_NAME,
    )
    scanned = maxtext.scanned_argv("python3", tiny.TINY_NAME, paths)
    module_args = scanned[scanned.index(maxtext.SCANNED_MODULE) + 1 :]
    python_in(
        docker_daemon, image, ws,
        f"{WORK}/scripts/peak_rss.py", f"{WORK}/scanned-rss.json", "--",
        "python3", f"{WORK}/scripts/convert_scanned.py", tiny.TINY_NAME, f"{WORK}/table-entry.json", "--", *module_args,
    )  # fmt: skip
    base_config = python_in(
        docker_daemon,
        image,
        ws,
        "-c",
        "from tpuserve.convert.steps import find_maxtext_config; print(find_maxtext_config())",
    ).strip()
    # Exactly the argv tpuserve's converter runs, plus the tiny model's dimensions.
    unscanned = maxtext.unscanned_argv("python3", base_config, "llama2-7b", "bfloat16", paths)
    overrides = [o for o in tiny.maxtext_overrides(tiny.TINY) if not o.startswith("model_name=")]
    python_in(
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


def server_args(converted: Converted, prometheus_port: int) -> list[str]:
    """The server image's arguments (MaxText settings) for the converted tiny checkpoint on a CPU."""
    return [
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
        f"prometheus_port={prometheus_port}",
    ]
