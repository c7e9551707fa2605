"""`tpuserve operator`: run the kopf operator in this process."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "operator",
        help="run the operator (reconciles LlamaCheckpoint, InferenceServer, BenchmarkRun)",
        description="Run the tpuserve operator. Settings come from TPUSERVE_* environment variables "
        "(operator/tpuserve/settings.py, docs/operator.md); flags override them.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--standalone", action="store_true", help="no peering (one replica; always in the chart)")
    parser.add_argument("--liveness", default=None, help="liveness endpoint URL, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-host", default=None, help="listen address of /metrics (default 0.0.0.0)")
    parser.add_argument("--metrics-port", type=int, default=None, help="port of /metrics (default 9090; 0 = off)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, else $KUBECONFIG)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=None, help="text, or json for Cloud Logging (default text)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import kopf

    from tpuserve import logs, metrics
    from tpuserve.controllers import handlers, kube
    from tpuserve.settings import OperatorSettings

    overrides: dict[str, Any] = {}
    if args.metrics_host is not None:
        overrides["metrics_host"] = args.metrics_host
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.liveness is not None:
        overrides["liveness"] = args.liveness or None
    if args.log_format is not None:
        overrides["log_format"] = args.log_format
    settings = OperatorSettings(**overrides)
    namespaces = list(args.namespace) or ([] if args.all_namespaces else settings.namespaces)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it too
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logs.use_format(settings.log_format)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    operator_metrics = metrics.default_metrics()
    operator_metrics.started()
    ctx = kube.Context(kube.load_api_client(args.kubeconfig), settings, operator_metrics, namespaces=namespaces)
    metrics.serve(settings.metrics_host, settings.metrics_port)
    del handlers  # imported for its kopf registrations
    kopf.run(
        standalone=args.standalone,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=settings.liveness or None,
        memo=kopf.Memo(ctx=ctx),
    )
    return 0
