"""The one gs:// URI type: what the API accepts in a field that holds an object-storage path (`GsUri`, whose
pattern the CRDs carry) and how the converter, the benchmark and the renderers take a URI apart (`GsPath`)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

SCHEME = "gs://"
# A GCS bucket name (lowercase letters, digits, '-', '_' and '.', 3 to 63 characters).
BUCKET_PATTERN = r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]"
# The pattern every object-storage path in the API must match: a gs:// URI with a valid bucket name and object
# path segments of characters that GCS, gcloud/gsutil and the converter's tools take literally: no whitespace or
# control characters, no wildcards (* ? [ ]) or `#`, no empty segment (`//`), no segment starting with `.`
# (`.`/`..` would climb out of the prefix in the tools that treat paths as file paths); one trailing `/` allowed.
URI_PATTERN = rf"^gs://{BUCKET_PATTERN}(/[A-Za-z0-9_~=+@,:-][A-Za-z0-9._~=+@,:-]*)*/?$"
MAX_LENGTH = 1024

# An API field holding a gs:// path (the CRD gets the pattern and the length bound).
GsUri = Annotated[str, StringConstraints(pattern=URI_PATTERN, max_length=MAX_LENGTH)]


def is_gs_uri(text: str) -> bool:
    """Whether `text` names object storage (else it is a local path)."""
    return text.startswith(SCHEME)


URI_HINT = (
    "gs://BUCKET/PATH with a bucket name of 3-63 lowercase letters, digits, '-', '_' or '.', and path segments "
    "without spaces, wildcards (* ? [ ]), '#', empty segments (//) or a leading '.'"
)


def check(uri: str) -> str:
    """`uri` if it is a gs:// URI the API accepts, else a ValueError saying what one looks like."""
    if len(uri) > MAX_LENGTH or not re.fullmatch(URI_PATTERN, uri):
        raise ValueError(f"{uri!r} is not a usable gs:// URI: write {URI_HINT}")
    return uri


def location(text: str) -> str:
    """argparse type of a command-line location: a local path, or a gs:// URI as the API would accept it (so a
    typo fails at once, with the same rule the operator's objects follow)."""
    if is_gs_uri(text):
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


@dataclass(frozen=True)
class GsPath:
    """A gs:// URI taken apart: the bucket and the object name (or prefix) as written after it."""

    bucket: str
    name: str

    @classmethod
    def parse(cls, uri: str) -> GsPath:
        """gs://bucket/a/b -> GsPath("bucket", "a/b"); a bucket alone gives an empty name."""
        if not is_gs_uri(uri):
            raise ValueError(f"{uri!r} is not a gs:// URI")
        bucket, _, name = uri.removeprefix(SCHEME).partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} has no bucket name")
        return cls(bucket, name)

    @property
    def prefix(self) -> str:
        """The name without leading or trailing slashes (a directory-like prefix)."""
        return self.name.strip("/")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}"
