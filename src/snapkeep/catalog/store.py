"""All catalog queries. Rows come back as plain dicts; missing rows raise ResourceNotFound."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from snapkeep.catalog import events
from snapkeep.catalog import tables as t
from snapkeep.domain.errors import AlreadyExists, ResourceNotFound

Row = dict[str, Any]


def _row(result: Any) -> Row | None:
    mapping = result.mappings().first()
    return dict(mapping) if mapping is not None else None


class CatalogStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- generic helpers -------------------------------------------------------------------------------
    def _insert(self, conn: Connection, table: sa.Table, values: Mapping[str, Any], what: str) -> None:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
        except IntegrityError as exc:
            raise AlreadyExists(f"{what} already exists") from exc

    def _get(self, conn: Connection, table: sa.Table, what: str, **keys: Any) -> Row:
        query = sa.select(table)
        for column, value in keys.items():
            query = query.where(table.c[column] == value)
        row = _row(conn.execute(query))
        if row is None:
            raise ResourceNotFound(f"{what} not found")
        return row

    def _update(self, conn: Connection, table: sa.Table, keys: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        stmt = table.update()
        for column, value in keys.items():
            stmt = stmt.where(table.c[column] == value)
        return int(conn.execute(stmt.values(**values)).rowcount)

    # -- accounts --------------------------------------------------------------------------------------
    def put_account(
        self, conn: Connection, account_id: str, role_arn: str | None, regions: list[str], now: datetime
    ) -> None:
        if (
            self._update(
                conn, t.protected_accounts, {"account_id": account_id}, {"role_arn": role_arn, "regions": regions}
            )
            == 0
        ):
            self._insert(
                conn,
                t.protected_accounts,
                {"account_id": account_id, "role_arn": role_arn, "regions": regions, "creation_date": now},
                "account",
            )

    def list_accounts(self, conn: Connection) -> list[Row]:
        rows = conn.execute(sa.select(t.protected_accounts).order_by(t.protected_accounts.c.account_id))
        return [dict(r) for r in rows.mappings()]

    def delete_account(self, conn: Connection, account_id: str) -> None:
        if (
            conn.execute(t.protected_accounts.delete().where(t.protected_accounts.c.account_id == account_id)).rowcount
            == 0
        ):
            raise ResourceNotFound(f"account {account_id} is not protected by Snapkeep")

    # -- vaults ----------------------------------------------------------------------------------------
    def insert_vault(self, conn: Connection, values: Mapping[str, Any]) -> None:
        self._insert(conn, t.backup_vaults, values, f"backup vault '{values['name']}'")

    def get_vault(self, conn: Connection, name: str) -> Row:
        return self._get(conn, t.backup_vaults, f"backup vault '{name}'", name=name)

    def list_vaults(self, conn: Connection) -> list[Row]:
        return [dict(r) for r in conn.execute(sa.select(t.backup_vaults).order_by(t.backup_vaults.c.name)).mappings()]

    def update_vault(self, conn: Connection, name: str, values: Mapping[str, Any]) -> None:
        self._update(conn, t.backup_vaults, {"name": name}, values)

    def delete_vault(self, conn: Connection, name: str) -> None:
        conn.execute(t.backup_vaults.delete().where(t.backup_vaults.c.name == name))

    def count_recovery_points(self, conn: Connection, vault_name: str) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.recovery_points)
                .where(t.recovery_points.c.backup_vault_name == vault_name, t.recovery_points.c.status != "DELETED")
            ).scalar_one()
        )

    # -- plans and selections --------------------------------------------------------------------------
    def insert_plan(self, conn: Connection, values: Mapping[str, Any]) -> None:
        self._insert(conn, t.backup_plans, values, f"backup plan '{values['name']}'")
        self._insert(
            conn,
            t.backup_plan_versions,
            {
                "plan_id": values["plan_id"],
                "version_id": values["version_id"],
                "plan": values["plan"],
                "creation_date": values["creation_date"],
            },
            "backup plan version",
        )

    def add_plan_version(
        self, conn: Connection, plan_id: str, version_id: str, plan: Mapping[str, Any], now: datetime
    ) -> None:
        self._insert(
            conn,
            t.backup_plan_versions,
            {"plan_id": plan_id, "version_id": version_id, "plan": plan, "creation_date": now},
            "backup plan version",
        )
        self._update(
            conn,
            t.backup_plans,
            {"plan_id": plan_id},
            {"version_id": version_id, "plan": plan, "name": plan["BackupPlanName"]},
        )

    def get_plan(self, conn: Connection, plan_id: str, *, include_deleted: bool = False) -> Row:
        row = self._get(conn, t.backup_plans, f"backup plan '{plan_id}'", plan_id=plan_id)
        if row["deletion_date"] is not None and not include_deleted:
            raise ResourceNotFound(f"backup plan '{plan_id}' not found")
        return row

    def get_plan_version(self, conn: Connection, plan_id: str, version_id: str) -> Row:
        return self._get(
            conn,
            t.backup_plan_versions,
            f"version '{version_id}' of backup plan '{plan_id}'",
            plan_id=plan_id,
            version_id=version_id,
        )

    def find_plan_by_name(self, conn: Connection, name: str) -> Row | None:
        return _row(
            conn.execute(
                sa.select(t.backup_plans).where(t.backup_plans.c.name == name, t.backup_plans.c.deletion_date.is_(None))
            )
        )

    def list_plans(self, conn: Connection, *, include_deleted: bool = False) -> list[Row]:
        query = sa.select(t.backup_plans).order_by(t.backup_plans.c.creation_date)
        if not include_deleted:
            query = query.where(t.backup_plans.c.deletion_date.is_(None))
        return [dict(r) for r in conn.execute(query).mappings()]

    def list_plan_versions(self, conn: Connection, plan_id: str) -> list[Row]:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(t.backup_plan_versions)
                .where(t.backup_plan_versions.c.plan_id == plan_id)
                .order_by(t.backup_plan_versions.c.creation_date)
            ).mappings()
        ]

    def update_plan(self, conn: Connection, plan_id: str, values: Mapping[str, Any]) -> None:
        self._update(conn, t.backup_plans, {"plan_id": plan_id}, values)

    def insert_selection(self, conn: Connection, values: Mapping[str, Any]) -> None:
        self._insert(conn, t.backup_selections, values, f"backup selection '{values['name']}'")

    def get_selection(self, conn: Connection, plan_id: str, selection_id: str) -> Row:
        return self._get(
            conn, t.backup_selections, f"backup selection '{selection_id}'", plan_id=plan_id, selection_id=selection_id
        )

    def list_selections(self, conn: Connection, plan_id: str) -> list[Row]:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(t.backup_selections)
                .where(t.backup_selections.c.plan_id == plan_id)
                .order_by(t.backup_selections.c.creation_date)
            ).mappings()
        ]

    def delete_selection(self, conn: Connection, plan_id: str, selection_id: str) -> None:
        self.get_selection(conn, plan_id, selection_id)
        conn.execute(t.backup_selections.delete().where(t.backup_selections.c.selection_id == selection_id))

    # -- scheduler -------------------------------------------------------------------------------------
    def rule_cursor(self, conn: Connection, plan_id: str, rule_name: str) -> datetime | None:
        value = conn.execute(
            sa.select(t.rule_cursors.c.last_run).where(
                t.rule_cursors.c.plan_id == plan_id, t.rule_cursors.c.rule_name == rule_name
            )
        ).scalar_one_or_none()
        return value if isinstance(value, datetime) else None

    def set_rule_cursor(self, conn: Connection, plan_id: str, rule_name: str, last_run: datetime) -> None:
        if (
            self._update(conn, t.rule_cursors, {"plan_id": plan_id, "rule_name": rule_name}, {"last_run": last_run})
            == 0
        ):
            conn.execute(t.rule_cursors.insert().values(plan_id=plan_id, rule_name=rule_name, last_run=last_run))

    def insert_run(self, conn: Connection, values: Mapping[str, Any]) -> bool:
        """Record a scheduled run; False if that rule's run at that time was recorded already."""
        try:
            with conn.begin_nested():
                conn.execute(t.scheduled_runs.insert().values(**values))
        except IntegrityError:
            return False
        return True

    def runs_at(self, conn: Connection, plan_id: str, scheduled_at: datetime) -> list[Row]:
        """The runs of a plan's rules recorded for one instant, EXPIRED ones left out."""
        c = t.scheduled_runs.c
        rows = conn.execute(sa.select(t.scheduled_runs).where(
            c.plan_id == plan_id, c.scheduled_at == scheduled_at, c.state != "EXPIRED"))
        return [dict(r) for r in rows.mappings()]

    def get_run(self, conn: Connection, run_id: str) -> Row:
        return self._get(conn, t.scheduled_runs, f"scheduled run '{run_id}'", run_id=run_id)

    def update_run(self, conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
        self._update(conn, t.scheduled_runs, {"run_id": run_id}, values)

    def list_runs(self, conn: Connection, plan_id: str | None = None) -> list[Row]:
        query = sa.select(t.scheduled_runs).order_by(t.scheduled_runs.c.scheduled_at)
        if plan_id:
            query = query.where(t.scheduled_runs.c.plan_id == plan_id)
        return [dict(r) for r in conn.execute(query).mappings()]

    # -- backup jobs -----------------------------------------------------------------------------------
    def insert_job(self, conn: Connection, values: Mapping[str, Any]) -> Row:
        """Insert a backup job, or return the job already recorded under the same idempotency key."""
        key = values["idempotency_key"]
        query = sa.select(t.backup_jobs).where(t.backup_jobs.c.idempotency_key == key)
        existing = _row(conn.execute(query))
        if existing is not None:
            return existing
        try:
            with conn.begin_nested():
                conn.execute(t.backup_jobs.insert().values(**values))
        except IntegrityError:  # a concurrent request with the same key won the race
            row = _row(conn.execute(query))
            if row is None:
                raise
            return row
        events.backup_job_inserted(conn, values)
        return self.get_job(conn, values["job_id"])

    def get_job(self, conn: Connection, job_id: str) -> Row:
        return self._get(conn, t.backup_jobs, f"backup job '{job_id}'", job_id=job_id)

    def update_job(
        self, conn: Connection, job_id: str, values: Mapping[str, Any], expect_version: int | None = None
    ) -> bool:
        """Write a job and bump its version; with `expect_version`, only if nobody wrote it since (False if not)."""
        events.backup_job_changing(conn, job_id, values, expect_version)
        stmt = t.backup_jobs.update().where(t.backup_jobs.c.job_id == job_id)
        if expect_version is not None:
            stmt = stmt.where(t.backup_jobs.c.version == expect_version)
        return conn.execute(stmt.values(**values, version=t.backup_jobs.c.version + 1)).rowcount == 1

    def live_jobs_for_vault(self, conn: Connection, vault: str) -> int:
        c = t.backup_jobs.c
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.backup_jobs)
                .where(c.backup_vault_name == vault, c.state.in_(("CREATED", "PENDING", "RUNNING", "ABORTING")))
            ).scalar_one()
        )

    def list_jobs(
        self,
        conn: Connection,
        *,
        state: str | None = None,
        vault: str | None = None,
        resource_arn: str | None = None,
        plan_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        resource_type: str | None = None,
    ) -> list[Row]:
        c = t.backup_jobs.c
        query = sa.select(t.backup_jobs).order_by(c.creation_date.desc(), c.job_id)
        for column, value in (
            (c.state, state),
            (c.backup_vault_name, vault),
            (c.resource_arn, resource_arn),
            (c.plan_id, plan_id),
            (c.resource_type, resource_type),
        ):
            if value is not None:
                query = query.where(column == value)
        if created_after is not None:
            query = query.where(c.creation_date > created_after)
        if created_before is not None:
            query = query.where(c.creation_date < created_before)
        return [dict(r) for r in conn.execute(query).mappings()]

    # -- recovery points -------------------------------------------------------------------------------
    def insert_recovery_point(self, conn: Connection, values: Mapping[str, Any]) -> None:
        self._insert(conn, t.recovery_points, values, f"recovery point '{values['recovery_point_arn']}'")

    def get_recovery_point(self, conn: Connection, arn: str) -> Row:
        row = self._get(conn, t.recovery_points, f"recovery point '{arn}'", recovery_point_arn=arn)
        if row["status"] == "DELETED":
            raise ResourceNotFound(f"recovery point '{arn}' not found")
        return row

    def list_recovery_points(
        self,
        conn: Connection,
        *,
        vault: str | None = None,
        resource_arn: str | None = None,
        include_deleted: bool = False,
    ) -> list[Row]:
        c = t.recovery_points.c
        query = sa.select(t.recovery_points).order_by(c.creation_date.desc())
        if vault is not None:
            query = query.where(c.backup_vault_name == vault)
        if resource_arn is not None:
            query = query.where(c.resource_arn == resource_arn)
        if not include_deleted:
            query = query.where(c.status != "DELETED")
        return [dict(r) for r in conn.execute(query).mappings()]

    def find_recovery_point_of_job(self, conn: Connection, job_id: str) -> Row | None:
        return _row(conn.execute(sa.select(t.recovery_points).where(t.recovery_points.c.backup_job_id == job_id)))

    def get_recovery_point_any(self, conn: Connection, arn: str) -> Row | None:
        """The row whatever its status (DELETED included), or None."""
        return _row(conn.execute(sa.select(t.recovery_points).where(t.recovery_points.c.recovery_point_arn == arn)))

    def due_for_expiry(self, conn: Connection, now: datetime) -> list[Row]:
        c = t.recovery_points.c
        rows = conn.execute(
            sa.select(t.recovery_points).where(
                c.status.in_(("COMPLETED", "AVAILABLE")), c.delete_at.is_not(None), c.delete_at <= now
            )
        )
        return [dict(r) for r in rows.mappings()]

    def due_for_cold(self, conn: Connection, now: datetime) -> list[Row]:
        """Live WARM points with an image backup whose MoveToColdStorageAt has come (their snapshots go)."""
        c = t.recovery_points.c
        rows = conn.execute(
            sa.select(t.recovery_points).where(
                c.status.in_(("COMPLETED", "AVAILABLE")), c.storage_class == "WARM", c.image_backup.is_not(None),
                c.move_to_cold_at.is_not(None), c.move_to_cold_at <= now,
            )
        )
        return [dict(r) for r in rows.mappings()]

    def image_repository_configs(self, conn: Connection) -> list[dict[str, Any]]:
        """Every repository a vault sends image backups to or a point's image backup is in: {"Url", "KmsKeyArn"}."""
        seen: dict[tuple[str, Any], dict[str, Any]] = {}
        for (config,) in conn.execute(sa.select(t.backup_vaults.c.image_repository)
                                      .where(t.backup_vaults.c.image_repository.is_not(None))):
            seen.setdefault((config["Url"], config.get("KmsKeyArn")), {"Url": config["Url"],
                                                                       "KmsKeyArn": config.get("KmsKeyArn")})
        for (backup,) in conn.execute(sa.select(t.recovery_points.c.image_backup)
                                      .where(t.recovery_points.c.image_backup.is_not(None))):
            key = (backup["RepositoryUrl"], backup.get("KmsKeyArn"))
            seen.setdefault(key, {"Url": key[0], "KmsKeyArn": key[1]})
        return list(seen.values())

    def latest_image_backup(self, conn: Connection, vault_name: str, resource_arn: str) -> Row | None:
        """The newest live point of a resource in a vault that has an image backup: the next one's parent."""
        c = t.recovery_points.c
        return _row(conn.execute(
            sa.select(t.recovery_points)
            .where(c.backup_vault_name == vault_name, c.resource_arn == resource_arn, c.image_backup.is_not(None),
                   c.status.in_(("COMPLETED", "AVAILABLE")))
            .order_by(c.creation_date.desc()).limit(1)
        ))

    def update_recovery_point(self, conn: Connection, arn: str, values: Mapping[str, Any]) -> None:
        events.recovery_point_changing(conn, arn, values)
        self._update(conn, t.recovery_points, {"recovery_point_arn": arn}, values)

    # -- restore jobs ----------------------------------------------------------------------------------
    def insert_restore_job(self, conn: Connection, values: Mapping[str, Any]) -> Row:
        token = values.get("idempotency_token")
        query = sa.select(t.restore_jobs).where(t.restore_jobs.c.idempotency_token == token)
        if token:
            existing = _row(conn.execute(query))
            if existing is not None:
                return existing
        try:
            with conn.begin_nested():
                conn.execute(t.restore_jobs.insert().values(**values))
        except IntegrityError:
            row = _row(conn.execute(query)) if token else None
            if row is None:
                raise
            return row
        events.restore_job_inserted(conn, values)
        return self.get_restore_job(conn, values["restore_job_id"])

    def get_restore_job(self, conn: Connection, job_id: str) -> Row:
        return self._get(conn, t.restore_jobs, f"restore job '{job_id}'", restore_job_id=job_id)

    def update_restore_job(
        self, conn: Connection, job_id: str, values: Mapping[str, Any], expect_version: int | None = None
    ) -> bool:
        events.restore_job_changing(conn, job_id, values, expect_version)
        stmt = t.restore_jobs.update().where(t.restore_jobs.c.restore_job_id == job_id)
        if expect_version is not None:
            stmt = stmt.where(t.restore_jobs.c.version == expect_version)
        return conn.execute(stmt.values(**values, version=t.restore_jobs.c.version + 1)).rowcount == 1

    def live_restores_of(self, conn: Connection, recovery_point_arn: str) -> int:
        c = t.restore_jobs.c
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.restore_jobs)
                .where(c.recovery_point_arn == recovery_point_arn, c.status.in_(("PENDING", "RUNNING")))
            ).scalar_one()
        )

    def list_restore_jobs(self, conn: Connection, *, status: str | None = None) -> list[Row]:
        query = sa.select(t.restore_jobs).order_by(t.restore_jobs.c.creation_date.desc())
        if status is not None:
            query = query.where(t.restore_jobs.c.status == status)
        return [dict(r) for r in conn.execute(query).mappings()]
