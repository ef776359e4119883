"""Catalog queries of the reporting operations: tags of every taggable resource, region settings, backup jobs by
every ListBackupJobs filter and the facts job summaries count. Functions over the caller's Connection, so the
caller decides the transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from snapkeep.catalog import tables as t
from snapkeep.domain.errors import Conflict
from snapkeep.domain.job_reports import BackupJobFilter
from snapkeep.domain.tags import TaggableKind

Row = dict[str, Any]


def _tag_target(kind: TaggableKind) -> tuple[sa.Table, sa.ColumnElement[bool], sa.Column[Any]]:
    """The table of a kind, the condition a live row meets, and its ARN column."""
    if kind is TaggableKind.BACKUP_VAULT:
        return t.backup_vaults, sa.true(), t.backup_vaults.c.arn
    if kind is TaggableKind.BACKUP_PLAN:
        return t.backup_plans, t.backup_plans.c.deletion_date.is_(None), t.backup_plans.c.arn
    if kind is TaggableKind.LEGAL_HOLD:
        return t.legal_holds, sa.true(), t.legal_holds.c.arn
    return t.recovery_points, t.recovery_points.c.status != "DELETED", t.recovery_points.c.recovery_point_arn


def resource_tags(conn: Connection, kind: TaggableKind, arn: str, *, for_update: bool = False) -> dict[str, str] | None:
    """The tags of the resource with this ARN, or None when there is no such (live) resource. `for_update` locks
    the row on PostgreSQL (SQLite's write transactions hold the database lock already)."""
    table, live, arn_column = _tag_target(kind)
    query = sa.select(table.c.tags).where(arn_column == arn, live)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else dict(row[0] or {})


def set_resource_tags(conn: Connection, kind: TaggableKind, arn: str, tags: Mapping[str, str]) -> None:
    table, live, arn_column = _tag_target(kind)
    conn.execute(table.update().where(arn_column == arn, live).values(tags=dict(tags)))


# -- region settings -------------------------------------------------------------------------------------------
def region_settings(conn: Connection, *, for_update: bool = False) -> dict[str, dict[str, bool]]:
    """What UpdateRegionSettings stored, per setting name (the defaults are the domain's business)."""
    query = sa.select(t.region_settings)
    if for_update:
        query = query.with_for_update()
    return {str(r["name"]): dict(r["value"] or {}) for r in conn.execute(query).mappings()}


def put_region_settings(conn: Connection, settings: Mapping[str, Mapping[str, bool]]) -> None:
    for name, value in settings.items():
        updated = conn.execute(
            t.region_settings.update().where(t.region_settings.c.name == name).values(value=dict(value))
        ).rowcount
        if updated:
            continue
        try:
            with conn.begin_nested():
                conn.execute(t.region_settings.insert().values(name=name, value=dict(value)))
        except IntegrityError as exc:  # another request stored the first value of this setting meanwhile
            raise Conflict("the region settings changed while being updated; try again", field=name) from exc


# -- backup jobs -----------------------------------------------------------------------------------------------
def list_backup_jobs(
    conn: Connection,
    wanted: BackupJobFilter,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[Row]:
    """Jobs matching every filter but the message category (derived from the message, so the caller's), newest
    first and by job id within one instant; `after` is the (creation date, job id) of the last job already
    returned, so the next page starts right after it whatever was created since."""
    c = t.backup_jobs.c
    query = sa.select(t.backup_jobs).order_by(c.creation_date.desc(), c.job_id)
    for column, value in (
        (c.state, wanted.state),
        (c.backup_vault_name, wanted.vault),
        (c.resource_arn, wanted.resource_arn),
        (c.resource_type, wanted.resource_type),
        (c.account_id, wanted.account_id),
    ):
        if value is not None:
            query = query.where(column == value)
    for column, low, high in (
        (c.creation_date, wanted.created_after, wanted.created_before),
        (c.completion_date, wanted.complete_after, wanted.complete_before),
    ):
        if low is not None:
            query = query.where(column > low)
        if high is not None:
            query = query.where(column < high)
    if wanted.parent_job_id is not None:
        query = query.where(sa.false())  # Snapkeep's jobs are never children of a composite job
    if after is not None:
        created, job_id = after
        query = query.where(sa.or_(c.creation_date < created, sa.and_(c.creation_date == created, c.job_id > job_id)))
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def job_facts_since(conn: Connection, since: datetime) -> list[Row]:
    """The columns a job summary counts, for the jobs created at or after `since`."""
    c = t.backup_jobs.c
    query = sa.select(c.region, c.account_id, c.state, c.resource_type, c.status_message, c.creation_date).where(
        c.creation_date >= since
    )
    return [dict(r) for r in conn.execute(query).mappings()]
