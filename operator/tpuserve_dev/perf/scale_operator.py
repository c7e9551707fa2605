"""Scale benchmark of the operator (a script, not a test): N BenchmarkRuns with an external target.

Measures, on a fresh local cluster: time from the first create until every benchmark Job exists; p50/p99 of
create-to-Job latency (POST of the BenchmarkRun returned → the Job seen on a watch); the operator's peak RSS;
and the HTTP requests the operator made per object (counted inside the operator process, by verb and resource).
The machine's load average (1 min) at the start and the end of each size is printed with the figures: the times
depend on what else shares the CPU.

    python -m tpuserve_dev.perf.scale_operator --runs 200 1000 [--json out.json]

The benchmark pods stay Pending/Running (kwok, 1 h simulated run) so the measurement is about the operator
creating Jobs and following them, not about runs finishing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from localcluster import sim
from localcluster.harness import LocalCluster
from tpuserve_dev import cluster as cluster_config
from tpuserve_dev.operator_harness import OperatorProcess, install_crds

QUIET_SECONDS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(round(q * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def run_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "BenchmarkRun",
        "metadata": {"name": name},
        "spec": {
            "target": {"host": "10.0.0.1", "port": 9000},
            "dataset": {"name": "synthetic", "synthetic": {"inputLength": 128, "outputLength": 128}},
            "numPrompts": 100,
            "podAnnotations": {sim.RUN_DURATION_ANNOTATION: "1h"},
        },
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): unlike wall times, not stretched by other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cluster: LocalCluster, runs: int, work: Path) -> dict[str, Any]:
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core, batch, custom = k8s.CoreV1Api(api), k8s.BatchV1Api(api), k8s.CustomObjectsApi(api)
    namespace = f"scale-{runs}"
    core.create_namespace({"metadata": {"name": namespace}})
    counts_file = work / f"counts-{runs}.json"
    operator = OperatorProcess(
        cluster.kubeconfig,
        work / f"operator-{runs}.log",
        {"TPUSERVE_COUNT_FILE": str(counts_file), "TPUSERVE_CHECK_GCS": "false"},
        launcher=[sys.executable, "-m", "tpuserve_dev.perf._counting_operator"],
    )
    operator.start()
    time.sleep(2)
    baseline = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    assert operator.process is not None
    cpu_at_start = cpu_seconds(operator.process.pid)

    created: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch_jobs() -> None:
        w = k8s_watch.Watch()
        while not done.is_set():
            for event in w.stream(batch.list_namespaced_job, namespace, timeout_seconds=30):
                name = event["object"].metadata.name.removesuffix("-bench")
                seen.setdefault(name, time.monotonic())
                if len(seen) >= runs:
                    done.set()
                    w.stop()
                    break

    watcher = threading.Thread(target=watch_jobs, daemon=True)
    watcher.start()
    time.sleep(1)
    names = [f"run-{i:05d}" for i in range(runs)]
    load_at_start = load_average()
    start = time.monotonic()

    def create(name: str) -> None:
        custom.create_namespaced_custom_object("tpuserve.dev", "v1alpha1", namespace, "benchmarkruns", run_body(name))
        created[name] = time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, names))
    created_all = time.monotonic() - start
    peak = 0
    deadline = time.monotonic() + 1800
    while not done.is_set() and time.monotonic() < deadline:
        peak = max(peak, operator.rss_bytes())
        time.sleep(0.5)
    all_jobs = time.monotonic() - start

    # Let the operator finish the status writes that follow (phase Running for every run), then count.
    def all_running() -> bool:
        items = custom.list_namespaced_custom_object("tpuserve.dev", "v1alpha1", namespace, "benchmarkruns")["items"]
        return sum(1 for i in items if (i.get("status") or {}).get("phase") == "Running") >= runs

    while not all_running() and time.monotonic() < deadline:
        peak = max(peak, operator.rss_bytes())
        time.sleep(1)
    settled = time.monotonic() - start
    # Then until the operator is quiet (its request count unchanged for QUIET_SECONDS): the writes that follow
    # the first status write (the Job's and the pods' events) are part of what an object costs.
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < QUIET_SECONDS and time.monotonic() < deadline:
        total_now = sum(json.loads(counts_file.read_text()).values())
        if total_now != last:
            last, quiet_since = total_now, time.monotonic()
        peak = max(peak, operator.rss_bytes())
        time.sleep(1)
    peak = max(peak, operator.peak_rss_bytes())
    counts = json.loads(counts_file.read_text())
    status_writes = json.loads(Path(f"{counts_file}.status.json").read_text())
    cpu = cpu_seconds(operator.process.pid) - cpu_at_start
    operator.stop()
    delta = {k: v - baseline.get(k, 0) for k, v in counts.items() if v - baseline.get(k, 0) > 0}
    total = sum(delta.values())
    latencies = [seen[n] - created[n] for n in names if n in seen and n in created]
    jobs = len(batch.list_namespaced_job(namespace).items)
    return {
        "runs": runs,
        "jobs": jobs,
        "load_average_1m": [load_at_start, load_average()],
        "create_all_seconds": round(created_all, 1),
        "all_jobs_exist_seconds": round(all_jobs, 1),
        "all_running_status_seconds": round(settled, 1),
        "create_to_job_p50_seconds": round(statistics.median(latencies), 2),
        "create_to_job_p99_seconds": round(percentile(latencies, 0.99), 2),
        "operator_peak_rss_mib": round(peak / 2**20, 1),
        "operator_cpu_seconds": round(cpu, 1),
        "operator_cpu_ms_per_object": round(cpu * 1000 / runs, 1),
        "operator_requests_total": total,
        "operator_requests_per_object": round(total / runs, 1),
        "operator_requests_by_kind": dict(sorted(delta.items(), key=lambda kv: -kv[1])),
        "status_patches_by_message": dict(sorted(status_writes.items(), key=lambda kv: -kv[1])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tpuserve-scale-"))
    results = []
    for runs in args.runs:
        cluster = LocalCluster(
            work / f"cluster-{runs}", config=cluster_config.CONFIG
        )  # a fresh cluster per size: no left-overs
        try:
            cluster.start()
            install_crds(cluster.kubectl)
            result = measure(cluster, runs, work)
        finally:
            cluster.stop()
        results.append(result)
        print(json.dumps(result, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
