"""Repository URLs: `s3://bucket/prefix` for S3, anything else a local directory (`file://` allowed)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkeep.blobstores.base import BlobStore
from snapkeep.domain.errors import InvalidParameterValue

# S3's bucket naming rules (general purpose buckets): 3-63 characters, lower case, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class RepositoryUrl:
    """A parsed repository URL: `bucket` set for S3 (with `prefix` ending in '/' or empty), else `path`."""

    url: str
    bucket: str | None = None
    prefix: str = ""
    path: Path | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


def parse_repository_url(url: str, field: str = "repository") -> RepositoryUrl:
    text = url.strip()
    if not text:
        raise InvalidParameterValue(f"{field}: must be a local path or s3://bucket/prefix, got an empty string",
                                    field=field)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket):
            raise InvalidParameterValue(f"{field}: {bucket!r} is not a valid S3 bucket name (in {text})", field=field)
        prefix = prefix.strip("/")
        return RepositoryUrl(text, bucket=bucket, prefix=f"{prefix}/" if prefix else "")
    if "://" in text and not text.startswith("file://"):
        raise InvalidParameterValue(f"{field}: {text!r} is neither a local path nor s3://bucket/prefix", field=field)
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    return RepositoryUrl(text, path=path.absolute())


def check_storage_class(location: RepositoryUrl, storage_class: str | None, field: str) -> None:
    if storage_class is not None and not location.is_s3:
        raise InvalidParameterValue(f"{field}: only an s3:// repository has a storage class", field=field)


def open_blob_store(location: RepositoryUrl, s3_client: Callable[[], Any], *, storage_class: str | None = None,
                    field: str = "storage_class") -> BlobStore:
    """The store behind a URL; `s3_client()` is only called for an S3 URL, so a local repository needs no AWS.
    `storage_class` (S3 only; STANDARD when None) is that of the packs written."""
    check_storage_class(location, storage_class, field)
    if location.is_s3:
        from snapkeep.blobstores.s3 import S3BlobStore

        assert location.bucket is not None
        return S3BlobStore(s3_client(), location.bucket, location.prefix, storage_class=storage_class or "STANDARD")
    from snapkeep.blobstores.local import LocalBlobStore

    assert location.path is not None
    return LocalBlobStore(location.path)
