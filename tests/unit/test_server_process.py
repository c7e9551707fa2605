"""tpuserve_dev.server_process: a test server that exits before it is ready is reported with its log's tail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tpuserve_dev.server_process import running_server


@pytest.mark.parametrize("keep_log", [True, False])
def test_a_server_that_exits_at_start_is_reported_with_its_log(tmp_path: Path, keep_log: bool) -> None:
    log_path = tmp_path / "server.log" if keep_log else None
    argv = ["sh", "-c", "echo 'refused: max_model_len too large'; exit 3"]
    with (
        pytest.raises(RuntimeError, match=r"(?s)toy server exited with 3:.*refused: max_model_len too large"),
        running_server("toy server", argv, dict(os.environ), ready=lambda: False, timeout=30, log_path=log_path),
    ):
        pass
    if log_path is not None:
        assert "refused" in log_path.read_text()
