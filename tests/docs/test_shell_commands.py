"""Every shell command the docs show (``bash``/``sh`` blocks of docs/*.md and README.md) is either run here or
checked against the tool's own parser, so a copied command fails on the reader's cluster, not on a typo:

- each block passes ``bash -n``, and every command runs under ``set -u`` with the pages' variables filled in (a
  variable the page never defines fails);
- ``gcloud``, ``kubectl``, ``helm``, ``docker`` and ``curl`` run for real with their own argument parsers, pointed at
  nothing (no gcloud account, a kubeconfig whose server refuses, a Docker socket that does not exist, a closed
  port): they must get past their flags, choices and files and stop only at the missing account or server;
- ``tpuserve`` commands go through tpuserve's own argparse parser; ``make`` targets exist in the Makefile;
  ``python -m`` modules import; ``pytest`` paths exist and ``-m`` names registered markers;
- a command of any other program fails this test until a checker for it is added here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tpuserve

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# Placeholder values for the variables the pages tell the reader to set (docs/install.md step 0 and its vLLM
# section, docs/images.md).
VARIABLES = {
    "PROJECT": "my-project",
    "PROJECT_NUMBER": "123456789012",
    "REGION": "us-central1",
    "ZONE": "us-central1-b",
    "V5E_ZONE": "us-central1-a",
    "V6E_ZONE": "us-central1-b",
    "CLUSTER": "llm-serving",
    "BUCKET": "my-models-bucket",
    "NAMESPACE": "llm",
    "NS": "llm",
    "VERSION": tpuserve.__version__,
    "REGISTRY": "us-docker.pkg.dev/my-project/tpuserve",
    "WI_PRINCIPAL": "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
    "my-project.svc.id.goog/subject",
}
# What a tool prints when it refused its arguments (the failures this test exists for).
PARSE_ERRORS = re.compile(
    r"unknown (flag|shorthand|command)|unrecognized arguments|Invalid choice|invalid choice|is unknown|"
    r"required flag|must be specified|expected one argument|accepts \d+ arg|requires (at least|exactly)|"
    r"no such file or directory|does not exist|unbound variable|syntax error",
    re.I,
)
# What a tool prints when it accepted its arguments and stopped only at the account or server it was not given.
REACHED_THE_NETWORK = re.compile(
    r"You do not currently have an active account selected|connection refused|was refused|"
    r"cluster unreachable|Cannot connect to the Docker daemon",
    re.I,
)
SHELL_KEYWORDS = {"while", "for", "if", "until", "case"}
BLOCK_END = {"done", "fi", "esac"}
SYNTAX_ONLY = {"export", "cd", "read"}
CURL_COULD_NOT_CONNECT = 7


@dataclass(frozen=True)
class Command:
    page: str
    line: str

    @property
    def words(self) -> list[str]:
        """The command's words with leading VAR=value assignments dropped (their values are checked by bash)."""
        words = shlex.split(self.line)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        return words

    @property
    def program(self) -> str:
        words = self.words
        return Path(words[0]).name if words else ""


def shell_blocks(path: Path) -> list[str]:
    return SHELL_BLOCK.findall(path.read_text())


def commands(path: Path) -> list[Command]:
    """The block's commands, one per (continued) line; the bodies of loops and conditionals are left to bash -n
    (their variables exist only when the loop runs)."""
    found = []
    for block in shell_blocks(path):
        depth = 0
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split("  #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            first = line.split()[0]
            if first in SHELL_KEYWORDS:
                depth += 1
            elif first in BLOCK_END:
                depth -= 1
            elif depth == 0:
                found.append(Command(path.name, _checkable_part(line)))
    return found


def _checkable_part(line: str) -> str:
    """`VAR=$(command)` is checked as its command; `command |` (feeding a loop) and `command &` as the command."""
    substitution = re.fullmatch(r"(?:export )?[A-Za-z_]\w*=\$\((.*)\)", line)
    if substitution:
        return substitution.group(1)
    return line.removesuffix("|").removesuffix("&").strip()


def all_commands() -> list[Command]:
    return [c for page in PAGES for c in commands(page)]


def test_the_pages_have_shell_commands() -> None:
    programs = {c.program for c in all_commands()}
    assert {"gcloud", "kubectl", "helm", "tpuserve", "make"} <= programs


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_is_valid_bash(page: Path) -> None:
    for block in shell_blocks(page):
        result = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{page.name}: {result.stderr}\n{block}"


def _unreachable_kubeconfig(directory: Path) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: nobody, user: {token: not-a-token}}]\n"
        "contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n"
        "current-context: nowhere\n"
    )
    return path


def _run_pointed_at_nothing(command: Command, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    from tpuserve_dev.chart.tools import tools_bin_dir

    workdir = tmp_path / "checkout"
    workdir.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (workdir / entry.name).symlink_to(entry)
    (workdir / "my-values.yaml").write_text("{}\n")  # the file docs/install.md's upgrade step tells the reader to keep
    env = {
        "PATH": f"{tools_bin_dir()}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "KUBECONFIG": str(_unreachable_kubeconfig(tmp_path)),
        "HELM_CONFIG_HOME": str(tmp_path / "helm"),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        **VARIABLES,
    }
    # curl's docs examples talk to a port-forward the reader started; here nothing listens on that port.
    line = command.line.replace("localhost:8000", "127.0.0.1:1")
    return subprocess.run(
        ["bash", "-uc", line], env=env, cwd=workdir, capture_output=True, text=True, timeout=120, check=False
    )


def _check_by_running(command: Command, tmp_path: Path) -> None:
    result = _run_pointed_at_nothing(command, tmp_path)
    output = result.stdout + result.stderr
    assert not PARSE_ERRORS.search(output), f"{command.page}: {command.line}\n{output}"
    if command.program == "curl":
        assert result.returncode in (0, CURL_COULD_NOT_CONNECT), f"{command.page}: {command.line}\n{output}"
    else:
        assert result.returncode == 0 or REACHED_THE_NETWORK.search(output), f"{command.page}: {command.line}\n{output}"


def _check_tpuserve(command: Command) -> None:
    from tpuserve.cli import build_parser

    parser = build_parser()
    expanded = shlex.split(os.path.expandvars(" ".join(shlex.quote(w) for w in command.words[1:])))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            parser.parse_args(expanded)
        except SystemExit as exc:
            pytest.fail(f"{command.page}: {command.line}\nexit {exc.code}: {stderr.getvalue()}")


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def _check_make(command: Command) -> None:
    targets = [w for w in command.words[1:] if not w.startswith("-") and "=" not in w]
    assert targets, command.line
    missing = set(targets) - _makefile_targets()
    assert not missing, f"{command.page}: {command.line}: no such make target {sorted(missing)}"


def _check_python(command: Command) -> None:
    words = command.words
    if "-m" in words:
        module = words[words.index("-m") + 1]
        if module == "pytest":
            _check_pytest(Command(command.page, shlex.join(words[words.index("-m") + 1 :])))
            return
        sys.path.insert(0, str(ROOT))
        try:
            assert importlib.util.find_spec(module) is not None, f"{command.page}: no module {module}"
        finally:
            sys.path.remove(str(ROOT))
    else:
        pytest.fail(f"{command.page}: {command.line}: only python -m and python -c commands are checked")


def _registered_markers() -> set[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {m.split(":")[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}


def _check_pytest(command: Command) -> None:
    words = command.words[1:]
    for index, word in enumerate(words):
        if word == "-m":
            names = set(re.findall(r"[a-z_]+", words[index + 1])) - {"not", "and", "or"}
            assert names <= _registered_markers(), f"{command.page}: {command.line}: unknown marker(s)"
        elif not word.startswith("-") and (index == 0 or words[index - 1] not in ("-m", "-k")):
            path = word.split("::", 1)[0]
            assert (ROOT / path).exists(), f"{command.page}: {command.line}: no {path}"


RUN_FOR_REAL = {"gcloud", "kubectl", "helm", "docker", "curl"}
CHECKERS = {"tpuserve": _check_tpuserve, "make": _check_make, "pytest": _check_pytest}


def checked_commands() -> list[Command]:
    """The commands a tool checks: assignments and shell built-ins are left to bash -n (and to the runs of the
    commands that use the variables they set)."""
    return [c for c in all_commands() if c.words and c.program not in SYNTAX_ONLY]


@pytest.mark.parametrize("command", checked_commands(), ids=lambda c: f"{c.page}:{c.line[:60]}")
def test_command(command: Command, tmp_path: Path) -> None:
    program = command.program
    if program == "gcloud" and shutil.which("gcloud") is None:
        pytest.skip("gcloud is not installed here (google-cloud-cli comes from Google's apt repository)")
    if program in RUN_FOR_REAL or (program.startswith("python") and "-c" in command.words):
        _check_by_running(command, tmp_path)
    elif program.startswith("python"):
        _check_python(command)
    elif program in CHECKERS:
        CHECKERS[program](command)
    else:
        pytest.fail(f"{command.page}: no checker for `{program}` in tests/docs/test_shell_commands.py: {command.line}")
