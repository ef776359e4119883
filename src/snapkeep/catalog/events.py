"""The notifications outbox: vault_events rows, written in the transaction of the change they report.

The store calls the `*_changing` functions just before it writes a backup job, a restore job or a recovery point,
and the `*_inserted` ones just after it records a job. They lock the row (FOR UPDATE on PostgreSQL; SQLite's write
transactions are exclusive already), compare it with what is about to be written, ask `domain.notifications`
what that transition raises, and keep the events the vault is subscribed to: one vault_events row each (the topic
as configured at that moment) and a `notify` task to publish it. A change that rolls back takes its rows with it;
one that commits has them: a crash neither loses nor invents a notification. Nothing is read unless a tracked
column (a job's state, a restore's status, a point's status, lifecycle or storage class) is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from snapkeep.catalog import tables as t
from snapkeep.domain.notifications import (
    BackupJobFacts,
    Notification,
    RecoveryPointFacts,
    RestoreJobFacts,
    backup_job_notifications,
    recovery_point_notifications,
    restore_job_notifications,
    subscribed,
)
from snapkeep.engine.queue import TaskQueue

NOTIFY_TASK = "notify"
_POINT_COLUMNS = frozenset({"status", "lifecycle", "storage_class"})

Row = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


# -- hooks the store calls --------------------------------------------------------------------------------------
def backup_job_changing(conn: Connection, job_id: str, values: Mapping[str, Any], expect_version: int | None) -> None:
    """Record what writing `values` to the backup job raises (nothing unless its state changes)."""
    if "state" not in values:
        return
    before = _locked(conn, t.backup_jobs, t.backup_jobs.c.job_id, job_id)
    if before is None or (expect_version is not None and before["version"] != expect_version):
        return  # the write will not happen
    after = {**before, **values}
    record(conn, before["backup_vault_name"], backup_job_notifications(before["state"], _job_facts(after)))


def backup_job_inserted(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record what a newly recorded backup job raises (nothing for a CREATED one)."""
    record(conn, values["backup_vault_name"], backup_job_notifications(None, _job_facts(values)))


def restore_job_changing(
    conn: Connection, job_id: str, values: Mapping[str, Any], expect_version: int | None
) -> None:
    """Record what writing `values` to the restore job raises, for the vault of the point it restores."""
    if "status" not in values:
        return
    before = _locked(conn, t.restore_jobs, t.restore_jobs.c.restore_job_id, job_id)
    if before is None or (expect_version is not None and before["version"] != expect_version):
        return
    after = {**before, **values}
    notifications = restore_job_notifications(before["status"], _restore_facts(after))
    if notifications:
        record(conn, _vault_of_point(conn, after["recovery_point_arn"]), notifications)


def restore_job_inserted(conn: Connection, values: Mapping[str, Any]) -> None:
    notifications = restore_job_notifications(None, _restore_facts(values))
    if notifications:
        record(conn, _vault_of_point(conn, values["recovery_point_arn"]), notifications)


def recovery_point_changing(conn: Connection, arn: str, values: Mapping[str, Any]) -> None:
    """Record RECOVERY_POINT_MODIFIED when the write changes the point's status, lifecycle or storage class."""
    if not _POINT_COLUMNS & values.keys():
        return
    before = _locked(conn, t.recovery_points, t.recovery_points.c.recovery_point_arn, arn)
    if before is None:
        return
    after = {**before, **values}
    record(
        conn,
        before["backup_vault_name"],
        recovery_point_notifications(_point_facts(before), _point_facts(after)),
    )


# -- the outbox ----------------------------------------------------------------------------------------------------
def record(conn: Connection, vault_name: str | None, notifications: list[Notification]) -> list[int]:
    """Write the notifications the vault is subscribed to, each with its `notify` task; their event ids."""
    if not notifications or vault_name is None:
        return []
    vault = conn.execute(
        sa.select(t.backup_vaults.c.notification_topic_arn, t.backup_vaults.c.notification_events).where(
            t.backup_vaults.c.name == vault_name
        )
    ).first()
    if vault is None or not vault.notification_topic_arn:
        return []
    wanted = subscribed(notifications, vault.notification_events or [])
    now = _now()
    ids: list[int] = []
    for notification in wanted:
        result = conn.execute(
            t.vault_events.insert().values(
                backup_vault_name=vault_name,
                event=notification.event,
                topic_arn=vault.notification_topic_arn,
                message=notification.to_json(),
                attempts=0,
                creation_date=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        event_id = int(key[0])
        TaskQueue.enqueue(conn, NOTIFY_TASK, str(event_id), now)
        ids.append(event_id)
    return ids


def get_event(conn: Connection, event_id: int) -> Row | None:
    row = conn.execute(sa.select(t.vault_events).where(t.vault_events.c.event_id == event_id)).mappings().first()
    return dict(row) if row is not None else None


def list_events(conn: Connection, vault_name: str | None = None, *, undelivered: bool = False) -> list[Row]:
    """The outbox, oldest first."""
    c = t.vault_events.c
    query = sa.select(t.vault_events).order_by(c.event_id)
    if vault_name is not None:
        query = query.where(c.backup_vault_name == vault_name)
    if undelivered:
        query = query.where(c.delivered_at.is_(None))
    return [dict(r) for r in conn.execute(query).mappings()]


def mark_delivered(conn: Connection, event_id: int, now: datetime) -> bool:
    """Mark the notification published; False if it was marked already (it is never marked twice)."""
    c = t.vault_events.c
    updated = conn.execute(
        t.vault_events.update()
        .where(c.event_id == event_id, c.delivered_at.is_(None))
        .values(delivered_at=now, attempts=c.attempts + 1)
    )
    return int(updated.rowcount) == 1


def record_failure(conn: Connection, event_id: int, error: str) -> int:
    """Count a failed delivery and keep its reason; the number of failed attempts so far."""
    c = t.vault_events.c
    conn.execute(
        t.vault_events.update()
        .where(c.event_id == event_id, c.delivered_at.is_(None))
        .values(attempts=c.attempts + 1, last_error=error[:4000])
    )
    return int(conn.execute(sa.select(c.attempts).where(c.event_id == event_id)).scalar_one())


# -- reading rows into facts ---------------------------------------------------------------------------------------
def _locked(conn: Connection, table: sa.Table, key: sa.Column[Any], value: str) -> Row | None:
    row = conn.execute(sa.select(table).where(key == value).with_for_update()).mappings().first()
    return dict(row) if row is not None else None


def _vault_of_point(conn: Connection, recovery_point_arn: str) -> str | None:
    c = t.recovery_points.c
    name = conn.execute(
        sa.select(c.backup_vault_name).where(c.recovery_point_arn == recovery_point_arn)
    ).scalar_one_or_none()
    return str(name) if name is not None else None


def _job_facts(job: Mapping[str, Any]) -> BackupJobFacts:
    return BackupJobFacts(
        job_id=str(job["job_id"]),
        account_id=str(job["account_id"]),
        resource_arn=str(job["resource_arn"]),
        state=str(job["state"]),
        start_time=job.get("started_at") or job["creation_date"],
        recovery_point_arn=job.get("recovery_point_arn"),
    )


def _restore_facts(job: Mapping[str, Any]) -> RestoreJobFacts:
    return RestoreJobFacts(
        restore_job_id=str(job["restore_job_id"]),
        account_id=str(job["account_id"]),
        recovery_point_arn=str(job["recovery_point_arn"]),
        status=str(job["status"]),
        creation_date=job["creation_date"],
        created_resource_arn=job.get("created_resource_arn"),
    )


def _point_facts(point: Mapping[str, Any]) -> RecoveryPointFacts:
    return RecoveryPointFacts(
        recovery_point_arn=str(point["recovery_point_arn"]),
        account_id=str(point["account_id"]),
        resource_arn=str(point["resource_arn"]),
        status=str(point["status"]),
        storage_class=str(point["storage_class"]),
        lifecycle=point.get("lifecycle"),
    )
