"""Workers: threads that claim tasks from the queue and run their handler, keeping the lease alive meanwhile."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta

from snapkeep.engine import scheduler
from snapkeep.engine.backup import run_backup_job
from snapkeep.engine.context import (
    Done,
    EngineContext,
    LeaseGuard,
    LeaseLost,
    Outcome,
    RetryAt,
    StaleJob,
    bind_guard,
)
from snapkeep.engine.notify import deliver_vault_event
from snapkeep.engine.restore import run_restore_job
from snapkeep.engine.retention import (
    expire_recovery_point,
    extend_image_retention,
    move_to_cold,
    repository_gc,
    sweep,
)
from snapkeep.engine.runs import run_scheduled_rule

log = logging.getLogger("snapkeep.worker")

# The explicit registry of task kinds.
HANDLERS: dict[str, Callable[[EngineContext, str], Outcome]] = {
    "run": run_scheduled_rule,
    "backup": run_backup_job,
    "restore": run_restore_job,
    "expire": expire_recovery_point,
    "cold": move_to_cold,
    "repository_gc": repository_gc,
    "image_retention": extend_image_retention,
    "notify": deliver_vault_event,
}


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def run_one(ctx: EngineContext, owner: str) -> bool:
    """Claim and run one task; False when none was ready."""
    lease = timedelta(seconds=ctx.settings.lease_seconds)
    task = ctx.queue.claim(owner, ctx.clock(), lease)
    if task is None:
        return False
    guard = LeaseGuard(ctx.queue, task, owner, lease, ctx.clock)
    stop_beat = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(guard, stop_beat), daemon=True)
    beat.start()
    bind_guard(guard)
    outcome: Outcome
    try:
        outcome = HANDLERS[task.kind](ctx, task.ref_id)
    except LeaseLost:
        log.warning("task %s %s: lease lost, leaving it to its new owner", task.kind, task.ref_id)
        return True
    except StaleJob:
        outcome = RetryAt(ctx.clock())  # the job changed under us: run it again from its new state
    except Exception as exc:  # a bug or an unexpected failure: back off and try again, keeping the reason
        log.error("task %s %s failed: %s", task.kind, task.ref_id, traceback.format_exc())
        delay = min(300.0, ctx.settings.poll_seconds * (2 ** min(task.attempts, 8)))
        stop_beat.set()
        ctx.queue.retry_later(task, owner, ctx.clock() + timedelta(seconds=delay), f"{type(exc).__name__}: {exc}")
        return True
    finally:
        bind_guard(None)
        stop_beat.set()
        beat.join()
    if guard.lost.is_set():
        return True
    if isinstance(outcome, Done):
        ctx.queue.finish(task, owner)
    else:
        ctx.queue.retry_later(task, owner, outcome.when)
    return True


def _heartbeat(guard: LeaseGuard, stop: threading.Event) -> None:
    while not stop.wait(guard.lease.total_seconds() / 3):
        try:
            guard.check()
        except LeaseLost:
            log.warning("lost the lease of task %s %s", guard.task.kind, guard.task.ref_id)
            return
        except Exception:  # a busy database: the next beat tries again, the lease has room for it
            log.warning("heartbeat of task %s failed: %s", guard.task.ref_id, traceback.format_exc())


class WorkerPool:
    """The scheduler loop and N worker threads of one process."""

    def __init__(self, ctx: EngineContext, threads: int, *, scheduler_enabled: bool = True) -> None:
        self.ctx = ctx
        self.threads = threads
        self.scheduler_enabled = scheduler_enabled
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.scheduler_enabled:
            self._spawn(self._scheduler_loop, "snapkeep-scheduler")
        for index in range(self.threads):
            owner = worker_name(index)
            self._spawn(functools.partial(self._worker_loop, owner), f"snapkeep-worker-{index}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _scheduler_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                scheduler.tick(self.ctx.store, self.ctx.clock())
                sweep(self.ctx.store, self.ctx.clock())
            except Exception:
                log.error("scheduler tick failed: %s", traceback.format_exc())
            self.stopping.wait(min(30.0, max(1.0, self.ctx.settings.poll_seconds)))

    def _worker_loop(self, owner: str) -> None:
        while not self.stopping.is_set():
            try:
                worked = run_one(self.ctx, owner)
            except Exception:
                log.error("worker loop error: %s", traceback.format_exc())
                worked = False
            if not worked:
                self.stopping.wait(min(1.0, self.ctx.settings.poll_seconds))

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)
