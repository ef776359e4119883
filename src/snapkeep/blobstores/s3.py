"""A blob store in an S3 bucket under a prefix: multipart for large objects, a storage class for the data
objects, and S3 Object Lock retain-until per write (governance or compliance), extended on demand.

Only the objects under the data prefixes (the packs) take the repository's storage class; index files,
manifests, keys and locks stay in STANDARD so that listing, checking and planning never wait for a Glacier
restore. Deleting removes every version of the key, so a versioned (Object Lock) bucket keeps nothing behind;
S3 refuses it while a retention or a legal hold holds any version, and that refusal becomes RetentionActive.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snapkeep.aws.errors import aws_errors
from snapkeep.blobstores.base import (
    RETENTION_MODES,
    BlobInfo,
    BlobNotFound,
    Retention,
    RetentionActive,
    RetentionMode,
    check_blob_name,
    check_range,
)
from snapkeep.domain.clock import ensure_utc
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, InvalidResourceState

STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER",
                   "DEEP_ARCHIVE")
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
DEFAULT_MULTIPART_THRESHOLD = 32 * 1024 * 1024
DEFAULT_PART_SIZE = 16 * 1024 * 1024
_NOT_FOUND = ("NoSuchKey", "404", "NotFound", "NoSuchVersion")


class S3BlobStore:
    """Objects at `s3://bucket/prefix/<name>` through a boto3 S3 client (thread-safe; shared by workers)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        storage_class: str = "STANDARD",
        data_prefixes: tuple[str, ...] = ("data/",),
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if storage_class not in STORAGE_CLASSES:
            raise InvalidParameterValue(
                f"storage_class: must be one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}",
                field="storage_class",
            )
        if part_size < MIN_PART_SIZE:
            raise InvalidParameterValue(
                f"part_size: must be at least {MIN_PART_SIZE} bytes (S3's smallest multipart part), got {part_size}",
                field="part_size",
            )
        if multipart_threshold < part_size:
            raise InvalidParameterValue(
                f"multipart_threshold: must be at least part_size ({part_size}), got {multipart_threshold}",
                field="multipart_threshold",
            )
        prefix = prefix.strip("/")
        if prefix:
            check_blob_name(prefix)
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._storage_class = storage_class
        self._data_prefixes = data_prefixes
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._object_lock: bool | None = None

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    @property
    def storage_class(self) -> str:
        return self._storage_class

    @property
    def supports_retention(self) -> bool:
        """Whether the bucket has S3 Object Lock enabled (asked once)."""
        if self._object_lock is None:
            try:
                answer = self._client.get_object_lock_configuration(Bucket=self._bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    with aws_errors(f"GetObjectLockConfiguration {self._bucket}"):
                        raise
                enabled = False
            self._object_lock = enabled
        return self._object_lock

    def _key(self, name: str) -> str:
        return self._prefix + check_blob_name(name)

    def _class_for(self, name: str) -> str:
        return self._storage_class if name.startswith(self._data_prefixes) else "STANDARD"

    def put(self, name: str, data: bytes | bytearray | memoryview, *, retention: Retention | None = None) -> None:
        key = self._key(name)
        if retention is not None and not self.supports_retention:
            raise InvalidRequest(
                f"retention: bucket {self._bucket} does not have S3 Object Lock enabled, so {name} cannot be "
                "written under retention",
                field="retention",
            )
        body = data if isinstance(data, bytes) else bytes(data)
        extra: dict[str, Any] = {"StorageClass": self._class_for(name)}
        if retention is not None:
            extra["ObjectLockMode"] = retention.mode
            extra["ObjectLockRetainUntilDate"] = retention.until
        if len(body) < self._multipart_threshold:
            with _translated(f"PutObject {self.location}/{name}", name):
                self._client.put_object(Bucket=self._bucket, Key=key, Body=body, **extra)
            return
        self._put_multipart(name, key, body, extra)
        if retention is not None:
            # Object Lock settings given to CreateMultipartUpload are not honoured everywhere (the lab drops
            # them); applying the retention afterwards is harmless on S3 and makes it certain.
            self.extend_retention(name, retention.until, mode=retention.mode)

    def _put_multipart(self, name: str, key: str, body: bytes, extra: dict[str, Any]) -> None:
        part_size = max(self._part_size, -(-len(body) // MAX_PARTS))
        action = f"multipart upload {self.location}/{name}"
        with _translated(action, name):
            upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=key, **extra)["UploadId"]
        try:
            parts = []
            view = memoryview(body)
            for number, start in enumerate(range(0, len(body), part_size), start=1):
                with _translated(action, name):
                    answer = self._client.upload_part(
                        Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=bytes(view[start:start + part_size]),
                    )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            with _translated(action, name):
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            # An incomplete upload left behind is removed by the bucket's abort-incomplete-upload rule.
            with suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            raise

    def get(self, name: str) -> bytes:
        key = self._key(name)
        with _translated(f"GetObject {self.location}/{name}", name):
            return bytes(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read())

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        if length == 0:
            self.stat(name)
            return b""
        key = self._key(name)
        action = f"GetObject {self.location}/{name}"
        try:
            answer = self._client.get_object(
                Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
            )
            with _translated(action, name):
                return bytes(answer["Body"].read())
        except ClientError as exc:
            if _code(exc) == "InvalidRange":
                return b""  # offset at or beyond the end: nothing there, as for a file
            with _translated(action, name):
                raise
        except BotoCoreError:
            with _translated(action, name):
                raise

    def stat(self, name: str) -> BlobInfo:
        answer = self._head(name)
        return BlobInfo(name, int(answer["ContentLength"]), _utc(answer["LastModified"]))

    def _head(self, name: str) -> dict[str, Any]:
        key = self._key(name)
        with _translated(f"HeadObject {self.location}/{name}", name):
            return dict(self._client.head_object(Bucket=self._bucket, Key=key))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix + prefix}
        while True:
            with aws_errors(f"ListObjectsV2 {self.location}"):
                page = self._client.list_objects_v2(**kwargs)
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self._prefix):]
                yield BlobInfo(name, int(item["Size"]), _utc(item["LastModified"]))
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, name: str) -> None:
        key = self._key(name)
        current, versions = self._versions(key)
        if not current:
            raise BlobNotFound(f"{name}: no such object in {self.location}")
        for version_id in versions:
            kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
            if version_id is not None:
                kwargs["VersionId"] = version_id
            try:
                self._client.delete_object(**kwargs)
            except ClientError as exc:
                if _code(exc) in ("AccessDenied", "AccessDeniedException"):
                    raise RetentionActive(
                        f"{name}: S3 refused to delete it ({_code(exc)}): a retention or legal hold is in force"
                    ) from exc
                if _code(exc) in _NOT_FOUND:
                    continue
                with aws_errors(f"DeleteObject {self.location}/{name}"):
                    raise

    def _versions(self, key: str) -> tuple[bool, tuple[str | None, ...]]:
        """Whether `key` exists now, and every version of it, delete markers included (None: the "null" one)."""
        found: dict[str | None, None] = {}
        current = False
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": key}
        while True:
            with aws_errors(f"ListObjectVersions {self._bucket}/{key}"):
                page = self._client.list_object_versions(**kwargs)
            for item in page.get("Versions", []):
                if item["Key"] == key and item.get("IsLatest", True):
                    current = True
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] == key:
                    version = item.get("VersionId")
                    found[None if version in (None, "null") else str(version)] = None
            if not page.get("IsTruncated"):
                return current, tuple(found)
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]

    def retention(self, name: str) -> Retention | None:
        # Read from HeadObject: it carries the lock on every S3-compatible store we target, where
        # GetObjectRetention is not always served.
        answer = self._head(name)
        mode, until = answer.get("ObjectLockMode"), answer.get("ObjectLockRetainUntilDate")
        if mode not in RETENTION_MODES or until is None:
            return None
        return Retention(mode, _utc(until))

    def extend_retention(self, name: str, until: datetime, *, mode: RetentionMode | None = None) -> Retention:
        until = ensure_utc(until)
        if not self.supports_retention:
            raise InvalidRequest(
                f"retention: bucket {self._bucket} does not have S3 Object Lock enabled", field="retention"
            )
        current = self.retention(name)
        if current is not None and current.until >= until:
            return current
        wanted = Retention(current.mode if current is not None else (mode or "GOVERNANCE"), until)
        key = self._key(name)
        try:
            self._client.put_object_retention(
                Bucket=self._bucket, Key=key, Retention={"Mode": wanted.mode, "RetainUntilDate": wanted.until}
            )
        except ClientError as exc:
            # A concurrent writer may have extended it further: S3 refuses to shorten, which is what we want.
            after = self.retention(name)
            if after is not None and after.until >= until:
                return after
            with _translated(f"PutObjectRetention {self.location}/{name}", name):
                raise exc
        return wanted


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@contextmanager
def _translated(action: str, name: str) -> Iterator[None]:
    """aws_errors, plus the S3 codes a blob store gives a meaning to: not found, archived."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code in _NOT_FOUND:
            raise BlobNotFound(f"{name}: no such object ({action})") from exc
        if code == "InvalidObjectState":
            storage = exc.response.get("Error", {}).get("StorageClass", "an archive storage class")
            raise InvalidResourceState(
                f"{name} is in {storage}: restore it from the archive tier before reading it"
            ) from exc
        with aws_errors(action):
            raise
    except BotoCoreError:
        with aws_errors(action):
            raise
