"""docs/install.md's commands: every `gcloud` command parses with the real gcloud (its own argument parser,
which stops at the missing credentials only after the flags, choices and positional arguments are accepted), and
no `kubectl get` watches more than one kind (watch takes one; `get a,b,c -w` fails) in the docs or the chart's
NOTES.txt; the `helm install` flags render with the chart (`helm template`); images/cloudbuild.yaml builds and
pushes every image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import tpuserve

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "docs" / "install.md"
# Placeholder values for the page's variables (step 0).
VARIABLES = {
    "PROJECT": "my-project",
    "PROJECT_NUMBER": "123456789012",
    "REGION": "us-central1",
    "V5E_ZONE": "us-central1-a",
    "V6E_ZONE": "us-central1-b",
    "CLUSTER": "llm-serving",
    "BUCKET": "my-models-bucket",
    "NAMESPACE": "llm",
    "VERSION": tpuserve.__version__,
    "REGISTRY": "us-docker.pkg.dev/my-project/tpuserve",
    "WI_PRINCIPAL": "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
    "my-project.svc.id.goog/subject",
}
PARSED_BUT_NO_ACCOUNT = "You do not currently have an active account selected"
PARSE_ERRORS = re.compile(
    r"unrecognized arguments|Invalid choice|argument .*: |must be specified|expected one argument"
)


def _shell_commands(markdown: str) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def gcloud_commands() -> list[str]:
    return [c for c in _shell_commands(INSTALL.read_text()) if c.startswith("gcloud ")]


def test_the_page_has_the_steps_of_an_empty_project() -> None:
    joined = "\n".join(_shell_commands(INSTALL.read_text()))
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


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed here")
@pytest.mark.parametrize("command", gcloud_commands())
def test_gcloud_command_parses(command: str, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        **VARIABLES,
    }
    result = subprocess.run(
        ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert not PARSE_ERRORS.search(output), output
    assert result.returncode == 0 or PARSED_BUT_NO_ACCOUNT in output, output


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

    (install,) = [c for c in _shell_commands(INSTALL.read_text()) if c.startswith("helm install ")]
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
