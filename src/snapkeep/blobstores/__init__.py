"""Where an image repository's objects live: a local directory or S3, behind one small BlobStore protocol."""

from snapkeep.blobstores.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    Retention,
    RetentionActive,
    RetentionMode,
    check_blob_name,
)

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "Retention",
    "RetentionActive",
    "RetentionMode",
    "check_blob_name",
]
