"""Issue 13: `tpuserve convert run` stops cleanly on SIGTERM (what Kubernetes sends when the conversion Job is
replaced): a real converter process against the GCS emulator, terminated while its conversion step runs. It
stops the step, uploads nothing more, writes no manifest and reports `Terminated`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tpuserve.convert.summary import ConvertSummary, FailureReason
from tpuserve_dev.tiny_checkpoint import TINY, upload_dir, write_meta_source


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def test_sigterm_during_conversion_stops_cleanly(
    gcs_emulator: str, gcs_client: Any, gcs_bucket: str, tmp_path: Path, tiny_arch_json: Path
) -> None:
    write_meta_source(tmp_path / "meta", TINY, size=200_000)
    upload_dir(gcs_client, gcs_bucket, tmp_path / "meta", "meta")
    output = f"gs://{gcs_bucket}/out"
    message = tmp_path / "termination-log"
    work = tmp_path / "work"
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": gcs_emulator,
        "TPUSERVE_CONVERT_STEP": "synthetic",
        "TPUSERVE_CONVERT_ARCH": str(tiny_arch_json),
        "TPUSERVE_TERMINATION_MESSAGE_PATH": str(message),
    }
    argv = [sys.executable, "-m", "tpuserve.convert.cli", "run", "--model", "llama2-7b"]
    argv += ["--source", f"gs://{gcs_bucket}/meta", "--output", output, "--work-dir", str(work)]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    seen: list[str] = []
    try:
        for line in process.stderr:  # the converter logs each step as it starts it
            seen.append(line)
            if "running " in line and "synthetic" in line:
                process.send_signal(signal.SIGTERM)
                break
        else:
            raise AssertionError("the converter never started a step:\n" + "".join(seen))
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(seen) + (rest or "")

    assert process.returncode == 143, log
    summary = ConvertSummary.from_termination_message(message.read_text())
    assert summary.reason is FailureReason.TERMINATED
    assert not summary.ok
    assert "terminated (SIGTERM)" in (summary.message or "")
    assert "no manifest was written" in (summary.message or "")
    assert json.loads(message.read_text())["reason"] == "Terminated"
    # Nothing was uploaded, nothing is uploaded later, and the step did not outlive the converter.
    names = [b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="out/")]
    assert names == [], names
    time.sleep(2)  # anything still running would write within this time; nothing is
    assert [b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="out/")] == []
    assert _processes_mentioning(str(work)) == []


def test_no_upload_starts_after_sigterm(gcs_client: Any, gcs_bucket: str, tmp_path: Path) -> None:
    """The upload loop's own check, with a real SIGTERM to this process (handler installed, then restored)."""
    from tpuserve.convert import stopping
    from tpuserve.convert.storage import open_store

    local = tmp_path / "ckpt"
    for index in range(5):
        (local / "d").mkdir(parents=True, exist_ok=True)
        (local / "d" / str(index)).write_bytes(b"x" * 1000)
    store = open_store(f"gs://{gcs_bucket}/out", gcs_client)
    previous = signal.getsignal(signal.SIGTERM)
    stopping.install()
    try:
        signal.raise_signal(signal.SIGTERM)
        assert stopping.requested()
        with pytest.raises(stopping.Stopped, match="before uploading d/0"):
            store.upload_tree(local, "scanned", workers=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stopping.reset()
    assert list(gcs_client.list_blobs(gcs_bucket, prefix="out/")) == []
    assert store.upload_tree(local, "scanned", workers=2) == 5  # without a SIGTERM the same upload goes through
