"""The `snapkeep` command line as a user runs it: real processes, a real catalog file, the lab over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snapkeep.lab.fleet import seed_fleet
from snapkeep.lab.server import LabServer

PLAN = {"BackupPlanName": "cli-plan", "Rules": [
    {"RuleName": "daily", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(30 6 ? * * *)",
     "ScheduleExpressionTimezone": "America/New_York", "StartWindowMinutes": 60, "CompletionWindowMinutes": 180},
    {"RuleName": "monthly", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 3 1 * ? *)",
     "Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 365}}]}
SELECTION = {"SelectionName": "tagged", "IamRoleArn": "arn:aws:iam::123456789012:role/backup",
             "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]}


def snapkeep(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    full_env.update({"SNAPKEEP_HOME": str(home), "COLUMNS": "200"}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "snapkeep.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=120)


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_vault_and_plan_commands_with_json_and_errors(tmp_path: Path) -> None:
    out = snapkeep(tmp_path, "vault", "create", "main", "--tag", "team=ops", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["BackupVaultArn"].endswith(":backup-vault:main")
    dup = snapkeep(tmp_path, "vault", "create", "main")
    assert dup.returncode == 4 and "AlreadyExistsException" in dup.stderr
    bad = snapkeep(tmp_path, "vault", "create", "a")
    assert bad.returncode == 2 and "BackupVaultName" in bad.stderr

    created = snapkeep(tmp_path, "plan", "create", "--file", str(write(tmp_path / "p.json", PLAN)), "--json")
    assert created.returncode == 0, created.stderr
    plan_id = json.loads(created.stdout)["BackupPlanId"]
    listed = json.loads(snapkeep(tmp_path, "plan", "list", "--json").stdout)
    assert [p["BackupPlanId"] for p in listed] == [plan_id]
    table = snapkeep(tmp_path, "plan", "list")
    assert "cli-plan" in table.stdout and plan_id in table.stdout

    broken = dict(PLAN, Rules=[dict(PLAN["Rules"][0], ScheduleExpression="cron(0 5 * * * *)")])  # type: ignore[arg-type]
    refused = snapkeep(tmp_path, "plan", "create", "--file", str(write(tmp_path / "b.json", dict(broken,
                                                                                                 BackupPlanName="b"))))
    assert refused.returncode == 2
    assert "InvalidParameterValueException" in refused.stderr and "ScheduleExpression" in refused.stderr
    assert len(json.loads(snapkeep(tmp_path, "plan", "list", "--json").stdout)) == 1

    not_json = tmp_path / "x.json"
    not_json.write_text("{nope")
    garbled = snapkeep(tmp_path, "plan", "create", "--file", str(not_json))
    assert garbled.returncode == 2 and "not valid JSON" in garbled.stderr
    missing = snapkeep(tmp_path, "job", "describe", "NO-SUCH-JOB")
    assert missing.returncode == 3 and "ResourceNotFoundException" in missing.stderr


def test_plan_preview_lists_runs_in_utc_and_local_time(tmp_path: Path) -> None:
    out = snapkeep(tmp_path, "plan", "preview", "--file", str(write(tmp_path / "p.json", PLAN)),
                   "--from", "2026-03-07T12:00:00Z", "--count", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    daily, monthly = result["rules"]
    # 06:30 New York: EST (UTC-5) until the DST change on 2026-03-08, EDT (UTC-4) after it.
    assert daily["NextRuns"] == ["2026-03-08T10:30:00Z", "2026-03-09T10:30:00Z", "2026-03-10T10:30:00Z"]
    assert daily["NextRunsLocal"][0] == "2026-03-08T06:30:00-04:00"
    assert daily["StartWindowEnds"][0] == "2026-03-08T11:30:00Z"
    assert daily["CompletionWindowEnds"][0] == "2026-03-08T13:30:00Z"
    assert monthly["NextRuns"] == ["2026-04-01T03:00:00Z", "2026-05-01T03:00:00Z", "2026-06-01T03:00:00Z"]
    assert result["resources"] == []
    human = snapkeep(tmp_path, "plan", "preview", "--file", str(tmp_path / "p.json"), "--from",
                     "2026-03-07T12:00:00Z", "--count", "2")
    assert "2026-03-08 06:30 EDT" in human.stdout


@pytest.fixture(scope="module")
def lab() -> Any:
    server = LabServer(snapshot_seconds=0.0)
    server.start()
    yield server
    server.stop()


def test_plan_preview_explains_the_selection_against_the_lab(tmp_path: Path, lab: LabServer) -> None:
    fleet = seed_fleet(lab.endpoint)
    env = {"SNAPKEEP_AWS_ENDPOINT_URL": lab.endpoint, "SNAPKEEP_AWS_ACCESS_KEY_ID": "testing",
           "SNAPKEEP_AWS_SECRET_ACCESS_KEY": "testing"}
    for account_id, role in fleet.account_roles().items():
        args = ["account", "add", account_id, *[arg for r in fleet.regions for arg in ("--region", r)]]
        if role:
            args += ["--role-arn", role]
        assert snapkeep(tmp_path, *args, env=env).returncode == 0
    prod = dict(SELECTION, SelectionName="prod", ListOfTags=[],
                Resources=["arn:aws:ec2:*:*:instance/*"],
                Conditions={"StringEquals": [{"ConditionKey": "aws:ResourceTag/env", "ConditionValue": "prod"}]})
    out = snapkeep(tmp_path, "plan", "preview", "--file", str(write(tmp_path / "p.json", PLAN)),
                   "--selection", str(write(tmp_path / "s1.json", SELECTION)),
                   "--selection", str(write(tmp_path / "s2.json", prod)), "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    tagged = sorted(f"arn:aws:ec2:{i.region}:{i.account_id}:instance/{i.instance_id}"
                    for i in fleet.instances if i.tags.get("backup") == "daily")
    by_arn = {r["ResourceArn"]: r for r in result["resources"]}
    assert set(tagged) <= set(by_arn)
    for arn in tagged:
        assert any("ListOfTags: backup=daily" in why for why in by_arn[arn]["MatchedBy"])
    both = {d["ResourceArn"] for d in result["duplicates"]}
    prod_tagged = {f"arn:aws:ec2:{i.region}:{i.account_id}:instance/{i.instance_id}" for i in fleet.instances
                   if i.tags.get("backup") == "daily" and i.tags.get("env") == "prod"}
    assert both == prod_tagged and both
