"""Running the real operator (`tpuserve operator`, a subprocess) against the local test cluster, and reading
objects back. Used by the cluster tests, the demo and the scale script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localcluster.ports import free_port
from localcluster.wait import wait_crds_established, wait_for
from tpuserve_dev import REPO

CRD_DIR = REPO / "crds"
TPUSERVE = Path(sys.executable).with_name("tpuserve")
GROUP_VERSION = "tpuserve.dev/v1alpha1"
PLURAL = {"LlamaCheckpoint": "llamacheckpoints", "InferenceServer": "inferenceservers", "BenchmarkRun": "benchmarkruns"}


class OperatorProcess:
    """`tpuserve operator --standalone -A` in a subprocess with its own metrics and liveness ports."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        launcher: list[str] | None = None,
    ) -> None:
        self.launcher = launcher or [str(TPUSERVE)]  # e.g. [python, -m, tpuserve_dev.perf._counting_operator]
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None, "already running"
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [
                *self.launcher,
                "operator",
                "--standalone",
                "--all-namespaces",
                "--kubeconfig",
                str(self.kubeconfig),
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(self.metrics_port),
                "--liveness",
                f"http://127.0.0.1:{self.liveness_port}/healthz",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        wait_for(self._healthy, timeout=60, interval=0.3, description="the operator's liveness endpoint")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode}; log: {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """SIGKILL (a crash: nothing is cleaned up) or SIGTERM (kopf's graceful shutdown)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def rss_bytes(self) -> int:
        """Resident memory of the operator process now (Linux /proc)."""
        return self._memory_bytes("VmRSS")

    def peak_rss_bytes(self) -> int:
        return self._memory_bytes("VmHWM")

    def _memory_bytes(self, field: str) -> int:
        """A memory figure of the operator process from /proc/PID/status (its unit there is kB); 0 if absent."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0


def metric_value(text: str, name: str, labels: Mapping[str, str]) -> float | None:
    """The value of the first sample of `name` whose labels include `labels` (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class Objects:
    """kubectl-based reads and writes of the API's objects (what a user would type)."""

    def __init__(self, kubectl: Any) -> None:
        self.kubectl = kubectl

    def apply(self, namespace: str, *objects: Mapping[str, Any]) -> None:
        text = "\n".join(json.dumps(o) for o in objects)
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", PLURAL.get(kind, kind), name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        obj: dict[str, Any] = json.loads(result.stdout)
        return obj

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items

    def status(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name) or {}
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def wait_phase(self, kind: str, namespace: str, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(kind, namespace, name)
            return status if status.get("phase") in phases else None

        try:
            result: dict[str, Any] = wait_for(
                reached, timeout=timeout, interval=0.5, description=f"{kind} {name} in {phases}"
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; status now: {json.dumps(self.status(kind, namespace, name))[:3000]}"
            ) from None
        return result

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items = self.items("events", namespace)
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            found: dict[str, Any] = cond
            return found
    raise AssertionError(f"no condition {type_} in {status.get('conditions')}")


def controller_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference that makes `owner` (an object read back from the API server) the controller."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def convert_summary_json(output: str, model: str = "llama2-7b") -> str:
    """The converter's success summary for `output` (what kwok-simulated conversion pods report: the operator
    marks a checkpoint Ready only on a valid summary whose paths lie under spec.output)."""
    from tpuserve.convert import layout
    from tpuserve.convert.summary import ConvertSummary, Outcome

    return ConvertSummary(
        ok=True,
        outcome=Outcome.CONVERTED,
        model=model,
        weight_dtype="bfloat16",
        scanned_path=layout.scanned_items(output),
        unscanned_path=layout.unscanned_items(output),
        manifest_path=layout.manifest_path(output),
        parameter_count=1,
    ).to_termination_message()


def install_crds(kubectl: Any) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    wait_crds_established(kubectl, *(f"crd/{plural}.tpuserve.dev" for plural in PLURAL.values()))


def elapsed(start: float) -> float:
    return time.monotonic() - start
