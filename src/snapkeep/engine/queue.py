"""A durable task queue in the catalog. Workers claim tasks by taking a lease; a worker that dies lets its
lease run out, and another worker (or the restarted process) claims the task and resumes its job.

Claiming is one UPDATE guarded by the lease condition, so two workers never hold the same task: on SQLite the
write transaction takes the database's write lock up front (BEGIN IMMEDIATE); on PostgreSQL the candidate row is
locked with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from snapkeep.catalog.tables import tasks

READY = "READY"
DONE = "DONE"


@dataclass(frozen=True)
class Task:
    task_id: int
    kind: str
    ref_id: str
    attempts: int


class TaskQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def enqueue(
        conn: Connection,
        kind: str,
        ref_id: str,
        now: datetime,
        *,
        not_before: datetime | None = None,
        rearm: bool = True,
    ) -> None:
        """Add a task inside the caller's transaction (so a job and its task commit together); once per
        (kind, ref_id).

        A finished task is made ready again. A task still queued keeps its lease, so a worker running it is never
        displaced; with `rearm` it is only brought forward to `not_before`.
        """
        due = not_before or now
        row = conn.execute(
            sa.select(tasks.c.task_id, tasks.c.state, tasks.c.not_before).where(
                tasks.c.kind == kind, tasks.c.ref_id == ref_id
            )
        ).first()
        if row is None:
            conn.execute(
                tasks.insert().values(
                    kind=kind, ref_id=ref_id, state=READY, not_before=due, attempts=0, creation_date=now
                )
            )
        elif row.state == DONE:
            conn.execute(
                tasks.update()
                .where(tasks.c.task_id == row.task_id)
                .values(state=READY, not_before=due, lease_owner=None, lease_until=None, attempts=0, last_error=None)
            )
        elif rearm and row.not_before > due:
            conn.execute(tasks.update().where(tasks.c.task_id == row.task_id).values(not_before=due))

    def claim(self, owner: str, now: datetime, lease: timedelta, kinds: tuple[str, ...] | None = None) -> Task | None:
        with self.engine.begin() as conn:
            query = (
                sa.select(tasks.c.task_id)
                .where(
                    tasks.c.state == READY,
                    tasks.c.not_before <= now,
                    sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
                )
                .order_by(tasks.c.not_before, tasks.c.task_id)
                .limit(1)
            )
            if kinds:
                query = query.where(tasks.c.kind.in_(kinds))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            task_id = conn.execute(query).scalar_one_or_none()
            if task_id is None:
                return None
            updated = conn.execute(
                tasks.update()
                .where(
                    tasks.c.task_id == task_id,
                    tasks.c.state == READY,
                    sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + lease, attempts=tasks.c.attempts + 1)
            )
            if updated.rowcount != 1:
                return None
            row = conn.execute(sa.select(tasks).where(tasks.c.task_id == task_id)).mappings().one()
            return Task(row["task_id"], row["kind"], row["ref_id"], row["attempts"])

    def heartbeat(self, task: Task, owner: str, now: datetime, lease: timedelta) -> bool:
        """Extend the lease; False if the lease was lost (another worker took over): stop working then."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                tasks.update()
                .where(
                    tasks.c.task_id == task.task_id,
                    tasks.c.lease_owner == owner,
                    tasks.c.state == READY,
                )
                .values(lease_until=now + lease)
            )
            return updated.rowcount == 1

    def finish(self, task: Task, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                tasks.update()
                .where(tasks.c.task_id == task.task_id, tasks.c.lease_owner == owner)
                .values(state=DONE, lease_owner=None, lease_until=None)
            )

    def retry_later(self, task: Task, owner: str, not_before: datetime, error: str | None = None) -> None:
        """Give the task back to be run again at `not_before` (a job waiting on AWS, or a transient failure)."""
        with self.engine.begin() as conn:
            conn.execute(
                tasks.update()
                .where(tasks.c.task_id == task.task_id, tasks.c.lease_owner == owner)
                .values(not_before=not_before, lease_owner=None, lease_until=None, last_error=error)
            )

    def pending(self) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(tasks).where(tasks.c.state == READY)).scalar_one()
            )
