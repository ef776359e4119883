"""The `snapkeep` command line as a user runs it: real processes, a real catalog file, the lab over HTTP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from snapkeep.app import Snapkeep
from snapkeep.config import Settings
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.lab_flow import fresh_fleet

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


def test_plan_preview_explains_the_selection_against_the_lab(tmp_path: Path, lab: LabServer) -> None:
    fleet = fresh_fleet(lab.endpoint)
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


def one_line(text: str) -> str:
    """Rich wraps long error lines; compare them with the wrapping undone."""
    return " ".join(text.split())


def test_bad_input_and_bad_settings_exit_2_with_a_readable_message(tmp_path: Path) -> None:
    plan = str(write(tmp_path / "p.json", PLAN))
    bad_from = snapkeep(tmp_path, "plan", "preview", "--file", plan, "--from", "garbage")
    assert bad_from.returncode == 2, bad_from.stderr
    assert "--from: 'garbage' is not an ISO-8601 time" in one_line(bad_from.stderr)
    assert "Traceback" not in bad_from.stderr

    for env, says in (
        ({"SNAPKEEP_LEASE_SECONDS": "x"}, "SNAPKEEP_LEASE_SECONDS: 'x' is not a number of seconds"),
        ({"SNAPKEEP_LEASE_SECONDS": "3"}, "SNAPKEEP_LEASE_SECONDS: must be at least 5 seconds"),
        ({"SNAPKEEP_LEASE_SECONDS": "nan"}, "SNAPKEEP_LEASE_SECONDS: 'nan' is not a number of seconds"),
        ({"SNAPKEEP_POLL_SECONDS": "0"}, "SNAPKEEP_POLL_SECONDS: must be above 0 seconds"),
        ({"SNAPKEEP_WORKER_THREADS": "two"}, "SNAPKEEP_WORKER_THREADS: 'two' is not a whole number"),
        ({"SNAPKEEP_WORKER_THREADS": "0"}, "SNAPKEEP_WORKER_THREADS: must be at least 1"),
        ({"SNAPKEEP_DATABASE_URL": "garbage"}, "SNAPKEEP_DATABASE_URL: 'garbage' is not a database URL"),
    ):
        out = snapkeep(tmp_path, "vault", "list", env=env)
        assert out.returncode == 2, (env, out.stderr)
        assert "InvalidParameterValueException" in out.stderr and says in one_line(out.stderr), out.stderr
        assert "Traceback" not in out.stderr
    server = snapkeep(tmp_path, "server", "--no-workers", env={"SNAPKEEP_WORKER_THREADS": "-1"})
    assert server.returncode == 2 and "SNAPKEEP_WORKER_THREADS" in server.stderr

    state = snapkeep(tmp_path, "job", "list", "--state", "DONE")
    assert state.returncode == 2 and "--state: 'DONE' is not one of" in one_line(state.stderr)


def test_settings_default_lease_and_ranges() -> None:
    assert Settings.from_env({}).lease_seconds == 60.0
    assert Settings.from_env({"SNAPKEEP_LEASE_SECONDS": "5", "SNAPKEEP_POLL_SECONDS": "0.1",
                              "SNAPKEEP_WORKER_THREADS": "1"}).lease_seconds == 5.0


def test_unreachable_database_is_service_unavailable_and_hides_its_password(tmp_path: Path) -> None:
    for url, shown in (("postgresql://nobody@127.0.0.1:1/x", "postgresql://nobody@127.0.0.1:1/x"),
                       ("postgresql://nobody:s3cret@127.0.0.1:1/x", "postgresql://nobody:***@127.0.0.1:1/x")):
        out = snapkeep(tmp_path, "vault", "list", env={"SNAPKEEP_DATABASE_URL": url})
        assert out.returncode == 8, out.stderr
        assert "ServiceUnavailableException" in out.stderr and shown in one_line(out.stderr), out.stderr
        assert "s3cret" not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_a_constraint_the_catalog_enforces_is_a_conflict(tmp_path: Path) -> None:
    assert snapkeep(tmp_path, "account", "add", "123456789012", "--region", "us-east-1").returncode == 0
    # Stand-in for a concurrent writer: the catalog refuses the update the way a broken constraint does.
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        db.execute("CREATE TRIGGER busy BEFORE UPDATE ON protected_accounts "
                   "BEGIN SELECT RAISE(ABORT, 'changed by another request'); END")
    out = snapkeep(tmp_path, "account", "add", "123456789012", "--region", "eu-west-1")
    assert out.returncode == 4, out.stderr
    assert "ConflictException" in out.stderr and "changed by another request" in one_line(out.stderr)
    assert "Traceback" not in out.stderr


def test_job_start_passes_every_option_and_refuses_zero_days(tmp_path: Path) -> None:
    arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    assert snapkeep(tmp_path, "vault", "create", "main").returncode == 0
    assert snapkeep(tmp_path, "account", "add", "123456789012", "--region", "us-east-1").returncode == 0
    zero = snapkeep(tmp_path, "job", "start", arn, "--vault", "main", "--delete-after-days", "0")
    assert zero.returncode == 2 and "DeleteAfterDays" in zero.stderr, zero.stderr
    short = snapkeep(tmp_path, "job", "start", arn, "--vault", "main", "--start-window-minutes", "5")
    assert short.returncode == 2 and "StartWindowMinutes" in short.stderr, short.stderr

    args = ["job", "start", arn, "--vault", "main", "--start-window-minutes", "60", "--complete-window-minutes",
            "240", "--move-to-cold-storage-after-days", "7", "--delete-after-days", "97", "--tag", "team=ops",
            "--tag", "ticket=OPS-1", "--idempotency-token", "nightly-1", "--json"]
    first = snapkeep(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    again = snapkeep(tmp_path, *args)
    job_id = json.loads(first.stdout)["BackupJobId"]
    assert json.loads(again.stdout)["BackupJobId"] == job_id
    described = json.loads(snapkeep(tmp_path, "job", "describe", job_id, "--json").stdout)
    created = datetime.fromisoformat(described["CreationDate"])
    assert datetime.fromisoformat(described["StartBy"]) - created == timedelta(minutes=60)
    sk = Snapkeep.open(Settings.from_env({"SNAPKEEP_HOME": str(tmp_path)}))
    try:
        with sk.store.transaction() as conn:
            job = sk.store.get_job(conn, job_id)
    finally:
        sk.close()
    assert job["lifecycle"] == {"MoveToColdStorageAfterDays": 7, "DeleteAfterDays": 97}
    assert job["recovery_point_tags"] == {"team": "ops", "ticket": "OPS-1"}
    assert job["complete_by"] - job["start_by"] == timedelta(minutes=180)

    # Ctrl-C while waiting (no server runs this job) stops the command; it is not reported as a Snapkeep error.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    waiting = subprocess.Popen([sys.executable, "-m", "snapkeep.cli", "job", "wait", job_id, "--timeout", "60"],
                               env=dict(env, SNAPKEEP_HOME=str(tmp_path)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode not in (0, 2) and "Error (" not in err, (waiting.returncode, err)


def test_plan_get_and_selection_get_print_tables_or_json(tmp_path: Path) -> None:
    assert snapkeep(tmp_path, "vault", "create", "main").returncode == 0
    plan_id = json.loads(snapkeep(tmp_path, "plan", "create", "--file", str(write(tmp_path / "p.json", PLAN)),
                                  "--json").stdout)["BackupPlanId"]
    human = snapkeep(tmp_path, "plan", "get", plan_id)
    assert human.returncode == 0, human.stderr
    daily = next(line for line in human.stdout.splitlines() if "daily" in line)
    for cell in ("main", "cron(30 6 ? * * *)", "America/New_York", "60", "180", "keep forever"):
        assert cell in daily, daily
    monthly = next(line for line in human.stdout.splitlines() if "monthly" in line)
    assert "cold after 30 d, delete after 365 d" in monthly and "cron(0 3 1 * ? *)" in monthly
    as_json = json.loads(snapkeep(tmp_path, "plan", "get", plan_id, "--json").stdout)
    assert as_json["BackupPlanId"] == plan_id and as_json["BackupPlan"]["BackupPlanName"] == "cli-plan"

    selection_id = json.loads(snapkeep(tmp_path, "selection", "create", plan_id, "--file",
                                       str(write(tmp_path / "s.json", SELECTION)), "--json").stdout)["SelectionId"]
    table = snapkeep(tmp_path, "selection", "get", plan_id, selection_id)
    assert table.returncode == 0, table.stderr
    assert "backup=daily (STRINGEQUALS)" in table.stdout and SELECTION["IamRoleArn"] in table.stdout
    selection = json.loads(snapkeep(tmp_path, "selection", "get", plan_id, selection_id, "--json").stdout)
    assert selection["SelectionId"] == selection_id and selection["BackupSelection"]["SelectionName"] == "tagged"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real `snapkeep server --lab` (its own lab, so no other test's fleet) on a home these tests share."""
    home = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    env.update(SNAPKEEP_HOME=str(home), SNAPKEEP_POLL_SECONDS="0.3")
    log = home / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "snapkeep.cli", "server", "--lab", "--port", "0"], env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "server running" not in log.read_text():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        LabHarness(lab_endpoint(home)).set_snapshot_seconds(0.0)
        assert snapkeep(home, "vault", "create", "main").returncode == 0
        yield home
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def lab_endpoint(home: Path) -> str:
    return str(json.loads((home / "lab.json").read_text())["Endpoint"])


def lab_ec2(home: Path) -> Any:
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=lab_endpoint(home),
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_waiting_on_a_failed_backup_exits_1_after_printing_it(served: Path) -> None:
    arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-0000000000000dead"
    out = snapkeep(served, "job", "start", arn, "--vault", "main", "--wait", "--timeout", "60", "--json")
    assert out.returncode == 1, out.stderr
    job = json.loads(out.stdout)
    assert job["State"] == "FAILED" and "i-0000000000000dead" in job["StatusMessage"]
    assert f"Backup job {job['BackupJobId']} ended FAILED: {job['StatusMessage']}" in one_line(out.stderr)
    waited = snapkeep(served, "job", "wait", job["BackupJobId"])
    assert waited.returncode == 1 and "ended FAILED" in waited.stderr
    assert job["BackupJobId"] in waited.stdout and "FAILED" in waited.stdout


def test_restore_defaults_to_no_tags_takes_a_metadata_file_and_fails_loudly(served: Path) -> None:
    ec2 = lab_ec2(served)
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["db-1"]}])["Reservations"]
    instance_id = reservations[0]["Instances"][0]["InstanceId"]
    arn = f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"
    backup = snapkeep(served, "job", "start", arn, "--vault", "main", "--delete-after-days", "30", "--wait",
                      "--timeout", "120", "--json")
    assert backup.returncode == 0, backup.stderr
    rp = json.loads(backup.stdout)["RecoveryPointArn"]

    point = json.loads(snapkeep(served, "recovery-point", "describe", "main", rp, "--json").stdout)
    assert point["RecoveryPointArn"] == rp and point["Lifecycle"] == {"DeleteAfterDays": 30}
    human = snapkeep(served, "recovery-point", "describe", "main", rp)
    assert human.returncode == 0, human.stderr
    for volume in point["Volumes"]:
        row = next(line for line in human.stdout.splitlines() if volume["SnapshotId"] in line)
        assert volume["DeviceName"] in row and volume["VolumeId"] in row and str(volume["VolumeSize"]) in row
    assert "delete after 30 d" in human.stdout

    meta = write(served / "meta.json", {"InstanceType": "m5.large"})
    restore = snapkeep(served, "restore", "start", rp, "--metadata-file", str(meta), "--wait", "--json")
    assert restore.returncode == 0, restore.stderr
    restored = json.loads(restore.stdout)
    assert restored["Status"] == "COMPLETED", restored
    new_id = restored["CreatedResourceArn"].rsplit("/", 1)[-1]
    inst = ec2.describe_instances(InstanceIds=[new_id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    assert inst["InstanceType"] == "m5.large"
    assert "Name" not in tags and "backup" not in tags, tags  # AWS's default: the source's tags are not copied
    copied = json.loads(snapkeep(served, "restore", "start", rp, "--copy-tags", "--metadata-file", str(meta),
                                 "--metadata", "InstanceType=t3.micro", "--wait", "--json").stdout)
    inst = ec2.describe_instances(InstanceIds=[copied["CreatedResourceArn"].rsplit("/", 1)[-1]])
    inst = inst["Reservations"][0]["Instances"][0]
    assert {t["Key"]: t["Value"] for t in inst["Tags"]}["Name"] == "db-1" and inst["InstanceType"] == "t3.micro"
    not_object = snapkeep(served, "restore", "start", rp, "--metadata-file", str(write(served / "l.json", [1])))
    assert not_object.returncode == 2 and "must hold a JSON object" in one_line(not_object.stderr)

    # Take away what the recovery point stands on: restoring one of its volumes now fails in the workers.
    ec2.deregister_image(ImageId=rp.rsplit("/", 1)[-1])
    volume = point["Volumes"][0]
    ec2.delete_snapshot(SnapshotId=volume["SnapshotId"])
    failed = snapkeep(served, "restore", "start", rp, "--resource-type", "EBS", "--metadata",
                      "availabilityZone=us-east-1a", "--metadata", f"DeviceName={volume['DeviceName']}", "--wait",
                      "--timeout", "60")
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout and "ended FAILED" in failed.stderr
    job_id = next(line.split()[1] for line in failed.stdout.splitlines() if "FAILED" in line)
    waited = snapkeep(served, "restore", "wait", job_id, "--json")
    assert waited.returncode == 1 and json.loads(waited.stdout)["Status"] == "FAILED"
    assert f"Restore job {job_id} ended FAILED" in waited.stderr


def test_governance_commands_work_on_the_local_catalog(tmp_path: Path) -> None:
    assert snapkeep(tmp_path, "vault", "create", "main").returncode == 0
    locked = snapkeep(tmp_path, "vault", "lock", "put", "main", "--min-days", "7", "--changeable-for-days", "3")
    assert locked.returncode == 0, locked.stderr
    assert "compliance mode" in locked.stdout
    vault = json.loads(snapkeep(tmp_path, "vault", "describe", "main", "--json").stdout)
    assert vault["Locked"] is True and vault["MinRetentionDays"] == 7 and "LockDate" in vault
    no_min = snapkeep(tmp_path, "vault", "lock", "put", "main")
    assert no_min.returncode == 2 and "--min-days" in no_min.stderr

    arn = vault["BackupVaultArn"]
    assert snapkeep(tmp_path, "tag", "add", arn, "team=ops", "cost-centre=42").returncode == 0
    assert json.loads(snapkeep(tmp_path, "tag", "list", arn, "--json").stdout) == {"team": "ops",
                                                                                  "cost-centre": "42"}
    table = snapkeep(tmp_path, "tag", "list", arn)
    assert next(line for line in table.stdout.splitlines() if "cost-centre" in line).count("42") == 1

    hold = snapkeep(tmp_path, "legal-hold", "create", "--title", "Audit", "--description", "yearly audit",
                    "--vault", "main", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-31T00:00:00Z", "--json")
    assert hold.returncode == 0, hold.stderr
    created = json.loads(hold.stdout)
    assert created["RecoveryPointSelection"]["DateRange"] == {"FromDate": "2026-01-01T00:00:00Z",
                                                             "ToDate": "2026-01-31T00:00:00Z"}
    listed = snapkeep(tmp_path, "legal-hold", "list")
    assert created["LegalHoldId"][:20] in listed.stdout and "Audit" in listed.stdout
    half = snapkeep(tmp_path, "legal-hold", "create", "--title", "x", "--description", "y", "--to",
                    "2026-01-31T00:00:00Z")
    assert half.returncode == 2 and "--from: is required with --to" in one_line(half.stderr)
    assert len(json.loads(snapkeep(tmp_path, "legal-hold", "list", "--json").stdout)) == 1
