"""The JSON log format (TPUSERVE_LOG_FORMAT=json): each record one JSON object with the fields Cloud Logging lifts
into the log entry (cloud.google.com/logging/docs/structured-logging)."""

from __future__ import annotations

import datetime
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from tpuserve import logs


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    logger = logging.getLogger("tpuserve.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_carries_the_fields_cloud_logging_reads(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    before = datetime.datetime.now(datetime.UTC)
    logger.warning("job %s of %s vanished", "bench-1", "run-a")
    (entry,) = entries(stream)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "job bench-1 of run-a vanished"
    assert entry["time"].endswith("Z")
    logged = datetime.datetime.fromisoformat(entry["time"])
    assert before - datetime.timedelta(seconds=1) <= logged <= datetime.datetime.now(datetime.UTC)
    location = entry["logging.googleapis.com/sourceLocation"]
    assert location["file"] == __file__
    assert location["function"] == "test_a_record_carries_the_fields_cloud_logging_reads"
    assert int(location["line"]) > 0
    assert entry["logging.googleapis.com/labels"] == {"logger": "tpuserve.test-logs"}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.INFO + 1, "WARNING"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_python_levels_become_log_severities(level: int, expected: str) -> None:
    assert logs.severity(level) == expected


def test_an_exception_keeps_its_traceback_in_the_message(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError("spec.tpu.topology 9x9 is not offered")
    except ValueError:
        logger.exception("reconcile failed")
    (entry,) = entries(stream)
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("reconcile failed\nTraceback (most recent call last):")
    assert entry["message"].endswith("ValueError: spec.tpu.topology 9x9 is not offered")


def test_kopf_object_loggers_name_the_object(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """kopf's per-object logger (what handlers get as `logger`) adds the object; it becomes labels to filter by."""
    logger, stream = captured
    body = kopf.Body(
        {
            "apiVersion": "tpuserve.dev/v1alpha1",
            "kind": "BenchmarkRun",
            "metadata": {"namespace": "llm", "name": "run-a", "uid": "1234"},
        }
    )
    object_logger = kopf.ObjectLogger(body=body, settings=kopf.OperatorSettings())
    object_logger.logger = logger
    object_logger.info("Handler 'run_changed' succeeded.")
    (entry,) = entries(stream)
    assert entry["object"]["name"] == "run-a"
    assert entry["object"]["namespace"] == "llm"
    assert entry["logging.googleapis.com/labels"] == {
        "logger": "tpuserve.test-logs",
        "k8s-kind": "BenchmarkRun",
        "k8s-namespace": "llm",
        "k8s-name": "run-a",
    }


def test_text_stays_the_default_and_json_replaces_the_root_formatter() -> None:
    from tpuserve.settings import OperatorSettings

    assert OperatorSettings().log_format == "text"
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        logs.use_format("text")
        assert not isinstance(handler.formatter, logs.CloudLoggingFormatter)
        logs.use_format("json")
        assert isinstance(handler.formatter, logs.CloudLoggingFormatter)
    finally:
        root.removeHandler(handler)
