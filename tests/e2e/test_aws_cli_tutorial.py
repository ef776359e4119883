"""The AWS CLI works against Snapkeep unchanged: `snapkeep server --lab` as a real process, driven only by `aws`
commands, following the usual "back up EC2 instances with AWS Backup" tutorial (`aws backup ...` against Snapkeep,
`aws ec2`/`aws kms` against the lab, each with its own credentials).

The AWS CLI (v1) lives in its own virtualenv, made by `./dev setup`: it pins a botocore older than Snapkeep's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

AWS = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin" / "aws"
KEY_ID, SECRET = "SKAKCLITUTORIAL00001", "S3cr3tForTheAwsCliTutorialAdminKey000000"
LAB_KEY = ("testing", "testing")
ROLE = "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
MISSING_INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"


def _require_aws_cli() -> None:
    if AWS.exists():
        return
    message = f"the AWS CLI is not installed at {AWS} (`./dev setup` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cli:
    """Runs `aws` with a clean configuration: only the environment given here, nothing from ~/.aws."""

    def __init__(self, tmp: Path, backup_endpoint: str, lab_endpoint: str) -> None:
        self.tmp, self.backup_endpoint, self.lab_endpoint = tmp, backup_endpoint, lab_endpoint
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        self.base_env = {k: v for k, v in os.environ.items() if k in keep}
        self.base_env.update(AWS_CONFIG_FILE=str(tmp / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-creds"),
                             AWS_DEFAULT_REGION="us-east-1", AWS_DEFAULT_OUTPUT="json", AWS_MAX_ATTEMPTS="1",
                             AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def run(self, *args: str, lab: bool = False,
            key: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        key_id, secret = key or (LAB_KEY if lab else (KEY_ID, SECRET))
        env = dict(self.base_env, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
        endpoint = self.lab_endpoint if lab else self.backup_endpoint
        return subprocess.run([str(AWS), "--endpoint-url", endpoint, *args], env=env, capture_output=True,
                              text=True, timeout=60, cwd=self.tmp)

    def json(self, *args: str, lab: bool = False) -> Any:
        done = self.run(*args, lab=lab)
        assert done.returncode == 0, f"aws {' '.join(args)} -> {done.returncode}\n{done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def text(self, *args: str) -> str:
        done = self.run(*args, "--output", "text")
        assert done.returncode == 0, f"aws {' '.join(args)} -> {done.returncode}\n{done.stderr}"
        return done.stdout.strip()

    def wait_for(self, describe: list[str], final: set[str], timeout: float = 45.0) -> str:
        """Poll `describe --query ... --output text` until it shows a final state; the state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.text(*describe)
            if state in final:
                return state
            assert time.monotonic() < deadline, f"{' '.join(describe)}: still {state}"
            time.sleep(0.5)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    _require_aws_cli()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPKEEP_", "AWS_"))}
    env.update(SNAPKEEP_HOME=str(tmp_path / "home"), SNAPKEEP_POLL_SECONDS="0.2", COLUMNS="200",
               SNAPKEEP_ADMIN_ACCESS_KEY_ID=KEY_ID, SNAPKEEP_ADMIN_SECRET_ACCESS_KEY=SECRET)
    lab_port = _free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "snapkeep.cli", "server", "--lab", "--lab-port", str(lab_port), "--port", "0"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "server running" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        found = re.search(r"AWS Backup API: (http://\S+)", log.read_text())
        assert found, log.read_text()
        lab_endpoint = f"http://127.0.0.1:{lab_port}"
        assert lab_endpoint in log.read_text()
        yield Cli(tmp_path, found.group(1), lab_endpoint)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0, log.read_text()


def _plan(daily_cron: str) -> dict[str, Any]:
    return {"BackupPlanName": "tutorial-plan", "Rules": [
        {"RuleName": "daily", "TargetBackupVaultName": "tutorial-vault", "ScheduleExpression": daily_cron,
         "StartWindowMinutes": 60, "CompletionWindowMinutes": 180, "Lifecycle": {"DeleteAfterDays": 35}},
        {"RuleName": "monthly", "TargetBackupVaultName": "tutorial-encrypted",
         "ScheduleExpression": "cron(0 5 1 * ? *)", "Lifecycle": {"DeleteAfterDays": 365},
         "RecoveryPointTags": {"kind": "monthly"}},
    ]}


def test_aws_cli_backup_tutorial_against_snapkeep(server: Cli, tmp_path: Path) -> None:
    aws = server
    # Vaults: one tagged, one under a customer KMS key made in the lab.
    aws.json("backup", "create-backup-vault", "--backup-vault-name", "tutorial-vault",
             "--backup-vault-tags", "team=ops,env=test")
    key_arn = aws.json("kms", "create-key", "--description", "tutorial backups", lab=True)["KeyMetadata"]["Arn"]
    aws.json("backup", "create-backup-vault", "--backup-vault-name", "tutorial-encrypted",
             "--encryption-key-arn", key_arn)
    described = aws.json("backup", "describe-backup-vault", "--backup-vault-name", "tutorial-encrypted")
    assert described["EncryptionKeyArn"] == key_arn

    # A plan with a daily and a monthly rule, from a file, and a selection by tag.
    (tmp_path / "plan.json").write_text(json.dumps(_plan("cron(0 5 ? * * *)")))
    plan = aws.json("backup", "create-backup-plan", "--backup-plan", "file://plan.json")
    plan_id = plan["BackupPlanId"]
    (tmp_path / "selection.json").write_text(json.dumps({
        "SelectionName": "tutorial-tagged", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "tutorial", "ConditionValue": "yes"}]}))
    selection = aws.json("backup", "create-backup-selection", "--backup-plan-id", plan_id,
                         "--backup-selection", "file://selection.json")
    got = aws.json("backup", "get-backup-selection", "--backup-plan-id", plan_id,
                   "--selection-id", selection["SelectionId"])
    assert got["BackupSelection"]["ListOfTags"][0]["ConditionKey"] == "tutorial"

    # Tag an instance in the lab so the selection picks it.
    instance_id = aws.json("ec2", "describe-instances", "--filters", "Name=tag:Name,Values=web-1",
                           "--query", "Reservations[0].Instances[0].InstanceId", lab=True)
    aws.json("ec2", "create-tags", "--resources", instance_id, "--tags", "Key=tutorial,Value=yes", lab=True)
    tagged = aws.json("ec2", "describe-instances", "--filters", "Name=tag:tutorial,Values=yes",
                      "--query", "Reservations[].Instances[].InstanceId", lab=True)
    assert tagged == [instance_id]
    instance_arn = f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"

    # Update the plan: a new version, the old one still listed.
    (tmp_path / "plan.json").write_text(json.dumps(_plan("cron(30 6 ? * * *)")))
    updated = aws.json("backup", "update-backup-plan", "--backup-plan-id", plan_id, "--backup-plan",
                       "file://plan.json")
    versions = aws.json("backup", "list-backup-plan-versions", "--backup-plan-id", plan_id,
                        "--query", "BackupPlanVersionsList[].VersionId")
    assert versions == [plan["VersionId"], updated["VersionId"]]
    rules = aws.json("backup", "get-backup-plan", "--backup-plan-id", plan_id,
                     "--query", "BackupPlan.Rules[].[RuleName,ScheduleExpression]")
    assert rules == [["daily", "cron(30 6 ? * * *)"], ["monthly", "cron(0 5 1 * ? *)"]]

    # An on-demand backup, waited for with describe-backup-job.
    job_id = aws.json("backup", "start-backup-job", "--backup-vault-name", "tutorial-vault", "--resource-arn",
                      instance_arn, "--iam-role-arn", ROLE)["BackupJobId"]
    state = aws.wait_for(["backup", "describe-backup-job", "--backup-job-id", job_id, "--query", "State"],
                         {"COMPLETED", "FAILED", "ABORTED", "EXPIRED"})
    assert state == "COMPLETED"
    job = aws.json("backup", "describe-backup-job", "--backup-job-id", job_id)
    point_arn = job["RecoveryPointArn"]
    assert job["ResourceArn"] == instance_arn and point_arn.startswith("arn:aws:ec2:us-east-1::image/ami-")

    vaults = aws.json("backup", "list-backup-vaults", "--query", "BackupVaultList[].BackupVaultName", "--output",
                      "json")
    assert sorted(vaults) == ["tutorial-encrypted", "tutorial-vault"]
    by_resource = aws.json("backup", "list-recovery-points-by-resource", "--resource-arn", instance_arn)
    assert [p["RecoveryPointArn"] for p in by_resource["RecoveryPoints"]] == [point_arn]

    # Restore with EC2 metadata: the backed-up configuration, with another instance type.
    metadata = aws.json("backup", "get-recovery-point-restore-metadata", "--backup-vault-name", "tutorial-vault",
                        "--recovery-point-arn", point_arn)["RestoreMetadata"]
    assert metadata["InstanceType"]
    metadata["InstanceType"] = "t3.small"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    restore_id = aws.json("backup", "start-restore-job", "--recovery-point-arn", point_arn, "--iam-role-arn", ROLE,
                          "--metadata", "file://metadata.json", "--resource-type", "EC2")["RestoreJobId"]
    status = aws.wait_for(["backup", "describe-restore-job", "--restore-job-id", restore_id, "--query", "Status"],
                          {"COMPLETED", "FAILED", "ABORTED"})
    assert status == "COMPLETED"
    restored_arn = aws.json("backup", "describe-restore-job", "--restore-job-id", restore_id)["CreatedResourceArn"]

    # The lab has the snapshots of the backup and the restored instance, with the asked instance type.
    snapshots = aws.json("ec2", "describe-snapshots", "--filters", f"Name=tag:snapkeep:backup-job-id,Values={job_id}",
                         "--query", "Snapshots[].State", lab=True)
    volumes = aws.json("ec2", "describe-volumes", "--filters", f"Name=attachment.instance-id,Values={instance_id}",
                       "--query", "length(Volumes)", lab=True)
    assert snapshots == ["completed"] * volumes and volumes >= 1
    restored_id = restored_arn.rsplit("/", 1)[1]
    restored = aws.json("ec2", "describe-instances", "--instance-ids", restored_id,
                        "--query", "Reservations[0].Instances[0].[InstanceType,State.Name]", lab=True)
    assert restored[0] == "t3.small" and restored[1] in ("pending", "running")

    # A job that fails: an instance the lab does not have. Its StatusMessage says why.
    failed_id = aws.json("backup", "start-backup-job", "--backup-vault-name", "tutorial-vault", "--resource-arn",
                         MISSING_INSTANCE, "--iam-role-arn", ROLE)["BackupJobId"]
    state = aws.wait_for(["backup", "describe-backup-job", "--backup-job-id", failed_id, "--query", "State"],
                         {"COMPLETED", "FAILED", "ABORTED", "EXPIRED"})
    assert state == "FAILED"
    failed = aws.json("backup", "list-backup-jobs", "--by-state", "FAILED",
                      "--query", "BackupJobs[].[BackupJobId,StatusMessage]")
    assert [row[0] for row in failed] == [failed_id]
    assert "i-0123456789abcdef0" in failed[0][1], failed
    completed = aws.text("backup", "list-backup-jobs", "--by-state", "COMPLETED", "--query", "BackupJobs[].BackupJobId")
    assert completed == job_id

    # Paging: --max-items hands back a NextToken to continue from; --page-size fetches every page.
    first = aws.json("backup", "list-backup-jobs", "--max-items", "1")
    assert len(first["BackupJobs"]) == 1 and first["NextToken"]
    rest = aws.json("backup", "list-backup-jobs", "--max-items", "1", "--starting-token", first["NextToken"])
    assert len(rest["BackupJobs"]) == 1 and "NextToken" not in rest
    assert {first["BackupJobs"][0]["BackupJobId"], rest["BackupJobs"][0]["BackupJobId"]} == {job_id, failed_id}
    paged = aws.json("backup", "list-backup-jobs", "--page-size", "1", "--query", "BackupJobs[].BackupJobId")
    assert sorted(paged) == sorted([job_id, failed_id])

    # Errors come out as the AWS CLI shows AWS's: exit code 254/255, the code in stderr, nothing on stdout.
    missing = aws.run("backup", "describe-backup-vault", "--backup-vault-name", "no-such-vault")
    assert missing.returncode in (254, 255), missing
    assert "ResourceNotFoundException" in missing.stderr and missing.stdout == ""
    bad_key = aws.run("backup", "list-backup-vaults", key=LAB_KEY)  # the lab's key is not a Snapkeep key
    assert bad_key.returncode in (254, 255) and "UnrecognizedClientException" in bad_key.stderr, bad_key
    assert sorted(aws.json("backup", "list-backup-vaults", "--query", "BackupVaultList[].BackupVaultName")) == [
        "tutorial-encrypted", "tutorial-vault"]
