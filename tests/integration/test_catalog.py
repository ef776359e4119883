"""The catalog, the service operations, the scheduler and the task queue on real SQLite files and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from snapkeep.catalog import db, tables
from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.errors import AlreadyExists, InvalidParameterValue, InvalidRequest, ResourceNotFound
from snapkeep.engine import scheduler
from snapkeep.engine.queue import TaskQueue
from snapkeep.service import BackupService

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/backup"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def plan_json(vault: str = "main", name: str = "daily-plan") -> dict[str, Any]:
    return {"BackupPlanName": name, "Rules": [
        {"RuleName": "daily", "TargetBackupVaultName": vault, "ScheduleExpression": "cron(0 5 ? * * *)",
         "ScheduleExpressionTimezone": "Europe/Berlin", "StartWindowMinutes": 60, "CompletionWindowMinutes": 180,
         "Lifecycle": {"DeleteAfterDays": 35}}]}


@pytest.fixture
def store(catalog_url: str) -> CatalogStore:
    engine = db.create_engine(catalog_url)
    db.upgrade(engine)
    return CatalogStore(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def service(store: CatalogStore, clock: Clock) -> BackupService:
    return BackupService(store, "us-east-1", "123456789012", clock)


def count(store: CatalogStore, table: sa.Table) -> int:
    with store.transaction() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_migrations_create_every_table_and_rerun_cleanly(catalog_url: str) -> None:
    engine = db.create_engine(catalog_url)
    db.upgrade(engine)
    db.upgrade(engine)
    names = set(sa.inspect(engine).get_table_names())
    assert set(tables.metadata.tables) <= names
    assert "alembic_version" in names


def test_vault_lifecycle(service: BackupService, store: CatalogStore) -> None:
    out = service.create_backup_vault("main", {"team": "ops"})
    assert out["BackupVaultArn"] == "arn:aws:backup:us-east-1:123456789012:backup-vault:main"
    assert service.describe_backup_vault("main")["NumberOfRecoveryPoints"] == 0
    assert [v["BackupVaultName"] for v in service.list_backup_vaults()] == ["main"]
    with pytest.raises(AlreadyExists):
        service.create_backup_vault("main")
    with pytest.raises(InvalidParameterValue) as bad:
        service.create_backup_vault("x")
    assert bad.value.field == "BackupVaultName"
    assert count(store, tables.backup_vaults) == 1
    service.delete_backup_vault("main")
    with pytest.raises(ResourceNotFound):
        service.describe_backup_vault("main")


def test_plan_needs_its_vault_and_changes_nothing_when_refused(service: BackupService, store: CatalogStore) -> None:
    with pytest.raises(InvalidParameterValue, match="does not exist") as err:
        service.create_backup_plan(plan_json("missing"))
    assert err.value.field == "Rules[0].TargetBackupVaultName"
    assert count(store, tables.backup_plans) == 0
    bad = plan_json()
    bad["Rules"][0]["Lifecycle"] = {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 60}
    service.create_backup_vault("main")
    with pytest.raises(InvalidParameterValue):
        service.create_backup_plan(bad)
    assert count(store, tables.backup_plans) == 0


def test_plan_versions_and_deletion(service: BackupService, clock: Clock) -> None:
    service.create_backup_vault("main")
    created = service.create_backup_plan(plan_json())
    plan_id = created["BackupPlanId"]
    with pytest.raises(AlreadyExists):
        service.create_backup_plan(plan_json())
    changed = plan_json()
    changed["Rules"][0]["ScheduleExpression"] = "cron(30 6 ? * * *)"
    clock.now = T0 + timedelta(minutes=1)
    updated = service.update_backup_plan(plan_id, changed)
    assert updated["VersionId"] != created["VersionId"]
    current = service.get_backup_plan(plan_id)
    assert current["BackupPlan"]["Rules"][0]["ScheduleExpression"] == "cron(30 6 ? * * *)"
    old = service.get_backup_plan(plan_id, created["VersionId"])
    assert old["BackupPlan"]["Rules"][0]["ScheduleExpression"] == "cron(0 5 ? * * *)"
    assert [v["VersionId"] for v in service.list_backup_plan_versions(plan_id)] == [created["VersionId"],
                                                                                  updated["VersionId"]]
    selection = service.create_backup_selection(plan_id, {
        "SelectionName": "tagged", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})
    with pytest.raises(InvalidRequest, match="selections must be deleted"):
        service.delete_backup_plan(plan_id)
    service.delete_backup_selection(plan_id, selection["SelectionId"])
    service.delete_backup_plan(plan_id)
    assert service.list_backup_plans() == []
    with pytest.raises(ResourceNotFound):
        service.get_backup_plan(plan_id)


def test_bad_selection_is_refused_and_stores_nothing(service: BackupService, store: CatalogStore) -> None:
    service.create_backup_vault("main")
    plan_id = service.create_backup_plan(plan_json())["BackupPlanId"]
    with pytest.raises(InvalidParameterValue):
        service.create_backup_selection(plan_id, {"SelectionName": "bad name!", "IamRoleArn": ROLE,
                                                  "Resources": ["*"]})
    with pytest.raises(ResourceNotFound):
        service.create_backup_selection("no-such-plan", {"SelectionName": "ok", "IamRoleArn": ROLE,
                                                         "Resources": ["*"]})
    assert count(store, tables.backup_selections) == 0


def test_scheduler_neither_loses_nor_repeats_runs_across_restarts(catalog_url: str, clock: Clock) -> None:
    engine = db.create_engine(catalog_url)
    db.upgrade(engine)
    service = BackupService(CatalogStore(engine), "us-east-1", "123456789012", clock)
    service.create_backup_vault("main")
    service.create_backup_plan(plan_json())
    # Plan created 2026-03-01 12:00 UTC; the rule runs daily at 05:00 Berlin (04:00 UTC in winter).
    assert len(scheduler.tick(CatalogStore(engine), T0 + timedelta(days=1))) == 1
    assert scheduler.tick(CatalogStore(engine), T0 + timedelta(days=1)) == []
    engine.dispose()
    # A new process: same catalog, new engine and store.
    engine2 = db.create_engine(catalog_url)
    store2 = CatalogStore(engine2)
    assert scheduler.tick(store2, T0 + timedelta(days=1, hours=1)) == []
    assert len(scheduler.tick(store2, T0 + timedelta(days=2))) == 1
    with store2.transaction() as conn:
        runs = store2.list_runs(conn)
    assert [r["scheduled_at"] for r in runs] == [datetime(2026, 3, d, 4, 0, tzinfo=UTC) for d in (2, 3)]
    assert {r["state"] for r in runs} == {"CREATED"}
    assert count(store2, tables.tasks) == 2


def test_runs_missed_during_an_outage_are_recorded_expired_and_only_the_newest_runs(
        service: BackupService, store: CatalogStore) -> None:
    service.create_backup_vault("main")
    service.create_backup_plan(plan_json())
    queued = scheduler.tick(store, T0 + timedelta(days=3))  # down for three days
    with store.transaction() as conn:
        runs = store.list_runs(conn)
    assert [r["state"] for r in runs] == ["EXPIRED", "EXPIRED", "CREATED"]
    assert queued == [runs[-1]["run_id"]]
    assert "missed" in runs[0]["message"]
    assert count(store, tables.tasks) == 1


def test_queue_leases_give_each_task_to_one_worker(store: CatalogStore) -> None:
    queue = TaskQueue(store.engine)
    with store.transaction() as conn:
        TaskQueue.enqueue(conn, "backup", "job-1", T0)
    lease = timedelta(seconds=30)
    task = queue.claim("worker-a", T0, lease)
    assert task is not None and task.ref_id == "job-1"
    assert queue.claim("worker-b", T0 + timedelta(seconds=10), lease) is None
    assert queue.heartbeat(task, "worker-a", T0 + timedelta(seconds=20), lease)
    # worker-a dies: its lease runs out and worker-b resumes the task.
    taken = queue.claim("worker-b", T0 + timedelta(seconds=51), lease)
    assert taken is not None and taken.attempts == 2
    assert not queue.heartbeat(task, "worker-a", T0 + timedelta(seconds=52), lease)
    queue.retry_later(taken, "worker-b", T0 + timedelta(minutes=5))
    assert queue.claim("worker-a", T0 + timedelta(minutes=4), lease) is None
    again = queue.claim("worker-a", T0 + timedelta(minutes=5), lease)
    assert again is not None
    queue.finish(again, "worker-a")
    assert queue.pending() == 0


def test_concurrent_workers_with_their_own_connections_claim_each_task_once(catalog_url: str) -> None:
    """Several claimers, each with its own engine as separate processes would have, race for 60 tasks."""
    import threading

    engine = db.create_engine(catalog_url)
    db.upgrade(engine)
    with engine.begin() as conn:
        for index in range(60):
            TaskQueue.enqueue(conn, "backup", f"job-{index}", T0)
    claimed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        queue = TaskQueue(db.create_engine(catalog_url))
        try:
            while (task := queue.claim(name, T0 + timedelta(seconds=1), timedelta(minutes=5))) is not None:
                with lock:
                    claimed.append(task.ref_id)
                queue.finish(task, name)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            queue.engine.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(claimed) == sorted(f"job-{i}" for i in range(60))
    assert TaskQueue(engine).pending() == 0


def test_rule_added_by_an_update_does_not_catch_up_on_runs_before_it_existed(service: BackupService,
                                                                             store: CatalogStore,
                                                                             clock: Clock) -> None:
    service.create_backup_vault("main")
    plan_id = service.create_backup_plan(plan_json())["BackupPlanId"]
    assert len(scheduler.tick(store, T0 + timedelta(days=10))) == 1
    clock.now = T0 + timedelta(days=10)
    changed = plan_json()
    changed["Rules"].append(dict(changed["Rules"][0], RuleName="hourly", ScheduleExpression="cron(0 * ? * * *)"))
    service.update_backup_plan(plan_id, changed)
    created = scheduler.tick(store, T0 + timedelta(days=10, hours=3))
    with store.transaction() as conn:
        hourly = [r for r in store.list_runs(conn, plan_id) if r["rule_name"] == "hourly"]
    assert len(hourly) == 3 and len(created) == 1
