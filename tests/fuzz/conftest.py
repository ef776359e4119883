"""The fuzz target: a live ApiServer on a fresh SQLite catalog, against the lab with its seed fleet, holding one of
each thing (vault, plan, selection, completed backup job, recovery point, restore job) so generated requests can name
real identifiers and reach past "not found".

Short, deterministic runs by default (a few examples per operation, derandomized); `./dev fuzz N` sets
SNAPKEEP_FUZZ_EXAMPLES=N and draws at random (`--hypothesis-seed` replays a run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from snapkeep.api.server import ApiServer
from snapkeep.app import Snapkeep
from snapkeep.lab.server import LabServer
from tests.lab_flow import ROLE, drain, fresh_fleet, open_on_lab, tagged_instances

ADMIN_ID, ADMIN_SECRET = "SKAKFUZZ000000000001", "S3cr3tForTheFuzzAdminKey0000000000000000"
LONG_RUN = "SNAPKEEP_FUZZ_EXAMPLES" in os.environ


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings for one operation: derandomized and without the example database in the short run, so it
    is the same run every time; random (seed printed on failure) in the long one."""
    examples = int(os.environ.get("SNAPKEEP_FUZZ_EXAMPLES", default_examples))
    database = settings().database if LONG_RUN else None
    return settings(max_examples=examples, derandomize=not LONG_RUN, database=database, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


class ApiLog(logging.Handler):
    """Keeps what the API logs at ERROR (the traces of internal errors), to show with a failing answer."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    def take(self) -> str:
        text = "\n".join(self.records[-3:])
        self.records.clear()
        return text


@dataclass
class FuzzTarget:
    endpoint: str
    sk: Snapkeep
    log: ApiLog
    key_id: str = ADMIN_ID
    secret: str = ADMIN_SECRET
    known: dict[str, list[Any]] = field(default_factory=dict)


def _seed(sk: Snapkeep) -> dict[str, list[Any]]:
    """One of each thing, through the service; returns member name -> identifiers that exist."""
    svc = sk.service
    svc.create_backup_vault("main")
    rule = {"RuleName": "daily", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 5 ? * * *)",
            "Lifecycle": {"DeleteAfterDays": 35}}
    plan = svc.create_backup_plan({"BackupPlanName": "fuzz-plan", "Rules": [rule]})
    selection = svc.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "tagged", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})
    target = tagged_instances(sk, "backup", "daily")[0]
    job = svc.start_backup_job("main", target, ROLE)
    drain(sk)
    point = svc.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    restore = svc.start_restore_job(point, {"InstanceType": "t3.micro"})
    drain(sk)
    vault_arn = svc.describe_backup_vault("main")["BackupVaultArn"]
    return {
        "BackupVaultName": ["main"], "TargetBackupVaultName": ["main"], "ByBackupVaultName": ["main"],
        "BackupVaultArn": [vault_arn], "SourceBackupVaultArn": [vault_arn],
        "BackupPlanId": [plan["BackupPlanId"]], "VersionId": [plan["VersionId"]],
        "SelectionId": [selection["SelectionId"]],
        "BackupJobId": [job["BackupJobId"]], "RestoreJobId": [restore["RestoreJobId"]],
        "RecoveryPointArn": [point], "ResourceArn": [target], "ByResourceArn": [target], "Resources": [target],
        "IamRoleArn": [ROLE], "ResourceType": ["EC2", "EBS"], "ByResourceType": ["EC2"],
        "ScheduleExpression": ["cron(0 5 ? * * *)", "cron(0 0 1 * ? *)"],
        "ScheduleExpressionTimezone": ["UTC", "Europe/Paris"],
        "Metadata": [{"InstanceType": "t3.micro"}],
        "BackupPlanTemplateJson": ['{"BackupPlanName": "t", "Rules": [{"RuleName": "r", '
                                   '"TargetBackupVaultName": "main"}]}'],
    }


@pytest.fixture(scope="package")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    lab = LabServer(snapshot_seconds=0.0)
    lab.start()
    log = ApiLog()
    api_logger = logging.getLogger("snapkeep.api")
    api_logger.addHandler(log)
    try:
        fleet = fresh_fleet(lab.endpoint)
        sk = open_on_lab(lab.endpoint, f"sqlite:///{home / 'catalog.db'}", home, fleet)
        try:
            known = _seed(sk)
            env = {"SNAPKEEP_ADMIN_ACCESS_KEY_ID": ADMIN_ID, "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET}
            with ApiServer(sk.api(env)) as server:
                yield FuzzTarget(server.endpoint, sk, log, known=known)
        finally:
            sk.close()
    finally:
        api_logger.removeHandler(log)
        lab.stop()
