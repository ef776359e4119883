"""Catalog queries for vault locks, vault access policies and legal holds (each takes the caller's Connection).

Rows locked here with FOR UPDATE (PostgreSQL; SQLite takes the whole database's write lock at BEGIN) order a
legal hold's creation against a deletion or an expiry of the same recovery point: whichever comes second sees
what the first wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from snapkeep.catalog import tables as t
from snapkeep.catalog.store import Row
from snapkeep.domain.errors import AlreadyExists, ResourceNotFound
from snapkeep.domain.vaults import VaultLock

LIVE_POINT_STATUSES = ("COMPLETED", "AVAILABLE")


# -- vaults ----------------------------------------------------------------------------------------------------
def lock_vault_row(conn: Connection, name: str, *, shared: bool = False) -> Row:
    """The vault's row, locked until the transaction ends (shared: others may read-lock it too)."""
    row = conn.execute(
        sa.select(t.backup_vaults).where(t.backup_vaults.c.name == name).with_for_update(read=shared)
    ).mappings().first()
    if row is None:
        raise ResourceNotFound(f"backup vault '{name}' not found")
    return dict(row)


def vault_lock(row: Mapping[str, Any]) -> VaultLock | None:
    """The Vault Lock a vault row carries, or None when it is not locked."""
    if not row["locked"]:
        return None
    return VaultLock(row["lock_min_retention_days"], row["lock_max_retention_days"], None, row["lock_date"])


def set_vault_lock(conn: Connection, name: str, lock: VaultLock | None) -> None:
    conn.execute(
        t.backup_vaults.update()
        .where(t.backup_vaults.c.name == name)
        .values(
            locked=lock is not None,
            lock_min_retention_days=lock.min_retention_days if lock else None,
            lock_max_retention_days=lock.max_retention_days if lock else None,
            lock_date=lock.lock_date if lock else None,
        )
    )


def set_access_policy(conn: Connection, name: str, policy: str | None) -> None:
    conn.execute(t.backup_vaults.update().where(t.backup_vaults.c.name == name).values(access_policy=policy))


# -- recovery points -------------------------------------------------------------------------------------------
def lock_recovery_point_row(conn: Connection, arn: str) -> Row | None:
    """The recovery point's row (any status), locked until the transaction ends; None when unknown."""
    row = conn.execute(
        sa.select(t.recovery_points).where(t.recovery_points.c.recovery_point_arn == arn).with_for_update()
    ).mappings().first()
    return dict(row) if row is not None else None


def lock_live_points(conn: Connection) -> list[Row]:
    """Every recovery point a hold may take (COMPLETED or AVAILABLE), locked until the transaction ends (in ARN
    order, as `lock_points` takes them, so the two never wait on each other in a cycle)."""
    c = t.recovery_points.c
    rows = conn.execute(
        sa.select(t.recovery_points).where(c.status.in_(LIVE_POINT_STATUSES)).order_by(c.recovery_point_arn)
        .with_for_update()
    )
    return [dict(r) for r in rows.mappings()]


def lock_points(conn: Connection, arns: Iterable[str]) -> list[Row]:
    """These recovery points' rows, locked until the transaction ends (the retention sweep takes them first)."""
    wanted = sorted(set(arns))
    if not wanted:
        return []
    c = t.recovery_points.c
    rows = conn.execute(
        sa.select(t.recovery_points).where(c.recovery_point_arn.in_(wanted)).order_by(c.recovery_point_arn)
        .with_for_update()
    )
    return [dict(r) for r in rows.mappings()]


# -- legal holds -----------------------------------------------------------------------------------------------
def insert_legal_hold(conn: Connection, values: Mapping[str, Any], point_arns: Iterable[str]) -> None:
    try:
        with conn.begin_nested():
            conn.execute(t.legal_holds.insert().values(**values))
    except IntegrityError as exc:
        raise AlreadyExists(f"legal hold '{values['legal_hold_id']}' already exists") from exc
    arns = sorted(set(point_arns))
    if arns:
        conn.execute(
            t.legal_hold_points.insert(),
            [{"legal_hold_id": values["legal_hold_id"], "recovery_point_arn": arn} for arn in arns],
        )


def get_legal_hold(conn: Connection, legal_hold_id: str) -> Row:
    row = conn.execute(
        sa.select(t.legal_holds).where(t.legal_holds.c.legal_hold_id == legal_hold_id)
    ).mappings().first()
    if row is None:
        raise ResourceNotFound(f"legal hold '{legal_hold_id}' not found", field="LegalHoldId")
    return dict(row)


def find_legal_hold_by_token(conn: Connection, token: str) -> Row | None:
    row = conn.execute(
        sa.select(t.legal_holds).where(t.legal_holds.c.idempotency_token == token)
    ).mappings().first()
    return dict(row) if row is not None else None


def list_legal_holds(conn: Connection) -> list[Row]:
    c = t.legal_holds.c
    rows = conn.execute(sa.select(t.legal_holds).order_by(c.creation_date, c.legal_hold_id))
    return [dict(r) for r in rows.mappings()]


def count_active_holds(conn: Connection) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(t.legal_holds).where(t.legal_holds.c.status == "ACTIVE")
        ).scalar_one()
    )


def update_legal_hold(conn: Connection, legal_hold_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(t.legal_holds.update().where(t.legal_holds.c.legal_hold_id == legal_hold_id).values(**values))


def points_of_hold(conn: Connection, legal_hold_id: str) -> list[Row]:
    """The recovery points a hold took that still exist (not DELETED), oldest first."""
    p, h = t.recovery_points.c, t.legal_hold_points.c
    rows = conn.execute(
        sa.select(t.recovery_points)
        .join(t.legal_hold_points, h.recovery_point_arn == p.recovery_point_arn)
        .where(h.legal_hold_id == legal_hold_id, p.status != "DELETED")
        .order_by(p.creation_date, p.recovery_point_arn)
    )
    return [dict(r) for r in rows.mappings()]


def active_holds_on(conn: Connection, recovery_point_arn: str) -> list[tuple[str, str]]:
    """(LegalHoldId, Title) of every ACTIVE hold on the recovery point."""
    h, p = t.legal_holds.c, t.legal_hold_points.c
    rows = conn.execute(
        sa.select(h.legal_hold_id, h.title)
        .join(t.legal_hold_points, p.legal_hold_id == h.legal_hold_id)
        .where(p.recovery_point_arn == recovery_point_arn, h.status == "ACTIVE")
        .order_by(h.creation_date, h.legal_hold_id)
    )
    return [(str(r.legal_hold_id), str(r.title)) for r in rows]


def held_points(conn: Connection, arns: Iterable[str]) -> set[str]:
    """Which of these recovery points at least one ACTIVE hold is on."""
    wanted = sorted(set(arns))
    if not wanted:
        return set()
    h, p = t.legal_holds.c, t.legal_hold_points.c
    rows = conn.execute(
        sa.select(p.recovery_point_arn)
        .join(t.legal_holds, p.legal_hold_id == h.legal_hold_id)
        .where(p.recovery_point_arn.in_(wanted), h.status == "ACTIVE")
        .distinct()
    )
    return {str(r[0]) for r in rows}
