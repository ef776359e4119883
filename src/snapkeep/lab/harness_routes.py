"""The `/_harness/...` endpoints, served by the lab's moto server so a test (or the demo) can act as the guest OS.

    POST /_harness/volumes/<volume-id>/write?offset=N        body = bytes to write
    GET  /_harness/volumes/<volume-id>/read?offset=N&length=M
    GET  /_harness/volumes/<volume-id>/digest                 {"VolumeId", "Sha256", "BlocksWritten", "VolumeSize"}
    GET  /_harness/snapshots/<snapshot-id>/digest             {"SnapshotId", "Sha256", "BlocksWritten", ...}
    GET  /_harness/config                                     {"SnapshotSeconds": s}
    POST /_harness/config   {"SnapshotSeconds": s}            change the snapshot delay at runtime
    GET  /_harness/faults                                     the test-hook faults still armed
    POST /_harness/faults   {"ThrottleCalls": n, "ThrottleStatus": 429|400|503, "CorruptChecksums": m}
                            throttle the next n EBS direct API calls, corrupt the next m block checksums

Volume and snapshot ids are unique across accounts and regions, so they are looked up in every backend.
Errors are JSON `{"Code", "Message"}` with 400, 404 or 405.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from snapkeep.lab.blocks import GIB, BlockMap
from snapkeep.lab.records import LAB_LOCK, snapshot_data, volume_data
from snapkeep.lab.settings import SETTINGS

PREFIX = "/_harness/"
MAX_TRANSFER = 64 * 1024 * 1024
"""Largest write body or read length, so a typo cannot ask the lab for gigabytes at once."""

_ROUTE = re.compile(r"^/_harness/(volumes|snapshots)/([A-Za-z0-9-]+)/(write|read|digest)$")


class HarnessError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _backends() -> Iterable[Any]:
    from moto.ec2.models import ec2_backends

    for account_id in list(ec2_backends.keys()):
        yield from list(dict.values(ec2_backends[account_id]))


def find_volume(volume_id: str) -> Any:
    for backend in _backends():
        volume = backend.volumes.get(volume_id)
        if volume is not None:
            return volume
    raise HarnessError(404, "InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")


def find_snapshot(snapshot_id: str) -> Any:
    for backend in _backends():
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is not None:
            return snapshot
    raise HarnessError(404, "InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")


def _int_arg(request: Request, name: str) -> int:
    raw = request.args.get(name)
    if raw is None:
        raise HarnessError(400, "MissingParameter", f"{name}: query parameter is required.")
    try:
        value = int(raw)
    except ValueError:
        raise HarnessError(400, "InvalidParameterValue", f"{name}: must be an integer, got {raw!r}.") from None
    if value < 0:
        raise HarnessError(400, "InvalidParameterValue", f"{name}: must be >= 0, got {value}.")
    return value


def _check_range(volume: Any, offset: int, length: int) -> None:
    size = int(volume.size) * GIB
    if offset + length > size:
        raise HarnessError(
            400,
            "OutOfRange",
            f"offset {offset} + length {length} is beyond the end of {volume.id} ({volume.size} GiB = {size} bytes).",
        )
    if length > MAX_TRANSFER:
        raise HarnessError(400, "InvalidParameterValue", f"length: must be at most {MAX_TRANSFER} bytes.")


def _digest(blocks: BlockMap, size_gib: int) -> tuple[str, int]:
    """(hex digest, blocks written), hashing a copy outside the lock and caching the result on `blocks`."""
    size = size_gib * GIB
    with LAB_LOCK:
        cached = blocks.cached_digest(size)
        if cached is not None:
            return cached, len(blocks)
        frozen = blocks.copy()
        version = blocks.version
    digest = frozen.digest(size)
    with LAB_LOCK:
        blocks.remember_digest(size, digest, version)
    return digest, len(frozen)


def _volume(request: Request, volume_id: str, action: str) -> Response:
    volume = find_volume(volume_id)
    if action == "write":
        if request.method != "POST":
            raise HarnessError(405, "MethodNotAllowed", "write: use POST.")
        offset = _int_arg(request, "offset")
        if (request.content_length or 0) > MAX_TRANSFER:
            raise HarnessError(400, "InvalidParameterValue", f"body: must be at most {MAX_TRANSFER} bytes.")
        data = request.get_data()
        with LAB_LOCK:
            _check_range(volume, offset, len(data))
            volume_data(volume).blocks.write(offset, data)
        return _json({"VolumeId": volume.id, "Offset": offset, "BytesWritten": len(data)})
    if request.method != "GET":
        raise HarnessError(405, "MethodNotAllowed", f"{action}: use GET.")
    if action == "read":
        offset = _int_arg(request, "offset")
        length = _int_arg(request, "length")
        with LAB_LOCK:
            _check_range(volume, offset, length)
            payload = volume_data(volume).blocks.read(offset, length)
        return Response(payload, mimetype="application/octet-stream")
    with LAB_LOCK:
        blocks = volume_data(volume).blocks
        size = int(volume.size)
    digest, written = _digest(blocks, size)
    return _json({"VolumeId": volume.id, "Sha256": digest, "BlocksWritten": written, "VolumeSize": size})


def _snapshot(request: Request, snapshot_id: str, action: str) -> Response:
    if action != "digest":
        raise HarnessError(404, "NotFound", f"snapshots support only digest, not {action}.")
    if request.method != "GET":
        raise HarnessError(405, "MethodNotAllowed", "digest: use GET.")
    snapshot = find_snapshot(snapshot_id)
    data = snapshot_data(snapshot)
    digest, written = _digest(data.blocks, data.volume_size)
    return _json(
        {
            "SnapshotId": snapshot.id,
            "Sha256": digest,
            "BlocksWritten": written,
            "VolumeSize": data.volume_size,
            "State": data.status(),
        }
    )


def _config(request: Request) -> Response:
    if request.method == "POST":
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise HarnessError(400, "InvalidParameterValue", "body: must be a JSON object.") from None
        if not isinstance(body, dict) or set(body) - {"SnapshotSeconds"}:
            raise HarnessError(400, "InvalidParameterValue", 'body: only {"SnapshotSeconds": n} is accepted.')
        if "SnapshotSeconds" in body:
            try:
                SETTINGS.set_snapshot_seconds(body["SnapshotSeconds"])
            except ValueError as exc:
                raise HarnessError(400, "InvalidParameterValue", str(exc)) from None
    elif request.method != "GET":
        raise HarnessError(405, "MethodNotAllowed", "config: use GET or POST.")
    return _json(SETTINGS.to_dict())


def _faults(request: Request) -> Response:
    from snapkeep.lab.ebs_api import FAULTS

    if request.method == "POST":
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise HarnessError(400, "InvalidParameterValue", "body: must be a JSON object.") from None
        allowed = {"ThrottleCalls", "ThrottleStatus", "CorruptChecksums"}
        if not isinstance(body, dict) or set(body) - allowed:
            raise HarnessError(400, "InvalidParameterValue", f"body: only the keys {sorted(allowed)} are accepted.")
        try:
            FAULTS.set(throttle_calls=body.get("ThrottleCalls"), throttle_status=body.get("ThrottleStatus"),
                       corrupt_checksums=body.get("CorruptChecksums"))
        except ValueError as exc:
            raise HarnessError(400, "InvalidParameterValue", str(exc)) from None
    elif request.method != "GET":
        raise HarnessError(405, "MethodNotAllowed", "faults: use GET or POST.")
    return _json(FAULTS.to_dict())


def dispatch(request: Request) -> Response:
    try:
        if request.path in ("/_harness/config", "/_harness/config/"):
            return _config(request)
        if request.path in ("/_harness/faults", "/_harness/faults/"):
            return _faults(request)
        match = _ROUTE.match(request.path)
        if match is None:
            raise HarnessError(404, "NotFound", f"No harness endpoint at {request.path}.")
        kind, resource_id, action = match.groups()
        if kind == "volumes":
            return _volume(request, resource_id, action)
        return _snapshot(request, resource_id, action)
    except HarnessError as exc:
        return _json({"Code": exc.code, "Message": exc.message}, exc.status)


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """WSGI entry for `/_harness/...` requests."""
    response = dispatch(Request(environ))
    return response(environ, start_response)  # type: ignore[no-any-return]
