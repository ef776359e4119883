"""What the lab attaches to moto's EC2 Volume and Snapshot objects.

The data lives on moto's own objects (one attribute each), so `POST /moto-api/reset`, which drops every
backend, drops every block with them: there is no second store to keep in step.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from snapkeep.lab.blocks import BlockMap

ATTRIBUTE = "_snapkeep_lab"

LAB_LOCK = threading.RLock()
"""Serialises block writes against snapshot freezes, so a snapshot is one point in time."""

clock = time.monotonic


@dataclass
class VolumeData:
    blocks: BlockMap
    lineage: str
    """Snapshots compare (ListChangedBlocks) only within one lineage: a volume and what is made from it."""


@dataclass
class SnapshotData:
    blocks: BlockMap
    lineage: str
    volume_size: int
    """GiB, frozen when the snapshot starts (a later ModifyVolume does not change it)."""
    delay: float
    """Seconds from sealing to `completed`."""
    sealed_at: float | None
    """clock() when the data became final: at creation for EC2 snapshots, at CompleteSnapshot for
    StartSnapshot ones (None while still open for PutSnapshotBlock)."""
    direct: bool = False
    """Made by the EBS direct API StartSnapshot."""
    started_at: float = field(default_factory=lambda: clock())
    last_activity: float = field(default_factory=lambda: clock())
    timeout_seconds: float | None = None
    written: set[int] = field(default_factory=set)
    parent_snapshot_id: str | None = None

    def timed_out(self, now: float) -> bool:
        return (
            self.sealed_at is None
            and self.timeout_seconds is not None
            and now - self.last_activity > self.timeout_seconds
        )

    def status(self, now: float | None = None) -> str:
        now = clock() if now is None else now
        if self.sealed_at is None:
            return "error" if self.timed_out(now) else "pending"
        return "completed" if now - self.sealed_at >= self.delay else "pending"

    def progress(self, now: float | None = None) -> str:
        now = clock() if now is None else now
        status = self.status(now)
        if status == "completed":
            return "100%"
        if self.sealed_at is None or self.delay <= 0:
            return "0%"
        percent = int(100 * (now - self.sealed_at) / self.delay)
        return f"{max(0, min(99, percent))}%"


def volume_data(volume: Any) -> VolumeData:
    """The volume's blocks; a volume made by a path the lab does not wrap starts blank."""
    data = getattr(volume, ATTRIBUTE, None)
    if data is None:
        data = vars(volume).setdefault(ATTRIBUTE, VolumeData(BlockMap(), lineage=f"lineage-{volume.id}"))
    return data  # type: ignore[no-any-return]


def set_volume_data(volume: Any, data: VolumeData) -> None:
    setattr(volume, ATTRIBUTE, data)


def snapshot_data(snapshot: Any) -> SnapshotData:
    """The snapshot's frozen blocks; one made by a path the lab does not wrap is blank and completed."""
    data = getattr(snapshot, ATTRIBUTE, None)
    if data is None:
        blank = SnapshotData(
            BlockMap(),
            lineage=f"lineage-{snapshot.id}",
            volume_size=int(snapshot.volume.size),
            delay=0.0,
            sealed_at=clock(),
        )
        data = vars(snapshot).setdefault(ATTRIBUTE, blank)
    return data  # type: ignore[no-any-return]


def set_snapshot_data(snapshot: Any, data: SnapshotData) -> None:
    setattr(snapshot, ATTRIBUTE, data)


def drop_data(resource: Any) -> None:
    vars(resource).pop(ATTRIBUTE, None)
