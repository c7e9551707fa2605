"""Pure rendering of the operator's children: structure, names, labels, owner references, and validity against
the Kubernetes schemas (kubernetes-validate, strict: unknown fields are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tpuserve.api import BenchmarkRunSpec, InferenceServerSpec, LlamaCheckpointSpec, Protocol
from tpuserve.controllers import naming, render
from tpuserve.settings import OperatorSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
K8S_VERSION = "1.35"
OWNER: dict[str, Any] = {
    "name": "llama2-7b-v5e",
    "namespace": "team-a",
    "uid": "0b4c3f9e-1111-2222-3333-444455556666",
    "generation": 3,
}
CHECKPOINT = "gs://bucket/llama2-7b/maxtext/unscanned/checkpoints/0/items"


def example(kind_dir: str, file: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / kind_dir / file).read_text())["spec"]
    return spec


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()


@pytest.fixture
def server_spec() -> InferenceServerSpec:
    return InferenceServerSpec.model_validate(example("llama2-7b-v5e", "server.yaml"))


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = obj["spec"]["template"]["spec"]
    result: list[dict[str, Any]] = pod["containers"]
    return result


def check_child_metadata(obj: dict[str, Any], owner_kind: str, owner_label: str) -> None:
    meta = obj["metadata"]
    assert meta["namespace"] == OWNER["namespace"]
    (ref,) = meta["ownerReferences"]
    assert ref == {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": owner_kind,
        "name": OWNER["name"],
        "uid": OWNER["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for key in (naming.LABEL_NAME, naming.LABEL_INSTANCE, naming.LABEL_COMPONENT, naming.LABEL_PART_OF):
        assert meta["labels"][key]
    assert meta["labels"][naming.LABEL_MANAGED_BY] == naming.MANAGED_BY
    assert meta["labels"][owner_label] == OWNER["name"]
    assert meta["annotations"][render.ANNOTATION_OWNER] == OWNER["name"]
    assert meta["annotations"][naming.ANNOTATION_GENERATION] == "3"
    assert meta["annotations"][naming.ANNOTATION_SPEC_HASH] == naming.spec_hash(obj)


def test_deployment_matches_the_seed_and_gke_samples(
    server_spec: InferenceServerSpec, settings: OperatorSettings
) -> None:
    obj = render.render_deployment(server_spec, OWNER, settings, CHECKPOINT)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    check_child_metadata(obj, "InferenceServer", naming.LABEL_SERVER)
    assert obj["metadata"]["name"] == "llama2-7b-v5e"
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    pod = obj["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    assert {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["serviceAccountName"] == "tpuserve-workloads"
    server, http = containers(obj)
    assert server["resources"]["requests"]["google.com/tpu"] == "8"
    assert server["resources"]["limits"]["google.com/tpu"] == "8"
    # The seed's Llama2-7B settings, bare key=value (the image's entrypoint appends them after base.yml).
    assert server["args"] == [
        "model_name=llama2-7b",
        "tokenizer_path=assets/tokenizer.llama2",
        f"load_parameters_path={CHECKPOINT}",
        "max_prefill_predict_length=1024",
        "max_target_length=2048",
        "per_device_batch_size=11",
        "ici_fsdp_parallelism=1",
        "ici_autoregressive_parallelism=1",
        "ici_tensor_parallelism=-1",
        "scan_layers=false",
        "weight_dtype=bfloat16",
        "attention=autoselected",
        "prometheus_port=9100",
    ]
    assert {"name": "grpc", "containerPort": 9000} in server["ports"]
    assert {"name": "metrics", "containerPort": 9100} in server["ports"]
    assert server["image"] == settings.server_image
    assert http["image"] == settings.http_image
    assert http["ports"] == [{"name": "http", "containerPort": 8000}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert http[probe]["httpGet"] == {"path": "/healthcheck", "port": 8000}
    startup = http["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= settings.server_startup_seconds
    selector = obj["spec"]["selector"]["matchLabels"]
    assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_each_key_is_given_once_and_extra_args_come_last(settings: OperatorSettings) -> None:
    spec = InferenceServerSpec.model_validate(
        {
            "checkpointPath": CHECKPOINT,
            "tpu": {"accelerator": "v4", "topology": "2x2x1"},
            "engine": {
                "extraArgs": {"ragged_attention": "true", "async_checkpointing": "false"},
                "perDeviceBatchSize": 2.5,
            },
            "metrics": {"enabled": False},
            "resources": {"requests": {"memory": "100Gi", "google.com/tpu": 1}},
        }
    )
    obj = render.render_deployment(spec, OWNER, settings, CHECKPOINT)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    server = containers(obj)[0]
    keys = [a.split("=", 1)[0] for a in server["args"]]
    assert len(keys) == len(set(keys))
    assert server["args"][-2:] == ["async_checkpointing=false", "ragged_attention=true"]
    assert "per_device_batch_size=2.5" in server["args"]
    assert "prometheus_port" not in keys
    # google.com/tpu is always the host's chip count (v4 2x2x1 = 4), whatever the overrides say.
    assert server["resources"]["requests"] == {"memory": "100Gi", "google.com/tpu": "4"}
    assert server["resources"]["limits"] == {"google.com/tpu": "4"}
    assert obj["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v4-podslice"


def test_service_and_monitors(server_spec: InferenceServerSpec) -> None:
    svc = render.render_service(server_spec, OWNER)
    kubernetes_validate.validate(svc, K8S_VERSION, strict=True)
    check_child_metadata(svc, "InferenceServer", naming.LABEL_SERVER)
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"grpc": 9000, "http": 8000, "metrics": 9100}
    assert svc["spec"]["selector"] == render.server_selector(OWNER["name"])
    for obj, kind in (
        (render.render_pod_monitoring(OWNER), "PodMonitoring"),
        (render.render_service_monitor(OWNER), "ServiceMonitor"),
    ):
        assert obj["kind"] == kind
        check_child_metadata(obj, "InferenceServer", naming.LABEL_SERVER)
        assert obj["spec"]["selector"]["matchLabels"] == render.server_selector(OWNER["name"])
        assert obj["spec"]["endpoints"][0]["port"] == "metrics"


def test_convert_job(settings: OperatorSettings) -> None:
    spec = LlamaCheckpointSpec.model_validate(example("llama2-7b-v5e", "checkpoint.yaml"))
    settings = OperatorSettings(converter_env={"TPUSERVE_CONVERT_STEP": "synthetic"}, converter_backoff_limit=2)
    obj = render.render_convert_job(spec, OWNER, settings)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    check_child_metadata(obj, "LlamaCheckpoint", naming.LABEL_CHECKPOINT)
    assert obj["metadata"]["name"] == "llama2-7b-v5e-convert"
    assert obj["spec"]["backoffLimit"] == 2
    assert obj["spec"]["activeDeadlineSeconds"] == settings.converter_deadline_seconds
    (c,) = containers(obj)
    assert c["args"] == [
        "convert",
        "run",
        "--model",
        "llama2-7b",
        "--source",
        spec.source,
        "--output",
        spec.output,
        "--weight-dtype",
        "bfloat16",
        "--work-dir",
        render.CONVERT_WORK_DIR,
    ]
    assert {"name": "TPUSERVE_CONVERT_STEP", "value": "synthetic"} in c["env"]
    assert {"name": "JAX_PLATFORMS", "value": "cpu"} in c["env"]
    assert c["resources"] == {"requests": {"memory": "80Gi", "cpu": "4"}, "limits": {"memory": "80Gi"}}
    assert c["image"] == settings.converter_image
    (volume,) = obj["spec"]["template"]["spec"]["volumes"]
    assert int(volume["emptyDir"]["sizeLimit"]) > 13e9 * 2  # ~2.2 x the bf16 weights of 7B


def test_convert_job_google_preset(settings: OperatorSettings) -> None:
    spec = LlamaCheckpointSpec.model_validate(
        {"source": "gs://bkt/meta", "output": "gs://bkt/out", "converter": {"preset": "inference-checkpoint"}}
    )
    obj = render.render_convert_job(spec, OWNER, settings)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    (c,) = containers(obj)
    assert c["image"] == settings.checkpoint_image
    assert "--bucket_name=bkt" in c["args"]
    assert "--output_directory=gs://bkt/out" in c["args"]
    assert render.converter_output_paths(spec)[1] == "gs://bkt/out/bf16/unscanned/checkpoints/0/items"


def test_bench_job_from_the_seed_example(settings: OperatorSettings) -> None:
    spec = BenchmarkRunSpec.model_validate(example("llama2-7b-v5e", "benchmark.yaml"))
    target = render.service_endpoint("llama2-7b-v5e", "team-a")
    obj = render.render_bench_job(
        spec, OWNER, settings, target=target, model="llama2-7b", tokenizer="assets/tokenizer.llama2"
    )
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    check_child_metadata(obj, "BenchmarkRun", naming.LABEL_BENCHMARK)
    assert obj["metadata"]["name"] == "llama2-7b-v5e-bench"
    assert obj["spec"]["backoffLimit"] == 0
    assert obj["spec"]["activeDeadlineSeconds"] == 7200 + render.BENCH_DEADLINE_GRACE_SECONDS
    (c,) = containers(obj)
    assert c["args"][:4] == ["bench", "run", "--target", "llama2-7b-v5e.team-a.svc.cluster.local:9000"]
    text = " ".join(c["args"])
    for fragment in (
        "--dataset openorca",
        "--tokenizer assets/tokenizer.llama2",
        "--num-prompts 1000",
        "--max-output-length 1024",
        "--request-rate inf",
        "--warmup sampled",
        "--output gs://my-models-bucket/benchmarks/llama2-7b-v5e-openorca",
        "--save-request-outputs",
        "--timeout 7200",
        "--model llama2-7b",
    ):
        assert fragment in text
    assert c["image"] == settings.bench_image
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_bench_load_shapes_and_placement() -> None:
    settings = OperatorSettings(
        benchmark_node_selector={"pool": "cpu"}, benchmark_tolerations=[{"key": "x", "operator": "Exists"}]
    )
    base = {
        "target": {"host": "10.0.0.1"},
        "dataset": {"name": "synthetic", "synthetic": {"inputLength": 8, "outputLength": 4}},
    }
    sweep = BenchmarkRunSpec.model_validate(
        {**base, "sweep": {"rates": [1, 4, "inf"]}, "slo": {"ttftMs": 500}, "timeout": "90s"}
    )
    obj = render.render_bench_job(sweep, OWNER, settings, target="10.0.0.1:9000", model=None, tokenizer=None)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    args = containers(obj)[0]["args"]
    text = " ".join(args)
    assert "--sweep 1,4,inf" in text
    assert "--slo-ttft-ms 500" in text
    assert "--timeout 90" in text
    assert "--synthetic-input-length 8 --synthetic-output-length 4" in text
    assert "--tokenizer" not in args
    assert "--model" not in args
    assert "--request-rate" not in args
    pod = obj["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["tolerations"] == [{"key": "x", "operator": "Exists"}]
    closed = BenchmarkRunSpec.model_validate({**base, "concurrency": 8, "nodeSelector": {"a": "b"}})
    obj = render.render_bench_job(closed, OWNER, settings, target="10.0.0.1:9000", model=None, tokenizer=None)
    assert "--concurrency 8" in " ".join(containers(obj)[0]["args"])
    assert obj["spec"]["template"]["spec"]["nodeSelector"] == {"a": "b"}


def test_bench_job_over_the_openai_protocol(settings: OperatorSettings) -> None:
    """An openai target: the protocol, endpoint and load-shape flags, and the API key mounted from its Secret as
    a file the benchmark reads (never an argument or an env value)."""
    spec = BenchmarkRunSpec.model_validate(
        {
            "target": {"protocol": "openai", "host": "vllm.ns.svc"},
            "openai": {
                "endpoint": "/v1/chat/completions",
                "ignoreEos": True,
                "apiKeySecret": {"name": "k", "key": "t"},
            },
            "requestRate": 4,
            "burstiness": 0.5,
            "maxConcurrency": 16,
        }
    )
    assert spec.target is not None
    assert spec.target.address() == "http://vllm.ns.svc:8000"
    obj = render.render_bench_job(
        spec, OWNER, settings, target=spec.target.address(), model=None, tokenizer=None, protocol=Protocol.OPENAI
    )
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    (c,) = containers(obj)
    text = " ".join(c["args"])
    for fragment in (
        "--target http://vllm.ns.svc:8000",
        "--protocol openai --endpoint /v1/chat/completions --ignore-eos",
        f"--api-key-file {render.API_KEY_PATH}",
        "--request-rate 4 --burstiness 0.5 --max-concurrency 16",
    ):
        assert fragment in text
    pod = obj["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "api-key", "secret": {"secretName": "k", "items": [{"key": "t", "path": "key"}]}}
    ]
    assert c["volumeMounts"][0]["mountPath"] + "/key" == render.API_KEY_PATH
    jetstream = BenchmarkRunSpec.model_validate({"target": {"host": "h"}})
    assert jetstream.target is not None
    assert jetstream.target.address() == "h:9000"
    plain = render.render_bench_job(jetstream, OWNER, settings, target="h:9000", model=None, tokenizer=None)
    assert "--protocol" not in containers(plain)[0]["args"]
    assert "volumes" not in plain["spec"]["template"]["spec"]


def test_rendering_is_deterministic_and_hash_tracks_changes(
    server_spec: InferenceServerSpec, settings: OperatorSettings
) -> None:
    first = render.render_deployment(server_spec, OWNER, settings, CHECKPOINT)
    again = render.render_deployment(server_spec, OWNER, settings, CHECKPOINT)
    assert first == again
    other = render.render_deployment(server_spec, OWNER, settings, CHECKPOINT.replace("bucket", "other"))
    assert (
        other["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH]
        != first["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH]
    )


@pytest.mark.parametrize("owner", ["a", "x" * 63, "y" * 200])
def test_child_names_fit_and_are_stable(owner: str) -> None:
    for name in (naming.job_name_bench(owner), naming.job_name_convert(owner), naming.server_name(owner)):
        assert len(name) <= naming.MAX_NAME
    assert naming.job_name_bench(owner) == naming.job_name_bench(owner)
    assert naming.job_name_bench("y" * 200) != naming.job_name_bench("y" * 199)
    assert naming.job_name_bench(owner).endswith("-bench")
    if len(owner) + len("-bench") <= naming.MAX_NAME:
        assert naming.job_name_bench(owner) == f"{owner}-bench"


# --- pod security (docs/security.md) ------------------------------------------------------------------------

RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def test_server_is_unprivileged_unless_the_operator_setting_asks(server_spec: InferenceServerSpec) -> None:
    obj = render.render_deployment(server_spec, OWNER, OperatorSettings(), CHECKPOINT)
    pod = pod_spec(obj)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    server, http = containers(obj)
    # privileged: false stated, so that patching a Deployment rendered privileged by an older operator clears it.
    assert server["securityContext"] == {"privileged": False, **RESTRICTED_CONTAINER}
    assert http["securityContext"] == RESTRICTED_CONTAINER
    assert "env" not in server

    privileged = render.render_deployment(server_spec, OWNER, OperatorSettings(server_privileged=True), CHECKPOINT)
    kubernetes_validate.validate(privileged, K8S_VERSION, strict=True)
    server, http = containers(privileged)
    assert server["securityContext"] == {"privileged": True, "allowPrivilegeEscalation": True}
    assert http["securityContext"] == RESTRICTED_CONTAINER
    # Only the security context differs between the two renderings.
    for rendered in (obj, privileged):
        for c in containers(rendered):
            c.pop("securityContext")
        rendered["metadata"]["annotations"].pop(naming.ANNOTATION_SPEC_HASH)
    assert obj == privileged


def test_convert_jobs_meet_restricted_except_googles_root_image(settings: OperatorSettings) -> None:
    ours = render.render_convert_job(
        LlamaCheckpointSpec.model_validate(example("llama2-7b-v5e", "checkpoint.yaml")), OWNER, settings
    )
    pod = pod_spec(ours)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert containers(ours)[0]["securityContext"] == RESTRICTED_CONTAINER
    google = LlamaCheckpointSpec.model_validate(
        {"source": "gs://bkt/meta", "output": "gs://bkt/out", "converter": {"preset": "inference-checkpoint"}}
    )
    theirs = render.render_convert_job(google, OWNER, settings)
    assert pod_spec(theirs)["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod_spec(theirs)["automountServiceAccountToken"] is False
    assert containers(theirs)[0]["securityContext"] == RESTRICTED_CONTAINER


def test_bench_job_is_restricted_with_default_resources(settings: OperatorSettings) -> None:
    spec = BenchmarkRunSpec.model_validate(example("llama2-7b-v5e", "benchmark.yaml"))
    obj = render.render_bench_job(spec, OWNER, settings, target="h:9000", model=None, tokenizer=None)
    pod = pod_spec(obj)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    (c,) = containers(obj)
    assert c["securityContext"] == RESTRICTED_CONTAINER
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    own = BenchmarkRunSpec.model_validate(
        {**example("llama2-7b-v5e", "benchmark.yaml"), "resources": {"requests": {"cpu": "500m"}}}
    )
    obj = render.render_bench_job(own, OWNER, settings, target="h:9000", model=None, tokenizer=None)
    assert containers(obj)[0]["resources"] == {"requests": {"cpu": "500m"}}


def test_extra_args_from_secrets_are_env_vars_expanded_by_the_kubelet(settings: OperatorSettings) -> None:
    spec = InferenceServerSpec.model_validate(
        {
            "checkpointPath": CHECKPOINT,
            "tpu": {"accelerator": "v5e", "topology": "2x4"},
            "engine": {
                "extraArgs": {"ragged_attention": "true"},
                "extraArgsFrom": {"hf_access_token": {"secretKeyRef": {"name": "hf", "key": "token"}}},
            },
        }
    )
    obj = render.render_deployment(spec, OWNER, settings, CHECKPOINT)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    server = containers(obj)[0]
    assert server["args"][-2:] == ["ragged_attention=true", "hf_access_token=$(TPUSERVE_ARG_HF_ACCESS_TOKEN)"]
    assert server["env"] == [
        {"name": "TPUSERVE_ARG_HF_ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    ]


@pytest.mark.parametrize("key", ["hf_access_token", "api_key", "db_password", "client_secret", "HF_TOKEN"])
def test_extra_args_refuse_credential_keys(key: str) -> None:
    spec = {"checkpointPath": CHECKPOINT, "tpu": {"accelerator": "v5e", "topology": "2x4"}}
    with pytest.raises(ValueError, match=r"credential|lower_snake_case"):
        InferenceServerSpec.model_validate({**spec, "engine": {"extraArgs": {key: "x"}}})


# --- LlamaCheckpoint format huggingface, and the conversion Job unchanged by it ------------------------------

# The conversion Jobs as the code before the Hugging Face mode rendered them (/tmp/i11m-render.py on the parent
# commit): LlamaCheckpoints written before it keep their Jobs byte for byte, spec-hash annotation included, so
# the operator neither patches nor replaces a running conversion after an upgrade.
CONVERT_JOBS_BEFORE = Path(__file__).resolve().parent / "data" / "convert-jobs-before-hf-mode.json"
CONVERT_SPECS_BEFORE: dict[str, dict[str, Any]] = {
    "seed-example": example("llama2-7b-v5e", "checkpoint.yaml"),
    "google-preset": {
        "source": "gs://bkt/meta",
        "output": "gs://bkt/out",
        "converter": {"preset": "inference-checkpoint"},
    },
    "13b-float32-int8-custom": {
        "model": "llama2-13b",
        "source": "gs://bkt/meta13/",
        "output": "gs://bkt/out13",
        "weightDtype": "float32",
        "quantization": "int8",
        "converter": {
            "resources": {"requests": {"memory": "128Gi", "cpu": 8}},
            "workDirSizeLimit": "40Gi",
            "nodeSelector": {"pool": "highmem"},
            "tolerations": [{"key": "pool", "operator": "Equal", "value": "highmem", "effect": "NoSchedule"}],
            "serviceAccountName": "conv",
            "podAnnotations": {"a": "b"},
        },
    },
}


@pytest.mark.parametrize("case", list(CONVERT_SPECS_BEFORE))
def test_convert_jobs_render_as_before_the_hugging_face_mode(case: str) -> None:
    import json

    before = json.loads(CONVERT_JOBS_BEFORE.read_text())[case]
    spec = LlamaCheckpointSpec.model_validate(CONVERT_SPECS_BEFORE[case])
    assert spec.format == "meta"
    owner = {**OWNER, "generation": 3}
    assert render.render_convert_job(spec, owner, OperatorSettings()) == before


def hf_spec(**changes: Any) -> LlamaCheckpointSpec:
    spec: dict[str, Any] = {
        "model": "llama3.1-8b",
        "format": "huggingface",
        "huggingFace": {
            "repoId": "meta-llama/Llama-3.1-8B-Instruct",
            "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
            "tokenSecretRef": {"name": "hf-secret"},
        },
        "output": "gs://bkt/llama3.1-8b",
    }
    return LlamaCheckpointSpec.model_validate(spec | changes)


def test_mirror_job_from_a_hub_repo(settings: OperatorSettings) -> None:
    settings = OperatorSettings(converter_env={"HF_ENDPOINT": "http://hub.internal"}, converter_backoff_limit=2)
    obj = render.render_mirror_job(hf_spec(), OWNER, settings)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    check_child_metadata(obj, "LlamaCheckpoint", naming.LABEL_CHECKPOINT)
    assert obj["metadata"]["name"] == "llama2-7b-v5e-mirror"
    assert obj["spec"]["backoffLimit"] == 2
    (c,) = containers(obj)
    assert c["name"] == render.CONVERTER_CONTAINER
    assert c["image"] == settings.converter_image
    assert c["args"] == [
        "convert",
        "mirror",
        "--model",
        "llama3.1-8b",
        "--output",
        "gs://bkt/llama3.1-8b",
        "--repo-id",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--revision",
        "0e9e39f249a16976918f6564b8830bc894c89659",
        "--token-source",
        "Secret hf-secret (key hf_api_token)",
        "--work-dir",
        render.CONVERT_WORK_DIR,
    ]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "hf_api_token"}}} in c["env"]
    assert {"name": "HF_ENDPOINT", "value": "http://hub.internal"} in c["env"]
    assert {"name": "HF_HOME", "value": f"{render.CONVERT_WORK_DIR}/hf-home"} in c["env"]
    assert c["resources"] == {"requests": {"memory": "4Gi", "cpu": "2"}, "limits": {"memory": "4Gi"}}
    (volume,) = obj["spec"]["template"]["spec"]["volumes"]
    assert volume["emptyDir"]["sizeLimit"] == render.MIRROR_WORK_DIR_SIZE
    assert render.mirror_model_path(hf_spec()) == "gs://bkt/llama3.1-8b/hf"


def test_mirror_job_from_a_gcs_directory_has_no_token(settings: OperatorSettings) -> None:
    spec = hf_spec(huggingFace=None, source="gs://bkt/export/")
    obj = render.render_mirror_job(spec, OWNER, settings)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    (c,) = containers(obj)
    assert c["args"][6:8] == ["--source", "gs://bkt/export/"]
    assert "--repo-id" not in c["args"]
    assert "--token-source" not in c["args"]
    assert not any(e["name"] == "HF_TOKEN" for e in c["env"])
