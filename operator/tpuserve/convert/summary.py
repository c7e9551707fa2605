"""The converter's compact summary: written to the termination-message file on success and on failure
(CONTRACTS item 2) and read back by the operator. camelCase on the wire, <= 4 KiB."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tpuserve import termination

SUMMARY_SCHEMA_VERSION = "tpuserve.dev/convert-summary/v1"
SUMMARY_MAX_BYTES = termination.MAX_BYTES
_MAX_LIST = 10


class Outcome(StrEnum):
    CONVERTED = "converted"  # converted and verified in this run
    REUSED = "reused"  # a verified output with a matching manifest was already there
    MIRRORED = "mirrored"  # a Hugging Face model was copied and verified in this run (`convert mirror`)
    FAILED = "failed"


class FailureReason(StrEnum):
    SOURCE_NOT_FOUND = "SourceNotFound"  # nothing at the source location
    SOURCE_INCOMPLETE = "SourceIncomplete"  # required files missing (see `missing`)
    OUTPUT_CONFLICT = "OutputConflict"  # the output holds a finished checkpoint of another model/dtype
    CONVERSION_FAILED = "ConversionFailed"  # a MaxText step exited non-zero
    VERIFICATION_FAILED = "VerificationFailed"  # the written checkpoint does not match the architecture
    HUB_UNAUTHORIZED = "HubUnauthorized"  # the Hugging Face hub refused the token (401) or access (403)
    HUB_UNAVAILABLE = "HubUnavailable"  # the hub kept failing (5xx, 429, no connection) past the retry budget
    ERROR = "Error"  # anything else (storage errors, bad arguments)
    TERMINATED = "Terminated"  # SIGTERM (the Job was replaced or deleted): stopped cleanly, no manifest


EXIT_CODES: dict[FailureReason | None, int] = {
    None: 0,
    FailureReason.ERROR: 1,
    FailureReason.SOURCE_NOT_FOUND: 3,
    FailureReason.SOURCE_INCOMPLETE: 3,
    FailureReason.OUTPUT_CONFLICT: 4,
    FailureReason.CONVERSION_FAILED: 5,
    FailureReason.VERIFICATION_FAILED: 6,
    FailureReason.HUB_UNAUTHORIZED: 7,
    FailureReason.HUB_UNAVAILABLE: 8,
    FailureReason.TERMINATED: 143,  # 128 + SIGTERM, as a shell reports it
}


class ConvertSummary(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    schema_version: str = Field(default=SUMMARY_SCHEMA_VERSION)
    ok: bool
    outcome: Outcome
    reason: FailureReason | None = None
    message: str | None = Field(default=None, description="Why it failed and what to do; or what was done.")
    model: str
    weight_dtype: str
    quantization: str | None = None
    scanned_path: str | None = None
    unscanned_path: str | None = None
    quantized_path: str | None = None
    manifest_path: str | None = None
    model_path: str | None = Field(default=None, description="The mirrored Hugging Face directory (`convert mirror`).")
    parameter_count: int | None = None
    missing: list[str] = Field(default_factory=list, description="Missing source files (SourceIncomplete).")
    mismatches: list[str] = Field(default_factory=list, description="First verification mismatches.")
    duration_seconds: float | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]

    def to_termination_message(self) -> str:
        """Compact JSON that fits Kubernetes' 4096-byte termination message: long lists and the message are cut."""
        message = self.message if self.message is None or len(self.message) <= 1000 else self.message[:999] + "…"
        summary = self.model_copy(
            update={
                "message": message,
                "missing": self.missing[:_MAX_LIST],
                "mismatches": [m[:200] for m in self.mismatches[:_MAX_LIST]],
            }
        )

        # Keep at least the first mismatch and missing file; the message was already capped.
        def fewer_mismatches() -> bool:
            if len(summary.mismatches) <= 1:
                return False
            summary.mismatches = summary.mismatches[:-1]
            return True

        def fewer_missing() -> bool:
            if len(summary.missing) <= 1:
                return False
            summary.missing = summary.missing[:-1]
            return True

        def shorter_message() -> bool:
            if not summary.message or len(summary.message) <= 80:
                return False
            summary.message = summary.message[: len(summary.message) // 2] + "…"
            return True

        text = termination.shrink_to_fit(
            lambda: summary.model_dump_json(by_alias=True, exclude_none=True),
            fewer_mismatches,
            fewer_missing,
            shorter_message,
        )
        if termination.size(text) > SUMMARY_MAX_BYTES:
            raise ValueError(f"convert summary is {termination.size(text)} bytes, over {SUMMARY_MAX_BYTES}")
        return text

    @classmethod
    def from_termination_message(cls, text: str) -> ConvertSummary:
        return cls.model_validate_json(text)
