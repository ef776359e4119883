"""Which locks keep which lock from being taken, and when a lock is stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from snapkeep.imagestore.locks import LockState, conflicting

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STALE = timedelta(minutes=30)


def lock(name: str, exclusive: bool, refreshed_minutes_ago: float, readable: bool = True) -> LockState:
    when = NOW - timedelta(minutes=refreshed_minutes_ago)
    if not readable:
        return LockState(name, when, True, readable=False)
    return LockState(name, when, exclusive, "host", 42, when, when)


def test_shared_locks_coexist_exclusive_excludes_everything() -> None:
    writer = lock("w", False, 1)
    gc = lock("g", True, 1)
    assert conflicting(False, [writer], NOW, STALE) == []
    assert conflicting(True, [writer], NOW, STALE) == [writer]
    assert conflicting(False, [gc], NOW, STALE) == [gc]
    assert conflicting(True, [gc, writer], NOW, STALE) == [gc, writer]


def test_stale_locks_are_ignored() -> None:
    old = lock("old", True, 31)
    fresh = lock("fresh", False, 29)
    assert old.is_stale(NOW, STALE)
    assert not fresh.is_stale(NOW, STALE)
    assert conflicting(True, [old, fresh], NOW, STALE) == [fresh]
    assert conflicting(False, [old], NOW, STALE) == []


def test_an_unreadable_lock_counts_as_exclusive_until_stale_by_its_age() -> None:
    unreadable = lock("x", False, 5, readable=False)
    assert conflicting(False, [unreadable], NOW, STALE) == [unreadable]
    assert conflicting(False, [lock("y", False, 45, readable=False)], NOW, STALE) == []
    assert "unreadable" in unreadable.describe()
    assert "shared lock by host pid 42" in lock("w", False, 1).describe()
