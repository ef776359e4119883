"""What every task handler gets: the catalog, the queue, AWS clients and the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from snapkeep.aws.sessions import SessionProvider
from snapkeep.catalog.store import CatalogStore
from snapkeep.config import Settings
from snapkeep.engine.queue import Task, TaskQueue


class StaleJob(Exception):
    """The job changed under this worker (a stop request, another writer): reload it and carry on from there."""


class LeaseLost(Exception):
    """This worker no longer holds the task's lease: another worker owns the job now, so stop touching it."""


class LeaseGuard:
    """Checks, before an AWS call that creates something, that this worker still holds its task's lease."""

    def __init__(
        self, queue: TaskQueue, task: Task, owner: str, lease: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self.queue, self.task, self.owner, self.lease, self.clock = queue, task, owner, lease, clock
        self.lost = threading.Event()

    def check(self) -> None:
        if self.lost.is_set() or not self.queue.heartbeat(self.task, self.owner, self.clock(), self.lease):
            self.lost.set()
            raise LeaseLost(f"lost the lease of {self.task.kind} task {self.task.ref_id}")


_current = threading.local()
MAX_RELOADS = 20


def advance_with_reload(ctx: EngineContext, load: Callable[[], dict[str, Any]],
                        advance: Callable[[EngineContext, dict[str, Any]], Outcome]) -> Outcome:
    """Run one pass of a job; a stale write (a stop request, another writer) reloads the job and decides again."""
    for _ in range(MAX_RELOADS):
        try:
            return advance(ctx, load())
        except StaleJob:
            continue
    return RetryAt(ctx.clock())


def bind_guard(guard: LeaseGuard | None) -> None:
    """Set the lease guard of the task this thread is running (None when it is done)."""
    _current.guard = guard


@dataclass(frozen=True)
class Done:
    """The task is finished."""


@dataclass(frozen=True)
class RetryAt:
    """Run the task again at `when` (waiting on AWS, or backing off)."""

    when: datetime


Outcome = Done | RetryAt


@dataclass
class EngineContext:
    settings: Settings
    store: CatalogStore
    queue: TaskQueue
    sessions: SessionProvider
    clock: Callable[[], datetime]

    def ec2(self, account_id: str, region: str) -> Any:
        return self.sessions.client("ec2", region, self.role_for(account_id))

    def role_for(self, account_id: str) -> str | None:
        """The role Snapkeep assumes to reach an account; None for its own credentials' account."""
        with self.store.transaction() as conn:
            for account in self.store.list_accounts(conn):
                if account["account_id"] == account_id:
                    role = account["role_arn"]
                    return str(role) if role else None
        return None

    def check_lease(self) -> None:
        """Raise LeaseLost if this thread's task lease is gone (no-op outside a worker, e.g. in tests)."""
        guard: LeaseGuard | None = getattr(_current, "guard", None)
        if guard is not None:
            guard.check()

    def task_attempts(self) -> int:
        """How many times this thread's task has been claimed, this time included (1 outside a worker)."""
        guard: LeaseGuard | None = getattr(_current, "guard", None)
        return guard.task.attempts if guard is not None else 1

    def poll_later(self) -> RetryAt:
        return RetryAt(self.clock() + timedelta(seconds=self.settings.poll_seconds))


PROGRESS_SAVE_SECONDS = 2.0


def progress_saver(save_percent: Callable[[float], None], low: float, high: float, *, start: float = 0.0,
                   span: float = 1.0) -> Callable[[Any], None]:
    """A repository progress callback (imagestore Progress) that records a job's percent_done, from `low` at the
    start of this share (`start`, `span` of the whole work) to `high`, at most every PROGRESS_SAVE_SECONDS. The
    save is fenced by the job's version, so a stop request ends the work at the next one."""
    last = [time.monotonic()]

    def progress(p: Any) -> None:
        if time.monotonic() - last[0] >= PROGRESS_SAVE_SECONDS and p.blocks_total:
            last[0] = time.monotonic()
            save_percent(round(low + (high - low) * (start + span * p.blocks_done / p.blocks_total), 1))

    return progress
