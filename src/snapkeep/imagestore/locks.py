"""Repository locks: objects under `locks/`, shared for writers (backups), exclusive for maintenance (gc).

A lock is refreshed while held and stale once it has not been refreshed for `stale_after`, so a crashed process
never blocks the repository for long; `unlock` removes stale locks (or every lock, with force). Taking a lock is
write-then-recheck: two processes that race each see the other and the later one backs off.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from snapkeep.blobstores.base import BlobNotFound, BlobStore
from snapkeep.domain.clock import iso_z, parse_iso
from snapkeep.domain.errors import SnapkeepError
from snapkeep.imagestore.errors import DamagedObject, RepositoryLocked
from snapkeep.imagestore.format import LOCKS_PREFIX, BlobCodec, BlobType, hex_id_from_name, lock_name

LOCK_ID_SIZE = 16
DEFAULT_STALE_AFTER = timedelta(minutes=30)
DEFAULT_REFRESH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class LockState:
    """A lock object as found: its record, or None when it could not be read (then judged by its age)."""

    name: str
    modified: datetime
    exclusive: bool
    hostname: str = ""
    pid: int = 0
    created: datetime | None = None
    refreshed: datetime | None = None
    readable: bool = True

    def last_sign_of_life(self) -> datetime:
        return self.refreshed or self.modified

    def is_stale(self, now: datetime, stale_after: timedelta) -> bool:
        return now - self.last_sign_of_life() > stale_after

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        if not self.readable:
            return f"unreadable lock {self.name} (written {iso_z(self.modified)})"
        return f"{kind} lock by {self.hostname} pid {self.pid} since {iso_z(self.created or self.modified)}"


def conflicting(exclusive: bool, others: list[LockState], now: datetime, stale_after: timedelta) -> list[LockState]:
    """The live locks that keep a lock of this kind from being taken: any for exclusive, exclusive ones for shared.

    An unreadable lock counts as exclusive: nothing says it is safe to ignore until it is stale.
    """
    live = [lock for lock in others if not lock.is_stale(now, stale_after)]
    return live if exclusive else [lock for lock in live if lock.exclusive or not lock.readable]


class LockManager:
    def __init__(self, store: BlobStore, codec: BlobCodec, clock: Callable[[], datetime], *,
                 stale_after: timedelta = DEFAULT_STALE_AFTER,
                 refresh_every: timedelta = DEFAULT_REFRESH_EVERY) -> None:
        if refresh_every >= stale_after:
            raise ValueError("locks must be refreshed more often than they go stale")
        self._store = store
        self._codec = codec
        self._clock = clock
        self.stale_after = stale_after
        self.refresh_every = refresh_every

    def current(self) -> list[LockState]:
        found = []
        for info in self._store.list(LOCKS_PREFIX):
            lock_id = hex_id_from_name(info.name, LOCKS_PREFIX, LOCK_ID_SIZE)
            if lock_id is None:
                continue
            try:
                found.append(self._read(info.name, lock_id, info.modified))
            except BlobNotFound:
                continue  # released while listing
        return found

    def _read(self, name: str, lock_id: bytes, modified: datetime) -> LockState:
        try:
            plain = self._codec.open(BlobType.LOCK, lock_id, self._store.get(name), where=name)
            body = json.loads(plain)
            return LockState(name, modified, bool(body["exclusive"]), str(body["hostname"]), int(body["pid"]),
                             parse_iso(body["created"]), parse_iso(body["refreshed"]))
        except (DamagedObject, ValueError, KeyError, TypeError):
            return LockState(name, modified, True, readable=False)

    def _write(self, lock_id: bytes, exclusive: bool, created: datetime) -> None:
        body = {"exclusive": exclusive, "hostname": os.uname().nodename, "pid": os.getpid(),
                "created": created.isoformat(), "refreshed": self._clock().isoformat()}
        sealed = self._codec.seal(BlobType.LOCK, lock_id, json.dumps(body, sort_keys=True).encode())
        self._store.put(lock_name(lock_id), sealed)

    def acquire(self, *, exclusive: bool, wait: timedelta = timedelta(0),
                sleep: Callable[[float], None] = time.sleep) -> HeldLock:
        """Take a lock, retrying until `wait` has passed; RepositoryLocked names the holders otherwise."""
        deadline = self._clock() + wait
        lock_id = os.urandom(LOCK_ID_SIZE)
        name = lock_name(lock_id)
        while True:
            now = self._clock()
            blockers = conflicting(exclusive, self.current(), now, self.stale_after)
            if not blockers:
                created = self._clock()
                self._write(lock_id, exclusive, created)
                others = [lock for lock in self.current() if lock.name != name]
                blockers = conflicting(exclusive, others, self._clock(), self.stale_after)
                if not blockers:
                    return HeldLock(self, lock_id, exclusive, created)
                self._remove(name)
            if self._clock() >= deadline:
                kind = "an exclusive" if exclusive else "a shared"
                raise RepositoryLocked(
                    f"repository {self._store.location} is locked, cannot take {kind} lock: "
                    + "; ".join(b.describe() for b in blockers)
                    + ". Wait, or run unlock if the holder is gone (stale after "
                    f"{int(self.stale_after.total_seconds())} s)"
                )
            import random  # only a contended lock waits

            sleep(min(5.0, max(0.05, (deadline - self._clock()).total_seconds())) * random.uniform(0.5, 1.0))

    def _remove(self, name: str) -> None:
        with suppress(BlobNotFound):
            self._store.delete(name)

    def unlock(self, *, force: bool = False) -> list[LockState]:
        """Remove stale locks (every lock with force); returns what was removed."""
        now = self._clock()
        removed = []
        for lock in self.current():
            if force or lock.is_stale(now, self.stale_after):
                self._remove(lock.name)
                removed.append(lock)
        return removed


class HeldLock:
    """A lock this process holds; refreshed by a background thread until released."""

    def __init__(self, manager: LockManager, lock_id: bytes, exclusive: bool, created: datetime) -> None:
        self._manager = manager
        self.lock_id = lock_id
        self.exclusive = exclusive
        self._created = created
        self._last_refresh = created
        self._failure: SnapkeepError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="snapkeep-lock-refresh", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return lock_name(self.lock_id)

    def _refresh_loop(self) -> None:
        interval = self._manager.refresh_every.total_seconds()
        while not self._stop.wait(interval):
            self.refresh()

    def refresh(self) -> None:
        try:
            self._manager._write(self.lock_id, self.exclusive, self._created)
            self._last_refresh = self._manager._clock()
        except SnapkeepError as exc:
            self._failure = exc

    def check(self) -> None:
        """Before a commit point: the lock must still be ours and fresh, or others may have acted on its loss."""
        now = self._manager._clock()
        if self._failure is not None and now - self._last_refresh > self._manager.stale_after / 2:
            raise RepositoryLocked(f"lost the repository lock {self.name}: refreshing it failed: "
                                   f"{self._failure.message}")
        if now - self._last_refresh > self._manager.stale_after:
            raise RepositoryLocked(f"the repository lock {self.name} went stale (not refreshed since "
                                   f"{iso_z(self._last_refresh)}); another process may have removed it")

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._manager._remove(self.name)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
