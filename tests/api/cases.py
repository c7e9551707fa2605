"""Valid and invalid API objects shared by the model unit tests and the API-server tests.

Each invalid case says which field is wrong and what the API server's message must contain, so that the same
table proves both that the CRD (OpenAPI + CEL) refuses the object with a message naming the field and that the
pydantic models (what the operator parses with) refuse it too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from tpuserve import tpu

DELETE = object()  # a change that removes the field


def base_checkpoint(name: str = "llama2-7b") -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "LlamaCheckpoint",
        "metadata": {"name": name},
        "spec": {"source": "gs://models-bucket/llama2-7b/meta", "output": "gs://models-bucket/llama2-7b/maxtext"},
    }


def base_server(name: str = "server") -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "InferenceServer",
        "metadata": {"name": name},
        "spec": {"checkpointRef": {"name": "llama2-7b"}, "tpu": {"accelerator": "v5e", "topology": "2x4"}},
    }


def base_benchmark(name: str = "bench") -> dict[str, Any]:
    return {
        "apiVersion": "tpuserve.dev/v1alpha1",
        "kind": "BenchmarkRun",
        "metadata": {"name": name},
        "spec": {"serverRef": {"name": "server"}},
    }


BASES = {"LlamaCheckpoint": base_checkpoint, "InferenceServer": base_server, "BenchmarkRun": base_benchmark}


def mutate(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj with dotted-path changes applied (value DELETE removes the key)."""
    out = copy.deepcopy(obj)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return out


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    changes: dict[str, Any]
    # Substrings the API server's error must contain: the field path first (as the error's subject, `path: `, or
    # quoted for unknown fields), then the words of the message.
    expected: tuple[str, ...] = field(default=())

    def object(self, name: str | None = None) -> dict[str, Any]:
        obj = mutate(BASES[self.kind](), self.changes)
        if name:
            obj["metadata"]["name"] = name
        return obj


CK, IS, BR = "LlamaCheckpoint", "InferenceServer", "BenchmarkRun"
# An InferenceServer on runtime vllm-tpu: Llama 3.1 8B from a Hugging Face mirror on v6e 2x4.
VLLM: dict[str, Any] = {
    "spec.runtime": "vllm-tpu",
    "spec.model": "llama3.1-8b",
    "spec.checkpointRef": {"name": "llama31-8b-hf"},
    "spec.tpu": {"accelerator": "v6e", "topology": "2x4"},
}

INVALID: tuple[Case, ...] = (
    # TPU slice against the catalog
    Case(
        "v5e-3d-topology",
        IS,
        {"spec.tpu.topology": "2x2x1"},
        ("spec.tpu.topology", "is not a v5e slice shape", "1x1, 2x2, 2x4"),
    ),
    Case(
        "v4-2d-topology",
        IS,
        {"spec.tpu": {"accelerator": "v4", "topology": "2x2"}},
        ("spec.tpu.topology", "is not a v4 slice shape", "2x2x1"),
    ),
    Case(
        "v6e-odd-shape",
        IS,
        {"spec.tpu": {"accelerator": "tpu-v6e-slice", "topology": "2x3"}},
        ("spec.tpu.topology", "is not a v6e slice shape", "1x1, 2x2, 2x4"),
    ),
    Case(
        "v5p-1x1",
        IS,
        {"spec.tpu": {"accelerator": "v5p", "topology": "1x1"}},
        ("spec.tpu.topology", "is not a v5p slice shape", "2x2x1"),
    ),
    Case(
        "v5e-multi-host",
        IS,
        {"spec.tpu.topology": "4x4"},
        ("spec.tpu.topology", "spans several v5e hosts", "multi-host", "1x1, 2x2, 2x4"),
    ),
    Case(
        "v4-multi-host",
        IS,
        {"spec.tpu": {"accelerator": "tpu-v4-podslice", "topology": "2x2x2"}},
        ("spec.tpu.topology", "spans several v4 hosts", "multi-host", "2x2x1"),
    ),
    Case(
        "v6e-multi-host-label",
        IS,
        {"spec.tpu": {"accelerator": "tpu-v6e-slice", "topology": "8x8"}},
        ("spec.tpu.topology", "spans several v6e hosts"),
    ),
    Case("unknown-accelerator", IS, {"spec.tpu.accelerator": "v3"}, ("spec.tpu.accelerator", "Unsupported value")),
    Case("accelerator-wrong-case", IS, {"spec.tpu.accelerator": "V5E"}, ("spec.tpu.accelerator", "Unsupported value")),
    Case("malformed-topology", IS, {"spec.tpu.topology": "2by4"}, ("spec.tpu.topology", "should match")),
    Case("missing-topology", IS, {"spec.tpu.topology": DELETE}, ("spec.tpu.topology", "Required value")),
    # A typo is refused (kubectl's strict field validation), not silently pruned.
    Case(
        "misspelt-field",
        IS,
        {"spec.engine": {"maxTargetLenght": 4096}},
        ('"spec.engine.maxTargetLenght"', "unknown field"),
    ),
    # checkpoint source of a server
    Case(
        "both-checkpoint-ref-and-path",
        IS,
        {"spec.checkpointPath": "gs://models-bucket/x/checkpoints/0/items"},
        ("spec", "set exactly one of checkpointRef or checkpointPath"),
    ),
    Case(
        "neither-checkpoint-ref-nor-path",
        IS,
        {"spec.checkpointRef": DELETE},
        ("spec", "set exactly one of checkpointRef or checkpointPath"),
    ),
    Case(
        "server-checkpoint-path-not-gs",
        IS,
        {"spec.checkpointRef": DELETE, "spec.checkpointPath": "s3://b/x"},
        ("spec.checkpointPath", "should match", "gs://"),
    ),
    Case(
        "server-checkpoint-ref-bad-name",
        IS,
        {"spec.checkpointRef.name": "Not_A_Name"},
        ("spec.checkpointRef.name", "should match"),
    ),
    Case("unknown-model", IS, {"spec.model": "llama3-8b"}, ("spec.model", "Unsupported value")),
    # engine ranges and consistency
    Case(
        "prefill-not-below-target",
        IS,
        {"spec.engine": {"maxPrefillPredictLength": 2048, "maxTargetLength": 2048}},
        ("spec.engine.maxPrefillPredictLength", "must be less than spec.engine.maxTargetLength"),
    ),
    Case(
        "prefill-default-above-target",
        IS,
        {"spec.engine": {"maxTargetLength": 512}},
        ("spec.engine.maxPrefillPredictLength", "must be less than spec.engine.maxTargetLength"),
    ),
    Case(
        "negative-target-length",
        IS,
        {"spec.engine": {"maxTargetLength": -5}},
        ("spec.engine.maxTargetLength", "greater than or equal to 2"),
    ),
    Case(
        "zero-prefill-length",
        IS,
        {"spec.engine": {"maxPrefillPredictLength": 0}},
        ("spec.engine.maxPrefillPredictLength", "greater than or equal to 1"),
    ),
    Case(
        "zero-batch-size",
        IS,
        {"spec.engine": {"perDeviceBatchSize": 0}},
        ("spec.engine.perDeviceBatchSize", "greater than 0"),
    ),
    Case(
        "zero-parallelism",
        IS,
        {"spec.engine": {"iciTensorParallelism": 0}},
        ("spec.engine", "ICI parallelism values must be -1"),
    ),
    Case(
        "two-auto-parallelism-axes",
        IS,
        {"spec.engine": {"iciFsdpParallelism": -1}},
        ("spec.engine", "at most one of iciFsdpParallelism, iciAutoregressiveParallelism, iciTensorParallelism"),
    ),
    Case(
        "parallelism-exceeds-chips",
        IS,
        {"spec.tpu.topology": "2x2", "spec.engine": {"iciTensorParallelism": 8}},
        ("spec.engine", "must multiply to the chips of spec.tpu.topology"),
    ),
    Case(
        "auto-axis-does-not-divide-chips",
        IS,
        {"spec.engine": {"iciFsdpParallelism": 3}},
        ("spec.engine", "or divide them when one of them is -1"),
    ),
    Case(
        "extra-arg-overrides-typed-field",
        IS,
        {"spec.engine": {"extraArgs": {"max_target_length": "4096"}}},
        ("spec.engine.extraArgs", "may not set a key"),
    ),
    Case(
        "extra-arg-bad-key",
        IS,
        {"spec.engine": {"extraArgs": {"Ragged-Attention": "true"}}},
        ("spec.engine.extraArgs", "lower_snake_case"),
    ),
    # Credentials never in plain extraArgs: the message names the key and where its value should come from.
    Case(
        "extra-arg-credential-token",
        IS,
        {"spec.engine": {"extraArgs": {"ragged_attention": "true", "hf_access_token": "hf_abc"}}},
        ("spec.engine.extraArgs", "spec.engine.extraArgs.hf_access_token looks like a credential", "extraArgsFrom"),
    ),
    Case(
        "extra-arg-credential-password",
        IS,
        {"spec.engine": {"extraArgs": {"db_password": "x"}}},
        ("spec.engine.extraArgs", "spec.engine.extraArgs.db_password looks like a credential"),
    ),
    Case(
        "extra-arg-credential-key",
        IS,
        {"spec.engine": {"extraArgs": {"api_key": "x"}}},
        ("spec.engine.extraArgs", "spec.engine.extraArgs.api_key looks like a credential"),
    ),
    Case(
        "extra-arg-credential-secret",
        IS,
        {"spec.engine": {"extraArgs": {"client_secret": "x"}}},
        ("spec.engine.extraArgs", "spec.engine.extraArgs.client_secret looks like a credential"),
    ),
    Case(
        "extra-args-from-also-in-extra-args",
        IS,
        {
            "spec.engine": {
                "extraArgs": {"ragged_attention": "true"},
                "extraArgsFrom": {"ragged_attention": {"secretKeyRef": {"name": "s", "key": "k"}}},
            }
        },
        ("spec.engine.extraArgsFrom", "may not also be set in spec.engine.extraArgs"),
    ),
    Case(
        "extra-args-from-managed-key",
        IS,
        {"spec.engine": {"extraArgsFrom": {"model_name": {"secretKeyRef": {"name": "s", "key": "k"}}}}},
        ("spec.engine.extraArgsFrom", "may not set a key the typed engine fields or the operator set"),
    ),
    Case(
        "extra-args-from-bad-key",
        IS,
        {"spec.engine": {"extraArgsFrom": {"HF-Token": {"secretKeyRef": {"name": "s", "key": "k"}}}}},
        ("spec.engine.extraArgsFrom", "lower_snake_case"),
    ),
    Case(
        "extra-args-from-secret-without-key",
        IS,
        {"spec.engine": {"extraArgsFrom": {"hf_access_token": {"secretKeyRef": {"name": "hf"}}}}},
        ("spec.engine.extraArgsFrom.hf_access_token.secretKeyRef.key", "Required value"),
    ),
    Case("negative-replicas", IS, {"spec.replicas": -1}, ("spec.replicas", "greater than or equal to 0")),
    Case(
        "metrics-port-out-of-range",
        IS,
        {"spec.metrics": {"port": 70000}},
        ("spec.metrics.port", "less than or equal to 65535"),
    ),
    Case(
        "attention-unknown",
        IS,
        {"spec.engine": {"attention": "paged-magic"}},
        ("spec.engine.attention", "Unsupported value"),
    ),
    # runtime: what belongs to which runtime, and vLLM's settings
    Case("unknown-runtime", IS, {"spec.runtime": "vllm-gpu"}, ("spec.runtime", "Unsupported value")),
    Case(
        "vllm-section-on-jetstream",
        IS,
        {"spec.vllm": {"maxModelLen": 4096}},
        ("spec.vllm", "applies to runtime vllm-tpu only"),
    ),
    Case(
        "hub-model-on-jetstream",
        IS,
        {"spec.checkpointRef": DELETE, "spec.huggingFace": {"repoId": "meta-llama/Llama-2-7b-hf"}},
        ("spec.huggingFace", "applies to runtime vllm-tpu only"),
    ),
    Case(
        "llama3-on-jetstream",
        IS,
        {"spec.model": "llama3.1-8b"},
        ("spec.model", "llama3.1-8b is not served by runtime jetstream-maxtext", "vllm-tpu"),
    ),
    Case(
        "engine-on-vllm",
        IS,
        {**VLLM, "spec.engine": {"maxTargetLength": 4096}},
        ("spec.engine", "applies to runtime jetstream-maxtext only"),
    ),
    Case(
        "tokenizer-path-on-vllm",
        IS,
        {**VLLM, "spec.tokenizerPath": "assets/tokenizer.llama2"},
        ("spec.tokenizerPath", "applies to runtime jetstream-maxtext only"),
    ),
    Case(
        "http-image-on-vllm",
        IS,
        {**VLLM, "spec.httpImage": "example.com/jetstream-http:v1"},
        ("spec.httpImage", "applies to runtime jetstream-maxtext only"),
    ),
    Case(
        "vllm-two-weight-sources",
        IS,
        {**VLLM, "spec.huggingFace": {"repoId": "meta-llama/Llama-3.1-8B-Instruct"}},
        ("spec", "set exactly one of checkpointRef or checkpointPath"),
    ),
    Case(
        "vllm-bad-repo-id",
        IS,
        {**VLLM, "spec.checkpointRef": DELETE, "spec.huggingFace": {"repoId": "Llama-3.1-8B"}},
        ("spec.huggingFace.repoId", "should match"),
    ),
    Case(
        "vllm-tensor-parallel-not-dividing",
        IS,
        {**VLLM, "spec.vllm": {"tensorParallelSize": 3}},
        ("spec.vllm.tensorParallelSize", "must divide the chips of spec.tpu.topology"),
    ),
    Case(
        "vllm-weights-exceed-hbm",
        IS,
        {**VLLM, "spec.model": "llama2-70b", "spec.tpu": {"accelerator": "v5e", "topology": "1x1"}},
        ("spec", "llama2-70b needs 128.5 GiB of bf16 weights", "v5e 1x1 offers 14.9 GiB of HBM"),
    ),
    Case(
        "vllm-kv-cache-exceeds-hbm",
        IS,
        {**VLLM, "spec.tpu": {"accelerator": "v6e", "topology": "1x1"}, "spec.vllm": {"maxModelLen": 131072}},
        ("spec", "llama3.1-8b needs 15.0 GiB", "128 KiB of KV cache per token", "v6e 1x1 offers 29.8 GiB"),
    ),
    Case(
        "vllm-hbm-utilization-above-one",
        IS,
        {**VLLM, "spec.vllm": {"hbmUtilization": 1.5}},
        ("spec.vllm.hbmUtilization", "less than or equal to 1"),
    ),
    Case(
        "vllm-extra-arg-not-a-flag",
        IS,
        {**VLLM, "spec.vllm": {"extraArgs": ["async-scheduling"]}},
        ("spec.vllm.extraArgs", "must be vLLM flags"),
    ),
    Case(
        "vllm-extra-arg-managed",
        IS,
        {**VLLM, "spec.vllm": {"extraArgs": ["--max-model-len=8192"]}},
        ("spec.vllm.extraArgs", "may not set a flag"),
    ),
    # Credentials never in vLLM flags (the value would be readable in the object and the Deployment).
    Case(
        "vllm-extra-arg-hf-token",
        IS,
        {**VLLM, "spec.vllm": {"extraArgs": ["--async-scheduling", "--hf-token=hf_abc"]}},
        ("spec.vllm.extraArgs", "may not carry a credential", "tokenSecretRef"),
    ),
    Case(
        "vllm-extra-arg-api-key",
        IS,
        {**VLLM, "spec.vllm": {"extraArgs": ["--api-key=x"]}},
        ("spec.vllm.extraArgs", "may not carry a credential"),
    ),
    Case(
        "vllm-unknown-weight-loading",
        IS,
        {**VLLM, "spec.vllm": {"weightLoading": "nfs"}},
        ("spec.vllm.weightLoading", "Unsupported value"),
    ),
    # LlamaCheckpoint
    Case(
        "checkpoint-source-local-path",
        CK,
        {"spec.source": "/home/me/llama-2-7b"},
        ("spec.source", "should match", "gs://"),
    ),
    Case(
        "checkpoint-output-is-source",
        CK,
        {"spec.output": "gs://models-bucket/llama2-7b/meta/"},
        ("spec.output", "must differ from spec.source"),
    ),
    Case("checkpoint-output-no-bucket", CK, {"spec.output": "gs://"}, ("spec.output", "should match")),
    Case("checkpoint-source-missing", CK, {"spec.source": DELETE}, ("spec.source", "Required value")),
    Case("checkpoint-unknown-dtype", CK, {"spec.weightDtype": "fp64"}, ("spec.weightDtype", "Unsupported value")),
    Case(
        "checkpoint-unknown-preset",
        CK,
        {"spec.converter": {"preset": "nvidia"}},
        ("spec.converter.preset", "Unsupported value"),
    ),
    Case(
        "checkpoint-bad-memory-quantity",
        CK,
        {"spec.converter": {"resources": {"requests": {"memory": "lots"}}}},
        ("spec.converter.resources.requests.memory", "should match"),
    ),
    Case(
        "checkpoint-bad-work-dir-size",
        CK,
        {"spec.converter": {"workDirSizeLimit": "huge"}},
        ("spec.converter.workDirSizeLimit", "should match"),
    ),
    Case(
        "checkpoint-bad-toleration-operator",
        CK,
        {"spec.converter": {"tolerations": [{"key": "pool", "operator": "Maybe"}]}},
        ("spec.converter.tolerations[0].operator", "Unsupported value"),
    ),
    # LlamaCheckpoint, format huggingface (the Hugging Face mirror)
    Case(
        "checkpoint-meta-with-hugging-face",
        CK,
        {"spec.huggingFace": {"repoId": "meta-llama/Llama-3.1-8B-Instruct"}},
        ("spec.huggingFace", "applies to format huggingface only"),
    ),
    Case(
        "checkpoint-hf-both-sources",
        CK,
        {"spec.format": "huggingface", "spec.huggingFace": {"repoId": "meta-llama/Llama-3.1-8B-Instruct"}},
        ("spec", "format huggingface needs exactly one of source", "or huggingFace"),
    ),
    Case(
        "checkpoint-hf-no-source",
        CK,
        {"spec.format": "huggingface", "spec.source": DELETE},
        ("spec", "format huggingface needs exactly one of source", "or huggingFace"),
    ),
    Case(
        "checkpoint-hf-quantization",
        CK,
        {"spec.format": "huggingface", "spec.quantization": "int8"},
        ("spec.quantization", "applies to format meta only"),
    ),
    Case(
        "checkpoint-hf-google-preset",
        CK,
        {"spec.format": "huggingface", "spec.converter": {"preset": "inference-checkpoint"}},
        ("spec.converter.preset", "converts Meta checkpoints only"),
    ),
    Case(
        "checkpoint-hf-repo-id-without-namespace",
        CK,
        {"spec.format": "huggingface", "spec.source": DELETE, "spec.huggingFace": {"repoId": "Llama-3.1-8B"}},
        ("spec.huggingFace.repoId", "should match"),
    ),
    Case(
        "checkpoint-hf-empty-revision",
        CK,
        {"spec.format": "huggingface", "spec.source": DELETE, "spec.huggingFace": {"repoId": "a/b", "revision": ""}},
        ("spec.huggingFace.revision", "at least 1 chars long"),
    ),
    Case(
        "checkpoint-hf-bad-secret-name",
        CK,
        {
            "spec.format": "huggingface",
            "spec.source": DELETE,
            "spec.huggingFace": {"repoId": "a/b", "tokenSecretRef": {"name": "HF_Secret"}},
        },
        ("spec.huggingFace.tokenSecretRef.name", "should match"),
    ),
    Case(
        "checkpoint-meta-llama3",
        CK,
        {"spec.model": "llama3.1-8b"},
        ("spec.model", "llama3.1-8b: format meta converts Meta checkpoints of llama2-7b", "spec.format: huggingface"),
    ),
    Case(
        "checkpoint-unknown-format",
        CK,
        {"spec.format": "safetensors"},
        ("spec.format", "Unsupported value"),
    ),
    # BenchmarkRun
    Case(
        "bench-both-server-and-target",
        BR,
        {"spec.target": {"host": "10.0.0.5"}},
        ("spec", "set exactly one of serverRef or target"),
    ),
    Case(
        "bench-neither-server-nor-target",
        BR,
        {"spec.serverRef": DELETE},
        ("spec", "set exactly one of serverRef or target"),
    ),
    Case("bench-rate-word", BR, {"spec.requestRate": "fast"}, ("spec.requestRate", "should match")),
    Case(
        "bench-rate-unquoted-decimal",
        BR,
        {"spec.requestRate": 2.5},
        ("spec.requestRate", "must be of type integer,string"),
    ),
    Case("bench-rate-zero", BR, {"spec.requestRate": 0}, ("spec.requestRate", "positive number")),
    Case("bench-rate-zero-string", BR, {"spec.requestRate": "0.0"}, ("spec.requestRate", "should match")),
    Case(
        "bench-rate-and-concurrency",
        BR,
        {"spec.requestRate": 4, "spec.concurrency": 8},
        ("spec", "at most one of requestRate, sweep or concurrency"),
    ),
    Case(
        "bench-sweep-and-rate",
        BR,
        {"spec.requestRate": "inf", "spec.sweep": {"rates": [1, 2]}},
        ("spec", "at most one of requestRate, sweep or concurrency"),
    ),
    Case("bench-sweep-empty", BR, {"spec.sweep": {"rates": []}}, ("spec.sweep.rates", "at least 1 items")),
    Case("bench-sweep-zero-rate", BR, {"spec.sweep": {"rates": [1, 0]}}, ("spec.sweep.rates[1]", "positive number")),
    Case("bench-zero-prompts", BR, {"spec.numPrompts": 0}, ("spec.numPrompts", "greater than or equal to 1")),
    Case(
        "bench-negative-output-length",
        BR,
        {"spec.maxOutputLength": -1},
        ("spec.maxOutputLength", "greater than or equal to 1"),
    ),
    Case("bench-unknown-dataset", BR, {"spec.dataset": {"name": "c4"}}, ("spec.dataset.name", "Unsupported value")),
    Case(
        "bench-synthetic-without-lengths",
        BR,
        {"spec.dataset": {"name": "synthetic"}},
        ("spec.dataset.synthetic", "required when spec.dataset.name is synthetic"),
    ),
    Case(
        "bench-lengths-without-synthetic",
        BR,
        {"spec.dataset": {"name": "openorca", "synthetic": {"inputLength": 8, "outputLength": 8}}},
        ("spec.dataset.synthetic", "only then"),
    ),
    Case(
        "bench-dataset-relative-path",
        BR,
        {"spec.dataset": {"path": "data/openorca.pkl"}},
        ("spec.dataset.path", "should match"),
    ),
    Case(
        "bench-save-outputs-without-output",
        BR,
        {"spec.saveRequestOutputs": True},
        ("spec.saveRequestOutputs", "needs spec.output"),
    ),
    Case("bench-output-not-gs", BR, {"spec.output": "s3://results/run1"}, ("spec.output", "should match")),
    Case("bench-timeout-word", BR, {"spec.timeout": "forever"}, ("spec.timeout", "should match")),
    Case("bench-empty-slo", BR, {"spec.slo": {}}, ("spec.slo", "set ttftMs, tpotMs or both")),
    Case("bench-negative-slo", BR, {"spec.slo": {"ttftMs": -1}}, ("spec.slo.ttftMs", "greater than 0")),
    Case("bench-unknown-warmup", BR, {"spec.warmup": "twice"}, ("spec.warmup", "Unsupported value")),
    # Names that could not become child names (issue 13): the Service is a DNS-1035 label, Jobs get a suffix.
    Case(
        "server-name-with-dot",
        IS,
        {"metadata.name": "llama.v5e"},
        ("metadata.name", "is the name of its Service (a DNS-1035 label)"),
    ),
    Case(
        "server-name-starts-with-digit",
        IS,
        {"metadata.name": "7b-server"},
        ("metadata.name", "starting with a letter"),
    ),
    Case("server-name-64", IS, {"metadata.name": "s" * 64}, ("metadata.name", "at most 63 lowercase letters")),
    Case(
        "checkpoint-name-56",
        CK,
        {"metadata.name": "c" * 56},
        ("metadata.name", "may have at most 55 characters", "<name>-convert"),
    ),
    Case(
        "bench-name-58",
        BR,
        {"metadata.name": "b" * 58},
        ("metadata.name", "may have at most 57 characters", "<name>-bench"),
    ),
    # Maps passed through to children: keys and values Kubernetes would refuse on the pod.
    Case(
        "bench-annotation-key-with-space",
        BR,
        {"spec.podAnnotations": {"my key": "v"}},
        ("spec.podAnnotations", "must be Kubernetes label/annotation keys"),
    ),
    Case(
        "server-annotation-key-two-slashes",
        IS,
        {"spec.podAnnotations": {"a/b/c": "v"}},
        ("spec.podAnnotations", "must be Kubernetes label/annotation keys"),
    ),
    Case(
        "checkpoint-annotation-name-64",
        CK,
        {"spec.converter": {"podAnnotations": {"example.com/" + "n" * 64: "v"}}},
        ("spec.converter.podAnnotations", "must be Kubernetes label/annotation keys"),
    ),
    Case(
        "bench-node-selector-bad-value",
        BR,
        {"spec.nodeSelector": {"pool": "high mem"}},
        ("spec.nodeSelector.pool", "should match"),
    ),
    Case(
        "checkpoint-node-selector-bad-key",
        CK,
        {"spec.converter": {"nodeSelector": {"-pool": "a"}}},
        ("spec.converter.nodeSelector", "must be Kubernetes label/annotation keys"),
    ),
    Case(
        "bench-annotation-value-too-long",
        BR,
        {"spec.podAnnotations": {"a": "v" * 4097}},
        ("spec.podAnnotations.a", "may not be more than 4096 bytes"),
    ),
    Case(
        "bench-too-many-annotations",
        BR,
        {"spec.podAnnotations": {f"k{i}": "v" for i in range(65)}},
        ("spec.podAnnotations", "must have at most 64 items"),
    ),
    Case(
        "server-image-too-long",
        IS,
        {"spec.image": "r/" + "i" * 1024},
        ("spec.image", "may not be more than 1024 bytes"),
    ),
    Case(
        "checkpoint-too-many-tolerations",
        CK,
        {"spec.converter": {"tolerations": [{"operator": "Exists"}] * 65}},
        ("spec.converter.tolerations", "must have at most 64 items"),
    ),
    # gs:// paths the tools would misread, and an output nested in its source (or the reverse).
    Case(
        "checkpoint-source-wildcard",
        CK,
        {"spec.source": "gs://models-bucket/llama2-7b/*"},
        ("spec.source", "should match"),
    ),
    Case(
        "checkpoint-output-with-space",
        CK,
        {"spec.output": "gs://models-bucket/my output"},
        ("spec.output", "should match"),
    ),
    Case(
        "checkpoint-output-dot-dot",
        CK,
        {"spec.output": "gs://models-bucket/llama2-7b/../meta"},
        ("spec.output", "should match"),
    ),
    Case(
        "checkpoint-output-double-slash",
        CK,
        {"spec.output": "gs://models-bucket//maxtext"},
        ("spec.output", "should match"),
    ),
    Case(
        "server-checkpoint-path-hash",
        IS,
        {"spec.checkpointRef": DELETE, "spec.checkpointPath": "gs://models-bucket/x#1/items"},
        ("spec.checkpointPath", "should match"),
    ),
    Case(
        "checkpoint-output-inside-source",
        CK,
        {"spec.output": "gs://models-bucket/llama2-7b/meta/maxtext"},
        ("spec.output", "neither may lie inside the other"),
    ),
    Case(
        "checkpoint-source-inside-output",
        CK,
        {"spec.output": "gs://models-bucket/llama2-7b/"},
        ("spec.output", "neither may lie inside the other"),
    ),
    Case(
        "bench-openai-options-on-a-jetstream-target",
        BR,
        {"spec.serverRef": DELETE, "spec.target": {"host": "h"}, "spec.openai": {"ignoreEos": True}},
        ("spec.openai", "applies to the openai protocol"),
    ),
    Case(
        "bench-target-unknown-protocol",
        BR,
        {"spec.serverRef": DELETE, "spec.target": {"host": "h", "protocol": "http"}},
        ("spec.target.protocol", "Unsupported value"),
    ),
    Case(
        "bench-openai-unknown-endpoint",
        BR,
        {"spec.openai": {"endpoint": "/v1/embeddings"}},
        ("spec.openai.endpoint", "Unsupported value"),
    ),
    Case(
        "bench-burstiness-with-concurrency",
        BR,
        {"spec.concurrency": 4, "spec.burstiness": 0.5},
        ("spec", "burstiness and maxConcurrency shape a request rate"),
    ),
    Case(
        "bench-max-concurrency-with-concurrency",
        BR,
        {"spec.concurrency": 4, "spec.maxConcurrency": 2},
        ("spec", "burstiness and maxConcurrency shape a request rate"),
    ),
    Case("bench-burstiness-zero", BR, {"spec.burstiness": 0}, ("spec.burstiness", "greater than 0")),
    Case(
        "bench-max-concurrency-zero",
        BR,
        {"spec.maxConcurrency": 0},
        ("spec.maxConcurrency", "greater than or equal to 1"),
    ),
    Case(
        "bench-api-key-secret-without-key",
        BR,
        {"spec.openai": {"apiKeySecret": {"name": "vllm-key"}}},
        ("spec.openai.apiKeySecret.key", "Required value"),
    ),
    Case(
        "bench-target-port-zero",
        BR,
        {"spec.serverRef": DELETE, "spec.target": {"host": "h", "port": 0}},
        ("spec.target.port", "greater than or equal to 1"),
    ),
)

VALID: tuple[Case, ...] = (
    Case("checkpoint-defaults", CK, {}),
    Case(
        "checkpoint-google-preset",
        CK,
        {
            "spec.converter": {
                "preset": "inference-checkpoint",
                "resources": {"requests": {"memory": "128Gi", "cpu": 8}},
                "workDirSizeLimit": "40Gi",
                "nodeSelector": {"pool": "highmem"},
                "tolerations": [{"key": "pool", "operator": "Equal", "value": "highmem", "effect": "NoSchedule"}],
                "podAnnotations": {"sim.tpuserve.dev/exit-code": "0"},
            }
        },
    ),
    Case(
        "checkpoint-13b-float32-int8",
        CK,
        {"spec.model": "llama2-13b", "spec.weightDtype": "float32", "spec.quantization": "int8"},
    ),
    Case(
        "checkpoint-hf-repo-with-token",
        CK,
        {
            "spec.model": "llama3.1-8b",
            "spec.format": "huggingface",
            "spec.source": DELETE,
            "spec.huggingFace": {
                "repoId": "meta-llama/Llama-3.1-8B-Instruct",
                "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
                "tokenSecretRef": {"name": "hf-secret", "key": "token"},
            },
        },
    ),
    Case(
        "checkpoint-hf-public-repo",
        CK,
        {"spec.format": "huggingface", "spec.source": DELETE, "spec.huggingFace": {"repoId": "a/b"}},
    ),
    Case(
        "checkpoint-hf-gcs-directory",
        CK,
        {
            "spec.model": "llama3.3-70b",
            "spec.format": "huggingface",
            "spec.source": "gs://models-bucket/llama/hf-export",
        },
    ),
    Case("server-checkpoint-ref", IS, {}),
    Case(
        "server-checkpoint-path",
        IS,
        {"spec.checkpointRef": DELETE, "spec.checkpointPath": "gs://models-bucket/x/checkpoints/0/items"},
    ),
    Case("server-prefill-just-below-target", IS, {"spec.engine": {"maxPrefillPredictLength": 2047}}),
    Case(
        "server-explicit-parallelism",
        IS,
        {"spec.engine": {"iciFsdpParallelism": 1, "iciAutoregressiveParallelism": 1, "iciTensorParallelism": 8}},
    ),
    Case(
        "server-v4-fsdp-2-tensor-auto",
        IS,
        {"spec.tpu": {"accelerator": "v4", "topology": "2x2x1"}, "spec.engine": {"iciFsdpParallelism": 2}},
    ),
    Case(
        "server-auto-fsdp",
        IS,
        {"spec.engine": {"iciFsdpParallelism": -1, "iciAutoregressiveParallelism": 1, "iciTensorParallelism": 1}},
    ),
    Case(
        "server-extra-args",
        IS,
        {
            "spec.engine": {"extraArgs": {"ragged_attention": "true"}},
            "spec.engine.quantization": "int8",
            "spec.engine.quantizeKvcache": True,
        },
    ),
    Case(
        "server-extra-args-from-secret",
        IS,
        {
            "spec.engine": {
                "extraArgs": {"ragged_attention": "true"},
                "extraArgsFrom": {"hf_access_token": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
            }
        },
    ),
    # Names that contain a credential word but are known MaxText serving settings (KV-cache layout).
    Case(
        "server-extra-args-kv-cache-layout",
        IS,
        {"spec.engine": {"extraArgs": {"ar_key_axis_order": "0,2,1,3", "prefill_key_axis_order": "0,2,1,3"}}},
    ),
    Case("server-scaled-to-zero", IS, {"spec.replicas": 0, "spec.metrics": {"podMonitoring": True}}),
    Case("server-runtime-jetstream-explicit", IS, {"spec.runtime": "jetstream-maxtext"}),
    Case("server-vllm-mirror-ref", IS, VLLM),
    Case(
        "server-vllm-gcs-directory",
        IS,
        {
            **VLLM,
            "spec.checkpointRef": DELETE,
            "spec.checkpointPath": "gs://models-bucket/llama3.1-8b/hf",
            "spec.vllm": {
                "maxModelLen": 4096,
                "maxNumSeqs": 256,
                "maxNumBatchedTokens": 1024,
                "tensorParallelSize": 4,
                "enablePrefixCaching": False,
                "hbmUtilization": 0.95,
                "weightLoading": "gcsfuse",
                "extraArgs": ["--async-scheduling", "--seed=42"],
            },
        },
    ),
    Case(
        "server-vllm-hub-model",
        IS,
        {
            **VLLM,
            "spec.checkpointRef": DELETE,
            "spec.huggingFace": {
                "repoId": "meta-llama/Llama-3.1-8B-Instruct",
                "revision": "main",
                "tokenSecretRef": {"name": "hf-secret"},
            },
            "spec.tpu": {"accelerator": "v6e", "topology": "1x1"},
        },
    ),
    Case(
        "server-vllm-llama33-70b-v6e-2x4",
        IS,
        {**VLLM, "spec.model": "llama3.3-70b", "spec.vllm": {"maxModelLen": 4096, "maxNumBatchedTokens": 512}},
    ),
    Case("server-vllm-engine-left-at-defaults", IS, {**VLLM, "spec.engine": {"maxTargetLength": 2048}}),
    # Flags with credential-looking parts inside a word are not credentials.
    Case(
        "server-vllm-token-words-that-are-not-credentials",
        IS,
        {**VLLM, "spec.vllm": {"extraArgs": ["--tokenizer-mode=auto", "--max-logprobs=5", "--keyless"]}},
    ),
    Case("server-name-63", IS, {"metadata.name": "s" * 63}),
    Case("checkpoint-name-55-with-dots", CK, {"metadata.name": "c." + "c" * 53}),
    Case("bench-name-57", BR, {"metadata.name": "b" * 57}),
    Case(
        "checkpoint-sibling-prefixes-and-odd-characters",
        CK,
        {
            "spec.source": "gs://models-bucket/llama2-7b/meta",
            "spec.output": "gs://models-bucket/llama2-7b/meta-maxtext_v1=a,b@c:d~e+f/",
        },
    ),
    Case(
        "bench-annotations-and-labels-at-the-limits",
        BR,
        {
            "spec.podAnnotations": {"example.com/" + "n" * 63: "v" * 4096, **{f"k{i}": "" for i in range(63)}},
            "spec.nodeSelector": {"cloud.google.com/gke-nodepool": "p" * 63, "empty": ""},
        },
    ),
    Case("bench-defaults", BR, {}),
    Case("bench-target", BR, {"spec.serverRef": DELETE, "spec.target": {"host": "10.0.0.5", "port": 9000}}),
    Case("bench-integer-rate", BR, {"spec.requestRate": 4}),
    Case("bench-decimal-rate", BR, {"spec.requestRate": "2.5"}),
    Case("bench-fraction-rate", BR, {"spec.requestRate": ".5"}),
    Case("bench-inf-rate", BR, {"spec.requestRate": "inf"}),
    Case("bench-sweep", BR, {"spec.sweep": {"rates": [1, "2.5", "inf"]}}),
    Case("bench-concurrency", BR, {"spec.concurrency": 64}),
    Case(
        "bench-openai-target",
        BR,
        {
            "spec.serverRef": DELETE,
            "spec.target": {"protocol": "openai", "host": "vllm.default.svc", "port": 8000},
            "spec.openai": {
                "endpoint": "/v1/chat/completions",
                "ignoreEos": True,
                "apiKeySecret": {"name": "vllm-key", "key": "api_key"},
            },
            "spec.requestRate": "2.5",
            "spec.burstiness": 0.5,
            "spec.maxConcurrency": 32,
        },
    ),
    Case(
        "bench-openai-options-for-a-server-ref",
        BR,
        {"spec.openai": {"ignoreEos": True}, "spec.sweep": {"rates": [1, 2]}, "spec.maxConcurrency": 8},
    ),
    Case(
        "bench-synthetic",
        BR,
        {"spec.dataset": {"name": "synthetic", "synthetic": {"inputLength": 128, "outputLength": 64}}},
    ),
    Case("bench-sharegpt-gcs", BR, {"spec.dataset": {"name": "sharegpt", "path": "gs://data-bucket/sharegpt.json"}}),
    Case("bench-openorca-in-image", BR, {"spec.dataset": {"path": "/opt/datasets/openorca.pkl"}}),
    Case("bench-save-outputs", BR, {"spec.saveRequestOutputs": True, "spec.output": "gs://results-bucket/run1"}),
    Case("bench-slo-ttft-only", BR, {"spec.slo": {"ttftMs": 500}, "spec.timeout": "1h30m"}),
    Case(
        "bench-placement",
        BR,
        {
            "spec.nodeSelector": {"tpuserve.dev/local-node": "true"},
            "spec.tolerations": [{"key": "tpuserve.dev/local-node", "operator": "Exists", "effect": "NoSchedule"}],
            "spec.podAnnotations": {"sim.tpuserve.dev/exit-code": "1"},
        },
    ),
)


def catalog_slices() -> list[tuple[str, str]]:
    """Every (accelerator spelling, single-host topology) pair the catalog accepts."""
    return [
        (name, topology)
        for name in tpu.accepted_accelerator_names()
        for topology in tpu.generation(name).single_host_topologies
    ]
