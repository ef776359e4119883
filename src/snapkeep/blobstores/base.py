"""The BlobStore protocol every backend implements, and the names, records and errors they share.

A blob store is a flat namespace of immutable-by-convention objects named like `data/ab/abcd…`. The image
repository only ever needs these few operations, so a backend stays small and one shared test suite can hold
every backend to the same behaviour. Retention (S3 Object Lock) is part of the protocol so that the repository
can compute a retain-until per object and extend it; a backend without it says so and refuses retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from snapkeep.domain.clock import ensure_utc
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, ResourceNotFound

RetentionMode = Literal["GOVERNANCE", "COMPLIANCE"]
RETENTION_MODES: tuple[RetentionMode, ...] = ("GOVERNANCE", "COMPLIANCE")

# Segments of letters, digits, dot, dash and underscore joined by single slashes; no segment made of dots only.
_NAME = re.compile(r"^(?!.*(?:^|/)\.{1,2}(?:/|$))[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
MAX_NAME_LENGTH = 512


class BlobNotFound(ResourceNotFound):
    """The named object does not exist in the store."""


class RetentionActive(InvalidRequest):
    """The object is under a retention (S3 Object Lock) or legal hold that has not expired: it cannot be removed."""


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Retention:
    """An S3 Object Lock retention: the object cannot be deleted or overwritten before `until`."""

    mode: RetentionMode
    until: datetime

    def __post_init__(self) -> None:
        if self.mode not in RETENTION_MODES:
            raise InvalidParameterValue(
                f"Retention.Mode: must be GOVERNANCE or COMPLIANCE, got {self.mode!r}", field="Retention.Mode"
            )
        object.__setattr__(self, "until", ensure_utc(self.until))


def check_blob_name(name: str) -> str:
    """Refuse names that could escape a directory or that S3 and a file system would treat differently."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise InvalidParameterValue(
            f"name: must be 1 to {MAX_NAME_LENGTH} characters of letters, digits, '.', '-', '_' in segments "
            f"joined by '/', with no '.' or '..' segment; got {name!r}",
            field="name",
        )
    return name


@runtime_checkable
class BlobStore(Protocol):
    """What the image repository needs from a place to keep objects.

    `put` replaces an object atomically (readers see the old or the new content, never a part). `list` yields
    every object whose name starts with `prefix`, in no particular order. `get_range` returns at most `length`
    bytes from `offset` (fewer at the end of the object). Retention calls raise InvalidRequest on a backend whose
    `supports_retention` is false.
    """

    @property
    def location(self) -> str:
        """Where the store is, for messages: a directory path or `s3://bucket/prefix`."""
        ...

    @property
    def supports_retention(self) -> bool: ...

    def put(self, name: str, data: bytes | bytearray | memoryview, *, retention: Retention | None = None) -> None: ...

    def get(self, name: str) -> bytes: ...

    def get_range(self, name: str, offset: int, length: int) -> bytes: ...

    def stat(self, name: str) -> BlobInfo: ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...

    def delete(self, name: str) -> None: ...

    def retention(self, name: str) -> Retention | None: ...

    def extend_retention(self, name: str, until: datetime) -> Retention:
        """Make the object's retain-until at least `until`; never shortens it. Returns the retention in force."""
        ...


@runtime_checkable
class RangeReader(Protocol):
    """An optional store capability: a ranged read into the caller's (reused, possibly page-aligned) buffer, so a
    restore allocates nothing per pack and a local store can bypass the page cache."""

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Read up to len(buffer) bytes from `offset`; the count (fewer at the end of the object)."""
        ...


def check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise InvalidParameterValue(
            f"offset, length: must not be negative, got offset={offset} length={length}", field="offset"
        )


def whole_second_ceiling(value: datetime) -> datetime:
    """Round up to a whole second: S3 keeps retain-until to the second, so a fraction would read back shorter."""
    value = ensure_utc(value)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value
