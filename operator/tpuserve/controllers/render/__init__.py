"""Pure rendering of every child resource from the typed spec: one jinja2 template per child kind, one module per
owner kind (`convert`: a LlamaCheckpoint's Job; `server`: a JetStream InferenceServer's Deployment, Service and
scrape configs; `bench`: a BenchmarkRun's Job; `common`: what they share; `tpuserve.controllers.render_vllm`: the
vllm-tpu runtime's Deployment and Service).

No API calls and no environment reads: everything comes in as arguments (the owner's typed model and metadata,
the operator settings, and what reconcile resolved, e.g. the checkpoint path or the benchmark target). The names
below are what the controllers call.
"""

from __future__ import annotations

from tpuserve.controllers.render.bench import (
    API_KEY_PATH,
    BENCH_CONTAINER,
    BENCH_DEADLINE_GRACE_SECONDS,
    bench_args,
    render_bench_job,
)
from tpuserve.controllers.render.common import ANNOTATION_OWNER, TPU_TOLERATION, render_template
from tpuserve.controllers.render.convert import (
    CONVERT_WORK_DIR,
    CONVERTER_CONTAINER,
    MIRROR_WORK_DIR_SIZE,
    converter_args,
    converter_output_paths,
    mirror_args,
    mirror_model_path,
    render_convert_job,
    render_mirror_job,
)
from tpuserve.controllers.render.server import (
    render_deployment,
    render_pod_monitoring,
    render_service,
    render_service_monitor,
    server_args,
    server_selector,
    service_endpoint,
)

__all__ = [
    "ANNOTATION_OWNER",
    "API_KEY_PATH",
    "BENCH_CONTAINER",
    "BENCH_DEADLINE_GRACE_SECONDS",
    "CONVERTER_CONTAINER",
    "CONVERT_WORK_DIR",
    "MIRROR_WORK_DIR_SIZE",
    "TPU_TOLERATION",
    "bench_args",
    "converter_args",
    "converter_output_paths",
    "mirror_args",
    "mirror_model_path",
    "render_bench_job",
    "render_convert_job",
    "render_deployment",
    "render_mirror_job",
    "render_pod_monitoring",
    "render_service",
    "render_service_monitor",
    "render_template",
    "server_args",
    "server_selector",
    "service_endpoint",
]
