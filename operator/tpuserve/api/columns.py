"""kubectl's printer columns of the kinds: the shape, and the columns more than one kind shows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None

    def to_crd(self) -> dict[str, Any]:
        column = {"name": self.name, "type": self.type, "jsonPath": self.json_path, "description": self.description}
        optional = {"format": self.format, "priority": self.priority}
        return column | {key: value for key, value in optional.items() if value}


AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")
MODEL_COLUMN = PrinterColumn("Model", "string", ".spec.model", "Llama model.")


def phase_column(phases: type[StrEnum]) -> PrinterColumn:
    """The kind's status.phase column, its description listing the phases in their order."""
    return PrinterColumn("Phase", "string", ".status.phase", ", ".join(phases) + ".")
