"""The operator's log lines: plain text (the default) or JSON for Cloud Logging.

On GKE the logging agent turns every stdout/stderr line that is a JSON object into a structured entry
(jsonPayload) and lifts its special fields into the entry itself (cloud.google.com/logging/docs/structured-logging):
`severity` (a LogSeverity name), `message` (the summary line), `time` (RFC 3339), and
`logging.googleapis.com/sourceLocation` and `logging.googleapis.com/labels` (a string map, indexed for filters).
The object a kopf handler logs about goes along as `object` (kind, namespace, name, uid) and as labels.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LABELS = "logging.googleapis.com/labels"
SOURCE_LOCATION = "logging.googleapis.com/sourceLocation"


def severity(levelno: int) -> str:
    """Cloud Logging's LogSeverity for a Python level (custom levels round up to the next named one)."""
    for limit, name in ((logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.WARNING, "WARNING")):
        if levelno <= limit:
            return name
    return "ERROR" if levelno <= logging.ERROR else "CRITICAL"


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per record, with the fields Cloud Logging reads."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            # The traceback in the message: Error Reporting groups entries whose message carries a stack trace.
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        labels = {"logger": record.name}
        entry: dict[str, Any] = {
            "severity": severity(record.levelno),
            "message": message,
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat().replace("+00:00", "Z"),
            SOURCE_LOCATION: {"file": record.pathname, "line": str(record.lineno), "function": record.funcName},
            LABELS: labels,
        }
        reference = getattr(record, "k8s_ref", None)  # set by kopf's per-object loggers
        if isinstance(reference, dict):
            entry["object"] = reference
            labels.update(
                {f"k8s-{key}": str(reference[key]) for key in ("kind", "namespace", "name") if reference.get(key)}
            )
        return json.dumps(entry, default=str)


def use_format(log_format: LogFormat) -> None:
    """Give the root logger's handlers (kopf.configure installs one) the chosen format."""
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(CloudLoggingFormatter())
