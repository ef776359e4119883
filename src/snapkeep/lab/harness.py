"""A small typed client for the lab's `/_harness` endpoints: write and read volumes as the guest OS would."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class LabHarnessError(Exception):
    """The lab refused a harness call (unknown volume, out of range, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Digest:
    """SHA-256 of a volume or snapshot as if read end to end (zeros where unwritten)."""

    resource_id: str
    sha256: str
    blocks_written: int
    volume_size: int
    """GiB."""


class LabHarness:
    def __init__(self, endpoint: str, *, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, query: dict[str, int] | None = None, body: bytes | None = None) -> bytes:
        url = f"{self.endpoint}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw)
                code, message = str(detail.get("Code", "Error")), str(detail.get("Message", ""))
            except (ValueError, AttributeError):
                code, message = "Error", raw.decode("utf-8", "replace")
            raise LabHarnessError(exc.code, code, message) from None

    def _json(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        result = json.loads(self._call(method, path, body=body))
        if not isinstance(result, dict):
            raise LabHarnessError(500, "BadResponse", f"{path}: expected a JSON object")
        return result

    @staticmethod
    def _quote(resource_id: str) -> str:
        return urllib.parse.quote(resource_id, safe="")

    def write_volume(self, volume_id: str, offset: int, data: bytes) -> None:
        """Write `data` at byte `offset` of the volume, as the instance's OS would."""
        self._call("POST", f"/_harness/volumes/{self._quote(volume_id)}/write", {"offset": offset}, data)

    def read_volume(self, volume_id: str, offset: int, length: int) -> bytes:
        return self._call(
            "GET", f"/_harness/volumes/{self._quote(volume_id)}/read", {"offset": offset, "length": length}
        )

    def volume_report(self, volume_id: str) -> Digest:
        body = self._json("GET", f"/_harness/volumes/{self._quote(volume_id)}/digest")
        return Digest(body["VolumeId"], body["Sha256"], int(body["BlocksWritten"]), int(body["VolumeSize"]))

    def snapshot_report(self, snapshot_id: str) -> Digest:
        body = self._json("GET", f"/_harness/snapshots/{self._quote(snapshot_id)}/digest")
        return Digest(body["SnapshotId"], body["Sha256"], int(body["BlocksWritten"]), int(body["VolumeSize"]))

    def volume_digest(self, volume_id: str) -> str:
        """Hex SHA-256 of the whole volume."""
        return self.volume_report(volume_id).sha256

    def snapshot_digest(self, snapshot_id: str) -> str:
        """Hex SHA-256 of the whole snapshot (the volume as it was when the snapshot was taken)."""
        return self.snapshot_report(snapshot_id).sha256

    def config(self) -> dict[str, Any]:
        return self._json("GET", "/_harness/config")

    def set_snapshot_seconds(self, seconds: float) -> None:
        """How long snapshots started from now on stay pending (a reset restores the server's start value)."""
        self._json("POST", "/_harness/config", json.dumps({"SnapshotSeconds": seconds}).encode())

    def set_faults(self, *, throttle_calls: int | None = None, throttle_status: int | None = None,
                   corrupt_checksums: int | None = None) -> dict[str, int]:
        """Test hook: answer the next `throttle_calls` EBS direct API calls as throttled (HTTP 429
        ThrottlingException, 400 RequestThrottledException or 503) and give the next `corrupt_checksums`
        GetSnapshotBlock answers a wrong x-amz-Checksum. A reset disarms both."""
        fields = {"ThrottleCalls": throttle_calls, "ThrottleStatus": throttle_status,
                  "CorruptChecksums": corrupt_checksums}
        body = json.dumps({key: value for key, value in fields.items() if value is not None}).encode()
        return {key: int(value) for key, value in self._json("POST", "/_harness/faults", body).items()}

    def faults(self) -> dict[str, int]:
        """The faults still armed (counts left)."""
        return {key: int(value) for key, value in self._json("GET", "/_harness/faults").items()}

    def reset(self) -> None:
        """Drop every resource and block in the lab (moto's reset) and restore the start-up settings."""
        self._call("POST", "/moto-api/reset", body=b"")
