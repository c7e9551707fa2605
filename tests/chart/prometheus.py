"""A real Prometheus server (Debian's `prometheus` package, /usr/bin/prometheus) for the dashboard tests, and a
real JetStream 0.2.2 server with its Prometheus endpoint on.

    with running_prometheus({"tpuserve-operator": ["127.0.0.1:9090"]}, workdir) as prom:
        prom.wait_for_targets_up()
        prom.query('up')
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from localcluster.ports import free_port
from localcluster.wait import WaitTimeout, wait_for
from tpuserve_dev import REPO

PROMETHEUS = os.environ.get("TPUSERVE_PROMETHEUS", "/usr/bin/prometheus")
SCRAPE_INTERVAL = "1s"


class HasExpr(Protocol):
    @property
    def expr(self) -> str: ...


E = TypeVar("E", bound=HasExpr)


def unanswered(prometheus: Prometheus, expressions: Sequence[E], timeout: float, interval: float = 1.0) -> list[E]:
    """The expressions (anything with `.expr`) that still return no data when `timeout` runs out (empty at once when
    all of them answer): the waiting goes through the one polling helper, the caller asserts on what is left."""
    missing = list(expressions)

    def all_answered() -> bool:
        missing[:] = [e for e in missing if not prometheus.query(e.expr)]
        return not missing

    with contextlib.suppress(WaitTimeout):
        wait_for(all_answered, timeout=timeout, interval=interval, description="every expression to return data")
    return missing


@dataclass
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (or [] when empty). Raises on a PromQL error (bad syntax)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] in ("vector", "matrix") else [data]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def wait_for_targets_up(self, timeout: float = 60) -> None:
        def all_up() -> bool:
            targets = self.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        try:
            wait_for(all_up, timeout=timeout, interval=0.25, description="every scrape target up")
        except TimeoutError as error:
            states = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets()]
            raise TimeoutError(f"{error}: {states}") from None


@contextlib.contextmanager
def running_prometheus(
    jobs: Mapping[str, list[str]],
    workdir: Path,
    *,
    target_labels: Mapping[str, str] | None = None,
    honor_labels: bool = False,
) -> Iterator[Prometheus]:
    """Start /usr/bin/prometheus scraping `jobs` (job name -> host:port targets) every second; stop it after.

    `target_labels` are attached to every target the way Kubernetes service discovery attaches `namespace`, `pod`,
    `service` (so label conflicts behave as in a cluster); `honor_labels` is the scrape option a ServiceMonitor's
    `honorLabels` sets."""
    if not shutil.which(PROMETHEUS) and not Path(PROMETHEUS).exists():
        raise RuntimeError(f"{PROMETHEUS} not found: run `make system-deps` (tests/system-deps.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": honor_labels,
                "static_configs": [{"targets": targets, "labels": dict(target_labels or {})}],
            }
            for job, targets in jobs.items()
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(ready, timeout=60, interval=0.25, description="Prometheus ready")
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Upstream code unchanged except the listen addresses, moved to loopback from outside: gRPC (upstream [::]) and the
# Prometheus endpoint (prometheus_client's default 0.0.0.0).
JETSTREAM_WITH_METRICS = """
import functools
import sys
import prometheus_client
from jetstream.core import config_lib, server_lib
server_lib._HOST = "127.0.0.1"
server_lib.start_http_server = functools.partial(prometheus_client.start_http_server, addr="127.0.0.1")
port, metrics_port = int(sys.argv[1]), int(sys.argv[2])
server = server_lib.run(
    port=port,
    config=config_lib.InterleavedCPUTestServer,
    devices=[None],
    metrics_server_config=config_lib.MetricsServerConfig(port=metrics_port),
)
print("SERVING", flush=True)
server.wait_for_termination()
"""


def jetstream_python() -> str:
    """The JetStream 0.2.2 virtualenv's python (tests/jetstream/setup-venv.sh; cached)."""
    out = subprocess.run(
        ["bash", str(REPO / "tests" / "jetstream" / "setup-venv.sh")], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


@contextlib.contextmanager
def running_jetstream_with_metrics(workdir: Path) -> Iterator[tuple[str, str]]:
    """JetStream 0.2.2's real orchestrator + gRPC server (mock engine) with `prometheus_port` on, as MaxText's
    server runs it. Yields ("127.0.0.1:GRPC", "127.0.0.1:METRICS")."""
    workdir.mkdir(parents=True, exist_ok=True)
    grpc_port, metrics_port = free_port(), free_port()
    log = workdir / "jetstream.log"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "HOSTNAME": "jetstream-test-0"}
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [jetstream_python(), "-c", JETSTREAM_WITH_METRICS, str(grpc_port), str(metrics_port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"JetStream exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
                    return b"jetstream_prefill_backlog_size" in response.read()
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(serving, timeout=180, interval=1, description="JetStream metrics endpoint")
        yield f"127.0.0.1:{grpc_port}", f"127.0.0.1:{metrics_port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if sys.exc_info()[0] is not None:
            print(log.read_text()[-3000:], file=sys.stderr)
