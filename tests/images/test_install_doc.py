"""docs/install.md as a whole (tests/docs/test_shell_commands.py checks each shell command of the docs with its
own tool): the page has every step from an empty project to teardown; no `kubectl get` watches more than one kind
(watch takes one; `get a,b,c -w` fails) in the docs or the chart's NOTES.txt; the `helm install` flags render with
the chart (`helm template`); images/cloudbuild.yaml builds and pushes every image."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.docs.test_shell_commands import VARIABLES, commands

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "docs" / "install.md"


def _shell_commands(markdown_page: Path) -> list[str]:
    return [c.line for c in commands(markdown_page)]


def test_the_page_has_the_steps_of_an_empty_project() -> None:
    joined = "\n".join(_shell_commands(INSTALL))
    for step in (
        "gcloud services enable",
        "gcloud container clusters create",
        "gcloud container clusters get-credentials",
        "--machine-type=ct5lp-hightpu-8t",
        "--machine-type=ct6e-standard-8t",
        "--machine-type=ct4p-hightpu-4t",
        "gcloud artifacts repositories create",
        "gcloud builds submit",
        "roles/artifactregistry.reader",
        "gcloud storage cp",
        "principal://",
        "roles/iam.workloadIdentityUser",
        "gcloud container clusters delete",
        "gcloud artifacts repositories delete",
    ):
        assert step in joined, step


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "charts/tpuserve/templates/NOTES.txt"],
    ids=lambda p: p.name,
)
def test_no_watch_of_several_kinds(path: Path) -> None:
    for line in path.read_text().splitlines():
        if re.search(r"kubectl get \S*,\S*", line):
            assert not re.search(r"(\s-w\b|--watch\b)", line), f"{path.name}: watch takes one kind: {line.strip()}"


def _expanded(command: str) -> list[str]:
    """The command's words with the page's variables filled in (as bash would)."""
    env = {"PATH": os.environ["PATH"], **VARIABLES}
    out = subprocess.run(
        ["bash", "-c", f'for word in {command}; do printf "%s\\0" "$word"; done'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("\0")[:-1]


def test_helm_install_values_render_with_the_chart() -> None:
    """Step 5's `helm install` flags, rendered with `helm template`: the values exist in the chart's schema, the
    images are the ones step 3 built."""
    from tpuserve_dev.chart.tools import KUBE_VERSION, helm

    (install,) = [c for c in _shell_commands(INSTALL) if c.startswith("helm install ")]
    words = _expanded(install)
    assert words[:4] == ["helm", "install", "tpuserve", "charts/tpuserve"]
    chart = str(ROOT / "charts/tpuserve")
    rendered = helm("template", "tpuserve", chart, "--kube-version", KUBE_VERSION, *words[4:]).stdout
    registry = VARIABLES["REGISTRY"]
    assert f"image: {registry}/operator:" in rendered or f'image: "{registry}/operator:' in rendered
    for image in ("converter", "bench"):
        assert f"{registry}/{image}:{VARIABLES['VERSION']}" in rendered, image


def test_cloudbuild_builds_and_pushes_every_image() -> None:
    import yaml

    from tpuserve import images

    config = yaml.safe_load((ROOT / "images/cloudbuild.yaml").read_text())
    built = {}
    for step in config["steps"]:
        args = step["args"]
        dockerfile = next(a.split("=", 1)[1] for a in args if a.startswith("--file="))
        tag = next(a.split("=", 1)[1] for a in args if a.startswith("--tag="))
        built[Path(dockerfile).name] = tag
    assert set(built) == {p.name for p in (ROOT / "images").glob("*.Dockerfile")}
    assert sorted(config["images"]) == sorted(built.values())
    # Same repository names as the defaults (tpuserve.images), under the user's registry.
    defaults = {images.OPERATOR_IMAGE, images.BENCH_IMAGE, images.CONVERTER_IMAGE, images.SERVER_IMAGE}
    names = {images.image_repository(i).rsplit("/", 1)[1] for i in defaults}
    assert {t.split("}/", 1)[1].split(":")[0] for t in built.values()} == names
