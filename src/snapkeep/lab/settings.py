"""The lab's runtime knobs, shared by every server in the process.

The snapshot delay is read when a snapshot starts, so changing it affects only later snapshots. A moto reset
puts it back to the value the lab was started with, so one test that needs pending states cannot slow the next.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable

SNAPSHOT_SECONDS_ENV = "SNAPKEEP_LAB_SNAPSHOT_SECONDS"
MAX_SNAPSHOT_SECONDS = 3600.0


def parse_snapshot_seconds(value: object, *, field: str = "SnapshotSeconds") -> float:
    """A delay in seconds: a finite number from 0 to MAX_SNAPSHOT_SECONDS."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{field}: must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SNAPSHOT_SECONDS:
        raise ValueError(f"{field}: must be between 0 and {MAX_SNAPSHOT_SECONDS:g} seconds, got {value!r}")
    return seconds


def snapshot_seconds_from_env() -> float:
    raw = os.environ.get(SNAPSHOT_SECONDS_ENV, "").strip()
    return parse_snapshot_seconds(raw, field=SNAPSHOT_SECONDS_ENV) if raw else 0.0


class LabSettings:
    """Thread-safe holder of the snapshot delay and the value a reset returns to."""

    def __init__(self, snapshot_seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._snapshot_seconds = snapshot_seconds
        self._initial_snapshot_seconds = snapshot_seconds
        self._reset_hooks: list[Callable[[], None]] = []

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Call `hook` on every reset too (the test-hook faults of ebs_api are cleared this way)."""
        self._reset_hooks.append(hook)

    @property
    def snapshot_seconds(self) -> float:
        with self._lock:
            return self._snapshot_seconds

    def set_snapshot_seconds(self, seconds: float) -> None:
        value = parse_snapshot_seconds(seconds)
        with self._lock:
            self._snapshot_seconds = value

    def set_initial_snapshot_seconds(self, seconds: float) -> None:
        """Set both the current delay and the one a reset restores (what a server was started with)."""
        value = parse_snapshot_seconds(seconds)
        with self._lock:
            self._snapshot_seconds = value
            self._initial_snapshot_seconds = value

    def reset(self) -> None:
        with self._lock:
            self._snapshot_seconds = self._initial_snapshot_seconds
        for hook in list(self._reset_hooks):
            hook()

    def to_dict(self) -> dict[str, float]:
        with self._lock:
            return {"SnapshotSeconds": self._snapshot_seconds}


SETTINGS = LabSettings()
