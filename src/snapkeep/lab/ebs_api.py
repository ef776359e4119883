"""The EBS direct APIs over the lab's block maps, replacing moto's EBSResponse handlers.

Every snapshot is an EC2 snapshot in moto's EC2 backend: CreateSnapshot, CopySnapshot and StartSnapshot ones
alike, so the direct APIs read whatever EC2 made and EC2 restores whatever the direct APIs wrote.
Semantics follow the EBS direct API reference: only completed snapshots can be read, 512 KiB blocks, block
tokens bound to (snapshot, index), MaxResults of at least 100, ListChangedBlocks only within one lineage.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot, Volume
from moto.ec2.utils import random_snapshot_id
from werkzeug.exceptions import HTTPException

from snapkeep.lab import tokens
from snapkeep.lab.blocks import BLOCK_SIZE, CHECKSUM_ALGORITHM, BlockMap, block_count, sha256_b64
from snapkeep.lab.errors import EbsApiError, EbsConflictError, EbsNotFoundError, EbsValidationError
from snapkeep.lab.records import LAB_LOCK, SnapshotData, clock, set_snapshot_data, snapshot_data
from snapkeep.lab.settings import SETTINGS

PLACEHOLDER_VOLUME_ID = "vol-ffffffff"
"""The VolumeId AWS reports for snapshots that no EC2 volume backs (StartSnapshot, CopySnapshot)."""

MAX_VOLUME_SIZE_GIB = 65536
MIN_PAGE = 100
MAX_PAGE = 10000
MIN_TIMEOUT_MINUTES = 10
MAX_TIMEOUT_MINUTES = 4320
DEFAULT_TIMEOUT_MINUTES = 60

_SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]+$")
_CLIENT_TOKENS = "_snapkeep_client_tokens"


def placeholder_volume(backend: Any, size_gib: int) -> Any:
    """A Volume object that is not registered in the backend: what a snapshot without a source points at."""
    volume_class: Any = Volume
    return volume_class(backend, volume_id=PLACEHOLDER_VOLUME_ID, size=size_gib, zone=None)


def _backend(response: Any) -> Any:
    return ec2_backends[response.current_account][response.region]


def _snapshot(backend: Any, snapshot_id: object, field: str = "SnapshotId") -> tuple[Any, SnapshotData]:
    if not isinstance(snapshot_id, str) or len(snapshot_id) > 64 or not _SNAPSHOT_ID.match(snapshot_id):
        raise EbsValidationError(
            f"Invalid {field} '{snapshot_id}': must match ^snap-[0-9a-f]+$.", "INVALID_SNAPSHOT_ID"
        )
    snapshot = backend.snapshots.get(snapshot_id)
    if snapshot is None:
        raise EbsNotFoundError(f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND")
    return snapshot, snapshot_data(snapshot)


def _readable(backend: Any, snapshot_id: object, field: str = "SnapshotId") -> tuple[Any, SnapshotData]:
    snapshot, data = _snapshot(backend, snapshot_id, field)
    if getattr(snapshot, "storage_tier", "standard") == "archive":
        raise EbsValidationError(
            f"The snapshot '{snapshot.id}' is archived; the EBS direct APIs cannot read archived snapshots.",
            "INVALID_SNAPSHOT_ID",
        )
    status = data.status()
    if status != "completed":
        raise EbsValidationError(
            f"The snapshot '{snapshot.id}' is {status}; only completed snapshots can be read.",
            "INVALID_SNAPSHOT_ID",
        )
    return snapshot, data


def _int(value: object, field: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise EbsValidationError(f"{field}: must be an integer, got {value!r}.")
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise EbsValidationError(f"{field}: must be an integer, got {value!r}.") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise EbsValidationError(f"{field}: must be {bound}, got {number}.")
    return number


def _block_index(value: object, data: SnapshotData) -> int:
    index = _int(value, "BlockIndex")
    last = block_count(data.volume_size) - 1
    if index > last:
        raise EbsValidationError(
            f"BlockIndex {index} is out of range for a {data.volume_size} GiB snapshot "
            f"(valid block indexes are 0 to {last}).",
            "INVALID_BLOCK",
        )
    return index


def _page(indexes: Sequence[int], listing: str, params: Callable[[str], Any]) -> tuple[list[int], str | None]:
    """One page of ascending `indexes` per MaxResults, NextToken and StartingBlockIndex."""
    raw_max = params("MaxResults")
    limit = MAX_PAGE if raw_max is None else _int(raw_max, "MaxResults", minimum=-(2**63))
    if limit > MAX_PAGE:
        raise EbsValidationError(f"MaxResults: must be at most {MAX_PAGE}, got {limit}.")
    limit = max(limit, MIN_PAGE)  # the API answers at least 100 blocks, whatever smaller value is asked
    next_token = params("NextToken")
    if next_token:
        start = tokens.read_page_token(listing, str(next_token))
        if start is None:
            raise EbsValidationError("The pagination token is invalid or has expired.", "INVALID_PAGE_TOKEN")
    else:
        raw_start = params("StartingBlockIndex")
        start = 0 if raw_start is None else _int(raw_start, "StartingBlockIndex")
    position = bisect_left(indexes, start)
    page = list(indexes[position : position + limit])
    rest = position + limit
    return page, tokens.page_token(listing, indexes[rest]) if rest < len(indexes) else None


def _result(fields: dict[str, Any]) -> ActionResult:
    return ActionResult({key: value for key, value in fields.items() if value is not None})


def _expiry() -> datetime:
    return tokens.block_token_expiry()


# --- reading ----------------------------------------------------------------------------------------------


def list_snapshot_blocks(self: Any) -> ActionResult:
    backend = _backend(self)
    snapshot, data = _readable(backend, self._get_param("SnapshotId"))
    page, next_token = _page(data.blocks.indexes(), f"blocks:{snapshot.id}", self._get_param)
    blocks = [{"BlockIndex": i, "BlockToken": tokens.block_token(snapshot.id, i)} for i in page]
    return _result(
        {
            "Blocks": blocks,
            "ExpiryTime": _expiry(),
            "VolumeSize": data.volume_size,
            "BlockSize": BLOCK_SIZE,
            "NextToken": next_token,
        }
    )


def list_changed_blocks(self: Any) -> ActionResult:
    backend = _backend(self)
    second, second_data = _readable(backend, self._get_param("SecondSnapshotId"), "SecondSnapshotId")
    first_id = self._get_param("FirstSnapshotId")
    changed: dict[int, tuple[str | None, str | None]] = {}
    if first_id:
        first, first_data = _readable(backend, first_id, "FirstSnapshotId")
        if first_data.lineage != second_data.lineage:
            raise EbsValidationError(
                f"The snapshots '{first.id}' and '{second.id}' are not of the same volume/snapshot lineage.",
                "UNRELATED_SNAPSHOTS",
            )
        for index in sorted(set(first_data.blocks.indexes()) | set(second_data.blocks.indexes())):
            a = first_data.blocks.get(index)
            b = second_data.blocks.get(index)
            if a is b or (a is not None and b is not None and a == b):
                continue
            changed[index] = (
                first.id if a is not None else None,
                second.id if b is not None else None,
            )
    else:
        changed = {index: (None, second.id) for index in second_data.blocks.indexes()}
    listing = f"changed:{first_id or ''}:{second.id}"
    page, next_token = _page(sorted(changed), listing, self._get_param)
    blocks = []
    for index in page:
        first_owner, second_owner = changed[index]
        entry: dict[str, Any] = {"BlockIndex": index}
        if first_owner:
            entry["FirstBlockToken"] = tokens.block_token(first_owner, index)
        if second_owner:
            entry["SecondBlockToken"] = tokens.block_token(second_owner, index)
        blocks.append(entry)
    return _result(
        {
            "ChangedBlocks": blocks,
            "ExpiryTime": _expiry(),
            "VolumeSize": second_data.volume_size,
            "BlockSize": BLOCK_SIZE,
            "NextToken": next_token,
        }
    )


def get_snapshot_block(self: Any) -> ActionResult:
    backend = _backend(self)
    snapshot, data = _readable(backend, self._get_param("SnapshotId"))
    index = _block_index(self._get_param("BlockIndex"), data)
    token = self._get_param("BlockToken")
    if not token or not tokens.check_block_token(snapshot.id, index, str(token)):
        raise EbsValidationError(
            f"The block token for block {index} of snapshot '{snapshot.id}' is invalid or has expired.",
            "INVALID_BLOCK_TOKEN",
        )
    block = data.blocks.get(index)
    if block is None:
        raise EbsValidationError(f"Block {index} of snapshot '{snapshot.id}' has no data.", "INVALID_BLOCK")
    checksum = sha256_b64(block)
    if FAULTS.take_corrupt_checksum():
        checksum = sha256_b64(block + b"corrupted by the lab's test hook")
    return ActionResult(
        {
            "DataLength": BLOCK_SIZE,
            "BlockData": block,
            "Checksum": checksum,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
        }
    )


# --- writing ----------------------------------------------------------------------------------------------


def _writable(backend: Any, snapshot_id: object) -> tuple[Any, SnapshotData]:
    snapshot, data = _snapshot(backend, snapshot_id)
    if not data.direct:
        raise EbsValidationError(
            f"The snapshot '{snapshot.id}' was not started with StartSnapshot; blocks cannot be written to it.",
            "INVALID_SNAPSHOT_ID",
        )
    if data.sealed_at is not None:
        raise EbsValidationError(
            f"The snapshot '{snapshot.id}' is already completed; no more blocks can be written to it.",
            "INVALID_SNAPSHOT_ID",
        )
    if data.status() == "error":
        raise EbsValidationError(
            f"The snapshot '{snapshot.id}' timed out and is in the error state.", "WRITE_REQUEST_TIMEOUT"
        )
    return snapshot, data


def _start_fingerprint(self: Any) -> tuple[Any, ...]:
    tags = self._get_param("Tags") or []
    return (
        self._get_param("VolumeSize"),
        self._get_param("ParentSnapshotId"),
        self._get_param("Encrypted"),
        self._get_param("KmsKeyArn"),
        self._get_param("Description"),
        self._get_param("Timeout"),
        repr(tags),
    )


def _start_response(snapshot: Any, data: SnapshotData) -> ActionResult:
    return _result(
        {
            "SnapshotId": snapshot.id,
            "OwnerId": snapshot.owner_id,
            "Status": data.status(),
            "StartTime": snapshot.start_time,
            "VolumeSize": data.volume_size,
            "BlockSize": BLOCK_SIZE,
            "Tags": [{"Key": t["key"], "Value": t["value"]} for t in snapshot.get_tags()] or None,
            "Description": snapshot.description,
            "ParentSnapshotId": data.parent_snapshot_id,
            "KmsKeyArn": snapshot.kms_key_id if snapshot.encrypted else None,
        }
    )


def start_snapshot(self: Any) -> ActionResult:
    backend = _backend(self)
    client_token = self._get_param("ClientToken")
    fingerprint = _start_fingerprint(self)
    with LAB_LOCK:
        known: dict[str, tuple[str, tuple[Any, ...]]] = vars(backend).setdefault(_CLIENT_TOKENS, {})
        if client_token and client_token in known:
            snapshot_id, earlier = known[client_token]
            existing = backend.snapshots.get(snapshot_id)
            if existing is not None:
                if earlier != fingerprint:
                    raise EbsConflictError(
                        "The request uses the same client token as a previous, but non-identical request."
                    )
                return _start_response(existing, snapshot_data(existing))
        snapshot, data = _start(self, backend)
        if client_token:
            known[client_token] = (snapshot.id, fingerprint)
    return _start_response(snapshot, data)


def _start(self: Any, backend: Any) -> tuple[Any, SnapshotData]:
    size = _int(self._get_param("VolumeSize"), "VolumeSize", minimum=1, maximum=MAX_VOLUME_SIZE_GIB)
    description = self._get_param("Description")
    if description is not None and len(str(description)) > 255:
        raise EbsValidationError("Description: must be at most 255 characters.")
    raw_timeout = self._get_param("Timeout")
    timeout = (
        DEFAULT_TIMEOUT_MINUTES
        if raw_timeout is None
        else _int(raw_timeout, "Timeout", minimum=MIN_TIMEOUT_MINUTES, maximum=MAX_TIMEOUT_MINUTES)
    )
    encrypted_param = self._get_param("Encrypted")
    kms_key_arn = self._get_param("KmsKeyArn")
    parent_id = self._get_param("ParentSnapshotId")
    tags = _tags(self._get_param("Tags"))
    blocks_source = None
    lineage: str | None = None
    if parent_id:
        if encrypted_param is not None:
            raise EbsValidationError(
                "You can't specify ParentSnapshotId and Encrypted in the same request.", "INVALID_PARAMETER_VALUE"
            )
        parent, parent_data = _readable(backend, parent_id, "ParentSnapshotId")
        if size < parent_data.volume_size:
            raise EbsValidationError(
                f"VolumeSize {size} GiB is smaller than the {parent_data.volume_size} GiB of the parent "
                f"snapshot '{parent.id}'.",
                "INVALID_VOLUME_SIZE",
            )
        encrypted = bool(parent.encrypted) or bool(kms_key_arn)
        kms_key = kms_key_arn or (parent.kms_key_id if parent.encrypted else None)
        blocks_source = parent_data.blocks
        lineage = parent_data.lineage
    else:
        encrypted = bool(encrypted_param) or bool(kms_key_arn)
        kms_key = kms_key_arn
    if encrypted and not kms_key:
        kms_key = backend.default_kms_key_id or backend._create_default_encryption_key()
    snapshot = Snapshot(
        backend,
        random_snapshot_id(),
        placeholder_volume(backend, size),
        description,
        encrypted=encrypted,
        kms_key_id=kms_key,
    )
    data = SnapshotData(
        blocks_source.copy() if blocks_source is not None else BlockMap(),
        lineage=lineage or f"lineage-{snapshot.id}",
        volume_size=size,
        delay=SETTINGS.snapshot_seconds,
        sealed_at=None,
        direct=True,
        timeout_seconds=timeout * 60.0,
        parent_snapshot_id=parent_id or None,
    )
    set_snapshot_data(snapshot, data)
    backend.snapshots[snapshot.id] = snapshot
    if tags:
        snapshot.add_tags(tags)
    return snapshot, data


def _tags(raw: object) -> dict[str, str]:
    """StartSnapshot's Tags as a dict, refusing what AWS refuses (INVALID_TAG)."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or len(raw) > 50:
        raise EbsValidationError("Tags: must be a list of at most 50 {Key, Value} pairs.", "INVALID_TAG")
    tags: dict[str, str] = {}
    for tag in raw:
        key = tag.get("Key") if isinstance(tag, dict) else None
        value = tag.get("Value", "") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not key or len(key) > 127 or key.lower().startswith("aws:"):
            raise EbsValidationError(f"Tags: invalid tag key {key!r}.", "INVALID_TAG")
        if not isinstance(value, str) or len(value) > 255:
            raise EbsValidationError(f"Tags: invalid value for tag {key!r}.", "INVALID_TAG")
        tags[key] = value
    return tags


def put_snapshot_block(self: Any) -> ActionResult:
    backend = _backend(self)
    snapshot, data = _writable(backend, self._get_param("SnapshotId"))
    index = _block_index(self._get_param("BlockIndex"), data)
    length = _int(self._get_param("DataLength"), "DataLength")
    if length != BLOCK_SIZE:
        raise EbsValidationError(
            f"DataLength {length} is not supported: the only supported block size is {BLOCK_SIZE} bytes."
        )
    body = self._get_param("BlockData")
    if isinstance(body, str):
        body = body.encode("latin-1")
    body = bytes(body or b"")
    if len(body) != length:
        raise EbsValidationError(
            f"Failed to read block data: DataLength is {length} bytes but the request body has {len(body)}."
        )
    algorithm = self._get_param("ChecksumAlgorithm")
    if algorithm != CHECKSUM_ALGORITHM:
        raise EbsValidationError(f"ChecksumAlgorithm '{algorithm}' is not supported: use SHA256.")
    actual = sha256_b64(body)
    if self._get_param("Checksum") != actual:
        raise EbsValidationError(
            f"The checksum of block {index} does not match the data: x-amz-Checksum is "
            f"'{self._get_param('Checksum')}', the SHA256 of the data is '{actual}'."
        )
    with LAB_LOCK:
        _writable(backend, snapshot.id)
        data.blocks.put(index, body)
        data.written.add(index)
        data.last_activity = clock()
    return ActionResult({"Checksum": actual, "ChecksumAlgorithm": CHECKSUM_ALGORITHM})


def _aggregate_checksums(data: SnapshotData) -> set[str]:
    """The LINEAR aggregate over written blocks, read both ways the docs allow: concatenated base64
    checksums, or concatenated raw digests."""
    texts = [sha256_b64(block) for index, block in data.blocks.items() if index in data.written]
    joined_text = "".join(texts).encode("ascii")
    joined_raw = b"".join(base64.b64decode(text) for text in texts)
    return {
        base64.b64encode(hashlib.sha256(joined_text).digest()).decode("ascii"),
        base64.b64encode(hashlib.sha256(joined_raw).digest()).decode("ascii"),
    }


def complete_snapshot(self: Any) -> ActionResult:
    backend = _backend(self)
    with LAB_LOCK:
        snapshot, data = _writable(backend, self._get_param("SnapshotId"))
        count = _int(self._get_param("ChangedBlocksCount"), "ChangedBlocksCount")
        if count != len(data.written):
            raise EbsValidationError(
                f"ChangedBlocksCount {count} does not match the {len(data.written)} blocks written to "
                f"snapshot '{snapshot.id}'."
            )
        checksum = self._get_param("Checksum")
        if checksum:
            algorithm = self._get_param("ChecksumAlgorithm")
            method = self._get_param("ChecksumAggregationMethod")
            if algorithm != CHECKSUM_ALGORITHM or method != "LINEAR":
                raise EbsValidationError(
                    "An aggregated Checksum needs ChecksumAlgorithm SHA256 and ChecksumAggregationMethod LINEAR."
                )
            if checksum not in _aggregate_checksums(data):
                raise EbsValidationError(
                    f"The aggregated checksum does not match the blocks written to snapshot '{snapshot.id}'."
                )
        data.delay = SETTINGS.snapshot_seconds
        data.sealed_at = clock()
    return ActionResult({"Status": data.status()})


# --- test hooks (POST /_harness/faults) ---------------------------------------------------------------------


THROTTLE_STATUSES = (429, 400, 503)


class _ThrottledError(EbsApiError):
    code = "RequestThrottledException"
    default_reason = "ACCOUNT_THROTTLED"


class _HttpThrottle(HTTPException):
    """A throttling answer outside the EBS model's error shapes (429 ThrottlingException, 503 from the front end)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(description=json.dumps({"__type": error_code, "message": message}))
        self.code = status
        self.error_code = error_code

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), ("x-amzn-ErrorType", self.error_code)]


class LabFaults:
    """Faults a test switches on to see a client cope: the next N EBS direct API calls answered as throttled
    (429 ThrottlingException, 400 RequestThrottledException or 503), the checksums of the next M GetSnapshotBlock
    answers corrupted. A moto reset clears them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._throttle_calls = 0
            self._throttle_status = 429
            self._corrupt_checksums = 0

    def set(self, *, throttle_calls: int | None = None, throttle_status: int | None = None,
            corrupt_checksums: int | None = None) -> None:
        if throttle_status is not None and throttle_status not in THROTTLE_STATUSES:
            raise ValueError(f"ThrottleStatus: must be one of {THROTTLE_STATUSES}, got {throttle_status!r}")
        for name, value in (("ThrottleCalls", throttle_calls), ("CorruptChecksums", corrupt_checksums)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}: must be a whole number >= 0, got {value!r}")
        with self._lock:
            if throttle_calls is not None:
                self._throttle_calls = throttle_calls
            if throttle_status is not None:
                self._throttle_status = throttle_status
            if corrupt_checksums is not None:
                self._corrupt_checksums = corrupt_checksums

    def take_throttle(self) -> int | None:
        """The status to throttle this call with, or None to serve it."""
        with self._lock:
            if self._throttle_calls <= 0:
                return None
            self._throttle_calls -= 1
            return self._throttle_status

    def take_corrupt_checksum(self) -> bool:
        with self._lock:
            if self._corrupt_checksums <= 0:
                return False
            self._corrupt_checksums -= 1
            return True

    def to_dict(self) -> dict[str, int]:
        with self._lock:
            return {"ThrottleCalls": self._throttle_calls, "ThrottleStatus": self._throttle_status,
                    "CorruptChecksums": self._corrupt_checksums}


FAULTS = LabFaults()
SETTINGS.on_reset(FAULTS.clear)


def _throttled(handler: Callable[[Any], ActionResult]) -> Callable[[Any], ActionResult]:
    @functools.wraps(handler)
    def serve(self: Any) -> ActionResult:
        status = FAULTS.take_throttle()
        if status == 400:
            raise _ThrottledError("The request was throttled (the lab's test hook).")
        if status is not None:
            code = "ThrottlingException" if status == 429 else "ServiceUnavailableException"
            raise _HttpThrottle(status, code, "Rate exceeded (the lab's test hook).")
        return handler(self)

    return serve


HANDLERS: dict[str, Callable[[Any], ActionResult]] = {
    "start_snapshot": _throttled(start_snapshot),
    "put_snapshot_block": _throttled(put_snapshot_block),
    "complete_snapshot": _throttled(complete_snapshot),
    "list_snapshot_blocks": _throttled(list_snapshot_blocks),
    "list_changed_blocks": _throttled(list_changed_blocks),
    "get_snapshot_block": _throttled(get_snapshot_block),
}
"""EBSResponse method name -> the lab's replacement."""
