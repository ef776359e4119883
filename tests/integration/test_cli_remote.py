"""The CLI with --endpoint: the same commands against a live Snapkeep server over the AWS Backup API, giving what
the same commands give on the local catalog (output, errors, exit codes). The end-to-end backup and restore through
the installed command runs on SQLite and PostgreSQL; the comparisons of both modes, which read the same catalog
either way, on SQLite (`ON_SQLITE_ONLY`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from typer.testing import CliRunner

from snapkeep.api.server import ApiServer
from snapkeep.app import Snapkeep
from snapkeep.cli.backend import LocalBackend, RemoteBackend, Target, service_model
from snapkeep.cli.main import app
from snapkeep.domain.errors import SnapkeepError
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, tagged_instances

ADMIN_ID, ADMIN_SECRET = "SKAKADMIN0000000CLI1", "S3cr3tForTheAdminKeyOfTheCliTests0000000"
SNAPKEEP_BIN = Path(sys.executable).parent / "snapkeep"
PLAN = {"BackupPlanName": "remote-plan", "Rules": [
    {"RuleName": "daily", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(30 6 ? * * *)",
     "StartWindowMinutes": 60, "Lifecycle": {"DeleteAfterDays": 35}}]}
SELECTION = {"SelectionName": "tagged", "IamRoleArn": ROLE,
             "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]}


@pytest.fixture
def endpoint(sk: Snapkeep) -> Iterator[str]:
    env = {"SNAPKEEP_ADMIN_ACCESS_KEY_ID": ADMIN_ID, "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET}
    with ApiServer(sk.api(env)) as server:
        yield server.endpoint


def remote(endpoint: str, key_id: str = ADMIN_ID, secret: str = ADMIN_SECRET) -> dict[str, str | None]:
    return {"SNAPKEEP_ENDPOINT": endpoint, "SNAPKEEP_ACCESS_KEY_ID": key_id, "SNAPKEEP_SECRET_ACCESS_KEY": secret,
            "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "SNAPKEEP_REGION": None}


def local(sk: Snapkeep) -> dict[str, str | None]:
    """The environment that opens the same catalog (and lab) as `sk`, without --endpoint."""
    settings = sk.settings
    return {"SNAPKEEP_ENDPOINT": None, "SNAPKEEP_HOME": str(settings.home),
            "SNAPKEEP_DATABASE_URL": settings.database_url, "SNAPKEEP_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
            "SNAPKEEP_AWS_ACCESS_KEY_ID": "testing", "SNAPKEEP_AWS_SECRET_ACCESS_KEY": "testing"}


def cli(env: Mapping[str, str | None], *args: str, obj: Any = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env}, obj=obj)


def both(sk: Snapkeep, endpoint: str, *args: str) -> tuple[Any, Any]:
    """The same command in local and in remote mode."""
    return cli(local(sk), *args), cli(remote(endpoint), *args)


def one_line(text: str) -> str:
    return " ".join(text.split())


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


# -- end to end, as a user runs it ------------------------------------------------------------------------
def run_remote(endpoint: str, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPKEEP_", "AWS_"))}
    env.update({"SNAPKEEP_HOME": str(home), "COLUMNS": "200", **{k: v for k, v in remote(endpoint).items() if v}},
               **extra)
    return subprocess.run([str(SNAPKEEP_BIN), *args], env=env, capture_output=True, text=True, timeout=180)


def test_backup_and_restore_end_to_end_through_the_installed_command(sk: Snapkeep, endpoint: str,
                                                                      tmp_path: Path) -> None:
    home = tmp_path / "client-home"  # the client's own home: nothing may be opened or created there
    pool = sk.workers(1, scheduler_enabled=False)
    pool.start()
    try:
        created = run_remote(endpoint, home, "vault", "create", "remote-vault", "--tag", "team=ops", "--json")
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["BackupVaultArn"].endswith(":backup-vault:remote-vault")
        assert "remote-vault" in {v["BackupVaultName"] for v in sk.service.list_backup_vaults()}

        target = next(arn for arn in tagged_instances(sk, "backup", "daily") if ":us-east-1:123456789012:" in arn)
        backup = run_remote(endpoint, home, "job", "start", target, "--vault", "remote-vault", "--iam-role-arn",
                            ROLE, "--delete-after-days", "30", "--wait", "--timeout", "120", "--json")
        assert backup.returncode == 0, backup.stderr
        job = json.loads(backup.stdout)
        assert job["State"] == "COMPLETED" and job["ResourceArn"] == target, job
        assert sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"] == job["RecoveryPointArn"]

        points = run_remote(endpoint, home, "recovery-point", "list", "--vault", "remote-vault", "--json")
        assert points.returncode == 0, points.stderr
        listed = json.loads(points.stdout)
        assert [p["RecoveryPointArn"] for p in listed] == [job["RecoveryPointArn"]]
        assert listed[0]["ResourceArn"] == target and listed[0]["Lifecycle"] == {"DeleteAfterDays": 30}
        by_resource = json.loads(run_remote(endpoint, home, "recovery-point", "list", "--resource-arn", target,
                                            "--json").stdout)
        assert [p["RecoveryPointArn"] for p in by_resource] == [job["RecoveryPointArn"]]

        restore = run_remote(endpoint, home, "restore", "start", job["RecoveryPointArn"], "--metadata",
                             "InstanceType=t3.micro", "--wait", "--timeout", "120", "--json")
        assert restore.returncode == 0, restore.stderr
        restored = json.loads(restore.stdout)
        assert restored["Status"] == "COMPLETED", restored
        instance_id = restored["CreatedResourceArn"].rsplit("/", 1)[-1]
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=sk.settings.aws_endpoint_url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert instance["InstanceType"] == "t3.micro"
        table = run_remote(endpoint, home, "restore", "list")
        assert restored["RestoreJobId"] in table.stdout and "COMPLETED" in table.stdout
    finally:
        pool.stop()
    assert not home.exists(), "remote mode must not open a local catalog"


# -- the same answers in both modes ------------------------------------------------------------------------
@ON_SQLITE_ONLY
def test_local_and_remote_modes_print_the_same_json(sk: Snapkeep, endpoint: str, tmp_path: Path) -> None:
    made = cli(remote(endpoint), "vault", "create", "parity", "--tag", "team=ops", "--json")
    assert made.exit_code == 0, made.stderr
    plan = write(tmp_path / "plan.json", PLAN)
    plan_id = json.loads(cli(local(sk), "plan", "create", "--file", str(plan), "--json").stdout)["BackupPlanId"]
    selection = write(tmp_path / "selection.json", SELECTION)
    selection_id = json.loads(cli(remote(endpoint), "selection", "create", plan_id, "--file", str(selection),
                                  "--json").stdout)["SelectionId"]
    target = tagged_instances(sk, "backup", "daily")[0]
    job_id = json.loads(cli(remote(endpoint), "job", "start", target, "--vault", "parity", "--iam-role-arn", ROLE,
                            "--json").stdout)["BackupJobId"]
    drain(sk)
    point = sk.service.describe_backup_job(job_id)["RecoveryPointArn"]
    restore = cli(local(sk), "restore", "start", point, "--metadata", "InstanceType=t3.micro", "--json")
    assert restore.exit_code == 0, restore.stderr
    drain(sk)

    for args in (
        ("vault", "list"), ("vault", "describe", "parity"), ("plan", "list"), ("plan", "get", plan_id),
        ("plan", "versions", plan_id), ("selection", "list", plan_id), ("selection", "get", plan_id, selection_id),
        ("job", "list"), ("job", "describe", job_id), ("job", "list", "--state", "completed", "--vault", "parity"),
        ("recovery-point", "list"), ("recovery-point", "list", "--resource-arn", target), ("restore", "list"),
        ("restore", "describe", json.loads(restore.stdout)["RestoreJobId"]),
    ):
        here, there = both(sk, endpoint, *args, "--json")
        assert here.exit_code == 0 and there.exit_code == 0, (args, here.stderr, there.stderr)
        assert here.stdout == there.stdout and json.loads(there.stdout), args
        human_here, human_there = both(sk, endpoint, *args)
        assert human_here.stdout == human_there.stdout, args

    vault = json.loads(cli(remote(endpoint), "vault", "describe", "parity", "--json").stdout)
    assert vault["NumberOfRecoveryPoints"] == 1 and vault["BackupVaultArn"].endswith(":backup-vault:parity")
    jobs = json.loads(cli(remote(endpoint), "job", "list", "--state", "COMPLETED", "--json").stdout)
    assert [j["BackupJobId"] for j in jobs] == [job_id]
    rule = json.loads(cli(remote(endpoint), "plan", "get", plan_id, "--json").stdout)["BackupPlan"]["Rules"][0]
    assert {k: rule[k] for k in PLAN["Rules"][0]} == PLAN["Rules"][0]  # type: ignore[index]

    # DescribeRecoveryPoint: the same AWS members; the catalog's volumes are a local-only addition.
    here, there = both(sk, endpoint, "recovery-point", "describe", "parity", point, "--json")
    local_point, remote_point = json.loads(here.stdout), json.loads(there.stdout)
    volumes = local_point.pop("Volumes")
    assert local_point == remote_point and remote_point["RecoveryPointArn"] == point
    assert volumes and all(v["SnapshotId"].startswith("snap-") for v in volumes)


@ON_SQLITE_ONLY
def test_writes_and_their_errors_are_the_same_in_both_modes(sk: Snapkeep, endpoint: str, tmp_path: Path) -> None:
    for args, code, says in (
        (("vault", "describe", "nope"), 3, "ResourceNotFoundException"),
        (("vault", "create", "a"), 2, "BackupVaultName"),
        (("vault", "create", "main"), 4, "AlreadyExistsException"),
        (("job", "describe", "NO-SUCH-JOB"), 3, "ResourceNotFoundException"),
        (("job", "list", "--state", "DONE"), 2, "--state: 'DONE' is not one of"),
        (("plan", "create", "--file", str(write(tmp_path / "unknown.json", dict(PLAN, Colour="red")))), 2,
         'Unknown parameter in BackupPlan: "Colour"'),
        (("plan", "create", "--file", str(write(tmp_path / "no-vault.json", {"BackupPlanName": "p", "Rules": [
            {"RuleName": "r", "ScheduleExpression": "cron(0 5 ? * * *)"}]}))), 2,
         'Missing required parameter in BackupPlan.Rules[0]: "TargetBackupVaultName"'),
        (("restore", "start", "arn:aws:ec2:us-east-1::image/ami-00000000000000000", "--metadata",
          "InstanceType=t3.micro"), 3, "ResourceNotFoundException"),
    ):
        here, there = both(sk, endpoint, *args)
        assert (here.exit_code, there.exit_code) == (code, code), (args, here.stderr, there.stderr)
        assert says in one_line(there.stderr), (args, there.stderr)
        assert here.stderr == there.stderr, args
        assert "Traceback" not in there.stderr
    missing = cli(remote(endpoint), "plan", "create", "--file", str(tmp_path / "no-vault.json"))
    assert "MissingParameterValueException" in missing.stderr
    assert "[BackupPlan.Rules[0].TargetBackupVaultName]" in one_line(missing.stderr)
    assert {v["BackupVaultName"] for v in sk.service.list_backup_vaults()} == {"main"}
    assert sk.service.list_backup_plans() == [] and sk.service.list_restore_jobs() == []


@ON_SQLITE_ONLY
def test_an_operation_snapkeep_does_not_serve_fails_alike_in_both_modes(sk: Snapkeep, endpoint: str) -> None:
    for api in (LocalBackend(sk), RemoteBackend(endpoint, ADMIN_ID, ADMIN_SECRET, "us-east-1")):
        with pytest.raises(SnapkeepError) as refused:
            api.call("ListFrameworks", {})
        assert (refused.value.code, refused.value.exit_code) == ("InvalidRequestException", 2), api.where
        assert "does not support ListFrameworks" in refused.value.message


# -- remote-only failures ----------------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@ON_SQLITE_ONLY
def test_keys_roles_and_an_unreachable_server(sk: Snapkeep, endpoint: str) -> None:
    wrong = cli(remote(endpoint, secret="not-the-secret"), "vault", "create", "by-wrong-secret")
    assert wrong.exit_code == 6, wrong.stderr
    assert "InvalidSignatureException" in wrong.stderr and "was not accepted" in one_line(wrong.stderr)
    unknown = cli(remote(endpoint, key_id="SKAKNOBODY0000000000"), "vault", "list")
    assert unknown.exit_code == 6 and "UnrecognizedClientException" in unknown.stderr

    viewer_id, viewer_secret = sk.keys().create_key("vera", "viewer", datetime.now(UTC))
    viewer = remote(endpoint, viewer_id, viewer_secret)
    assert json.loads(cli(viewer, "vault", "list", "--json").stdout)[0]["BackupVaultName"] == "main"
    denied = cli(viewer, "vault", "create", "by-viewer")
    assert denied.exit_code == 6 and "AccessDeniedException" in denied.stderr
    assert "backup:CreateBackupVault" in one_line(denied.stderr)
    assert {v["BackupVaultName"] for v in sk.service.list_backup_vaults()} == {"main"}

    no_secret = cli({**remote(endpoint), "SNAPKEEP_SECRET_ACCESS_KEY": None}, "vault", "list")
    assert no_secret.exit_code == 2 and "SNAPKEEP_SECRET_ACCESS_KEY" in one_line(no_secret.stderr)
    aws_pair = {**remote(endpoint), "SNAPKEEP_ACCESS_KEY_ID": None, "SNAPKEEP_SECRET_ACCESS_KEY": None,
                "AWS_ACCESS_KEY_ID": ADMIN_ID, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET}
    assert json.loads(cli(aws_pair, "vault", "list", "--json").stdout)[0]["BackupVaultName"] == "main"
    by_option = cli({**remote(endpoint), "SNAPKEEP_ACCESS_KEY_ID": None}, "--access-key-id", viewer_id, "vault",
                    "create", "by-option")  # the admin secret does not sign for the viewer's key id
    assert by_option.exit_code == 6 and "InvalidSignatureException" in by_option.stderr
    wrong_region = cli(remote(endpoint), "--region", "eu-west-1", "vault", "list")
    assert wrong_region.exit_code == 6 and "InvalidSignatureException" in wrong_region.stderr
    assert "scoped to a valid region, not 'eu-west-1'" in one_line(wrong_region.stderr)

    down = f"http://127.0.0.1:{closed_port()}"
    gone = cli(remote(down), "vault", "list")
    assert gone.exit_code == 8, gone.stderr
    assert f"cannot reach the Snapkeep server at {down}" in one_line(gone.stderr)
    assert "Traceback" not in gone.stderr
    not_a_url = cli(remote("127.0.0.1:8480"), "vault", "list")
    assert not_a_url.exit_code == 2 and "--endpoint" in not_a_url.stderr


def test_a_server_that_is_down_is_reported_by_the_installed_command(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    out = run_remote(down, tmp_path / "home", "job", "list")
    assert out.returncode == 8, out.stderr
    assert f"cannot reach the Snapkeep server at {down}" in one_line(out.stderr) and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [
    ("account", "add", "123456789012", "--region", "us-east-1"),
    ("account", "list"),
    ("user", "create", "someone"),
    ("server", "--no-workers"),
])
def test_local_only_commands_refuse_an_endpoint(args: tuple[str, ...], tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    out = cli({**remote(endpoint), "SNAPKEEP_HOME": str(tmp_path)}, *args)
    assert out.exit_code == 2, out.stderr
    assert f"`snapkeep {' '.join(args[:2]) if args[0] != 'server' else 'server'}`" in one_line(out.stderr)
    assert "does not work with --endpoint" in one_line(out.stderr)
    assert not (tmp_path / "catalog.db").exists()


def test_plan_preview_needs_no_server_but_its_selections_need_the_local_inventory(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    plan = str(write(tmp_path / "plan.json", PLAN))
    times = cli(remote(endpoint), "plan", "preview", "--file", plan, "--from", "2026-03-07T12:00:00Z", "--json")
    assert times.exit_code == 0, times.stderr
    assert json.loads(times.stdout)["rules"][0]["NextRuns"][0] == "2026-03-08T06:30:00Z"
    picks = cli(remote(endpoint), "plan", "preview", "--file", plan, "--selection",
                str(write(tmp_path / "s.json", SELECTION)))
    assert picks.exit_code == 2 and "does not work with --endpoint" in one_line(picks.stderr)


# -- governance commands: the AWS request each builds --------------------------------------------------------
class Recorder:
    """A backend that keeps each call and answers from a table (nothing served)."""

    where = "a recorder"

    def __init__(self, answers: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers = dict(answers or {})

    def call(self, operation_name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((operation_name, dict(params)))
        return self.answers.get(operation_name, {})

    def recovery_point_volumes(self, vault: str, recovery_point_arn: str) -> list[dict[str, Any]] | None:
        return None

    def close(self) -> None:
        pass


RP = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
VAULT_ARN = "arn:aws:backup:us-east-1:123456789012:backup-vault:main"
POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*",
                                                  "Action": "backup:DeleteRecoveryPoint", "Resource": "*"}]}


def governance_cases(policy_file: Path) -> list[tuple[list[str], str, dict[str, Any], str, str]]:
    """(command, operation, exact input, HTTP method, path) for every governance command."""
    return [
        (["vault", "lock", "put", "main", "--min-days", "7", "--max-days", "30", "--changeable-for-days", "3"],
         "PutBackupVaultLockConfiguration",
         {"BackupVaultName": "main", "MinRetentionDays": 7, "MaxRetentionDays": 30, "ChangeableForDays": 3},
         "PUT", "/backup-vaults/main/vault-lock"),
        (["vault", "lock", "put", "main", "--min-days", "1"], "PutBackupVaultLockConfiguration",
         {"BackupVaultName": "main", "MinRetentionDays": 1}, "PUT", "/backup-vaults/main/vault-lock"),
        (["vault", "lock", "delete", "main"], "DeleteBackupVaultLockConfiguration", {"BackupVaultName": "main"},
         "DELETE", "/backup-vaults/main/vault-lock"),
        (["vault", "policy", "put", "main", "--file", str(policy_file)], "PutBackupVaultAccessPolicy",
         {"BackupVaultName": "main", "Policy": policy_file.read_text()}, "PUT", "/backup-vaults/main/access-policy"),
        (["vault", "policy", "get", "main"], "GetBackupVaultAccessPolicy", {"BackupVaultName": "main"}, "GET",
         "/backup-vaults/main/access-policy"),
        (["vault", "policy", "delete", "main"], "DeleteBackupVaultAccessPolicy", {"BackupVaultName": "main"},
         "DELETE", "/backup-vaults/main/access-policy"),
        (["vault", "notifications", "put", "main", "--topic", "arn:aws:sns:us-east-1:123456789012:backups",
          "--events", "BACKUP_JOB_COMPLETED,RESTORE_JOB_COMPLETED", "--events", "BACKUP_JOB_FAILED"],
         "PutBackupVaultNotifications",
         {"BackupVaultName": "main", "SNSTopicArn": "arn:aws:sns:us-east-1:123456789012:backups",
          "BackupVaultEvents": ["BACKUP_JOB_COMPLETED", "RESTORE_JOB_COMPLETED", "BACKUP_JOB_FAILED"]},
         "PUT", "/backup-vaults/main/notification-configuration"),
        (["vault", "notifications", "get", "main"], "GetBackupVaultNotifications", {"BackupVaultName": "main"},
         "GET", "/backup-vaults/main/notification-configuration"),
        (["vault", "notifications", "delete", "main"], "DeleteBackupVaultNotifications",
         {"BackupVaultName": "main"}, "DELETE", "/backup-vaults/main/notification-configuration"),
        (["legal-hold", "create", "--title", "Case 42", "--description", "litigation", "--vault", "main", "--vault",
          "other", "--resource", "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0", "--from",
          "2026-01-01T00:00:00Z", "--to", "2026-02-01T12:00:00+01:00", "--tag", "case=42", "--idempotency-token",
          "hold-42"],
         "CreateLegalHold",
         {"Title": "Case 42", "Description": "litigation", "IdempotencyToken": "hold-42", "Tags": {"case": "42"},
          "RecoveryPointSelection": {
              "VaultNames": ["main", "other"],
              "ResourceIdentifiers": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"],
              "DateRange": {"FromDate": datetime(2026, 1, 1, tzinfo=UTC),
                            "ToDate": datetime(2026, 2, 1, 11, tzinfo=UTC)}}},
         "POST", "/legal-holds/"),
        (["legal-hold", "create", "--title", "All", "--description", "everything"], "CreateLegalHold",
         {"Title": "All", "Description": "everything"}, "POST", "/legal-holds/"),
        (["legal-hold", "list"], "ListLegalHolds", {}, "GET", "/legal-holds/"),
        (["legal-hold", "get", "hold-1"], "GetLegalHold", {"LegalHoldId": "hold-1"}, "GET", "/legal-holds/hold-1/"),
        (["legal-hold", "cancel", "hold-1", "--description", "settled", "--retain-record-days", "30"],
         "CancelLegalHold", {"LegalHoldId": "hold-1", "CancelDescription": "settled", "RetainRecordInDays": 30},
         "DELETE", "/legal-holds/hold-1"),
        (["legal-hold", "recovery-points", "hold-1"], "ListRecoveryPointsByLegalHold", {"LegalHoldId": "hold-1"},
         "GET", "/legal-holds/hold-1/recovery-points"),
        (["tag", "add", RP, "team=ops", "env=prod"], "TagResource",
         {"ResourceArn": RP, "Tags": {"team": "ops", "env": "prod"}}, "POST",
         "/tags/arn%3Aaws%3Aec2%3Aus-east-1%3A%3Aimage%2Fami-0123456789abcdef0"),
        (["tag", "remove", RP, "team", "env"], "UntagResource", {"ResourceArn": RP, "TagKeyList": ["team", "env"]},
         "POST", "/untag/arn%3Aaws%3Aec2%3Aus-east-1%3A%3Aimage%2Fami-0123456789abcdef0"),
        (["tag", "list", VAULT_ARN], "ListTags", {"ResourceArn": VAULT_ARN}, "GET",
         "/tags/arn%3Aaws%3Abackup%3Aus-east-1%3A123456789012%3Abackup-vault%3Amain/"),
    ]


def test_governance_commands_build_requests_botocore_accepts(tmp_path: Path) -> None:
    model = service_model()
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY, indent=2))
    serializer = create_serializer("rest-json", include_validation=False)
    for args, operation, expected, method, path in governance_cases(policy_file):
        recorder = Recorder({"GetBackupVaultAccessPolicy": {"Policy": json.dumps(POLICY)}})
        out = cli({}, *args, obj=Target(backend=recorder))
        assert out.exit_code == 0, (args, out.stdout, out.stderr)
        assert recorder.calls == [(operation, expected)], args
        operation_model = model.operation_model(operation)
        report = ParamValidator().validate(expected, operation_model.input_shape)
        assert not report.has_errors(), (args, report.generate_report())
        request = serializer.serialize_to_request(dict(expected), operation_model)
        assert (request["method"], request["url_path"]) == (method, path), args


@pytest.mark.parametrize(("args", "says"), [
    (["legal-hold", "create", "--title", "t", "--description", "d", "--from", "2026-01-01T00:00:00Z"],
     "--to: is required with --from"),
    (["legal-hold", "create", "--title", "t", "--description", "d", "--from", "yesterday", "--to",
      "2026-01-01T00:00:00Z"], "--from: 'yesterday' is not an ISO-8601 time"),
    (["vault", "notifications", "put", "main", "--topic", "arn:aws:sns:us-east-1:123456789012:t", "--events",
      "BACKUP_JOB_COMPLETED,,"], "--events 'BACKUP_JOB_COMPLETED,,': empty item"),
    (["vault", "policy", "put", "main", "--file", "/no/such/policy.json"], "--file: file '/no/such/policy.json'"),
    (["tag", "add", RP, "team"], "TAG 'team': expected KEY=VALUE"),
])
def test_governance_commands_refuse_bad_options_before_calling(args: list[str], says: str) -> None:
    recorder = Recorder()
    out = cli({}, *args, obj=Target(backend=recorder))
    assert out.exit_code == 2, out.stderr
    assert says in one_line(out.stderr) and recorder.calls == []


def test_policy_file_must_be_a_json_object(tmp_path: Path) -> None:
    for text, says in (("{nope", "is not valid JSON"), ("[1, 2]", "must hold a JSON object")):
        policy = tmp_path / "policy.json"
        policy.write_text(text)
        recorder = Recorder()
        out = cli({}, "vault", "policy", "put", "main", "--file", str(policy), obj=Target(backend=recorder))
        assert out.exit_code == 2 and says in one_line(out.stderr) and recorder.calls == []


# -- governance commands end to end -----------------------------------------------------------------------
@ON_SQLITE_ONLY
def test_vault_lock_policy_and_notifications_through_the_server(sk: Snapkeep, endpoint: str,
                                                                tmp_path: Path) -> None:
    server = remote(endpoint)
    locked = cli(server, "vault", "lock", "put", "main", "--min-days", "7", "--max-days", "30")
    assert locked.exit_code == 0, locked.stderr
    here, there = both(sk, endpoint, "vault", "describe", "main", "--json")
    assert here.stdout == there.stdout
    vault = json.loads(there.stdout)
    assert (vault["Locked"], vault["MinRetentionDays"], vault["MaxRetentionDays"]) == (True, 7, 30)
    missing = cli(server, "vault", "lock", "put", "nope", "--min-days", "7")
    assert missing.exit_code == 3 and "ResourceNotFoundException" in missing.stderr
    assert cli(server, "vault", "lock", "delete", "main").exit_code == 0
    assert json.loads(cli(server, "vault", "describe", "main", "--json").stdout)["Locked"] is False

    policy = write(tmp_path / "policy.json", POLICY)
    assert cli(server, "vault", "policy", "put", "main", "--file", str(policy)).exit_code == 0
    here, there = both(sk, endpoint, "vault", "policy", "get", "main", "--json")
    assert here.stdout == there.stdout and json.loads(json.loads(there.stdout)["Policy"]) == POLICY
    assert "NoDeletes" in cli(server, "vault", "policy", "get", "main").stdout
    bad = cli(server, "vault", "policy", "put", "main", "--file", str(write(tmp_path / "bad.json", {
        "Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "backup:*"}]})))
    assert bad.exit_code == 2 and "Effect" in bad.stderr, bad.stderr
    kept = json.loads(cli(server, "vault", "policy", "get", "main", "--json").stdout)["Policy"]
    assert json.loads(kept) == POLICY
    assert cli(server, "vault", "policy", "delete", "main").exit_code == 0
    gone = cli(server, "vault", "policy", "get", "main")
    assert gone.exit_code == 3 and "ResourceNotFoundException" in gone.stderr

    topic = "arn:aws:sns:us-east-1:123456789012:backups"
    put = cli(server, "vault", "notifications", "put", "main", "--topic", topic, "--events",
              "BACKUP_JOB_COMPLETED,RESTORE_JOB_COMPLETED")
    assert put.exit_code == 0, put.stderr
    here, there = both(sk, endpoint, "vault", "notifications", "get", "main", "--json")
    assert here.stdout == there.stdout
    settings = json.loads(there.stdout)
    assert settings["SNSTopicArn"] == topic
    assert sorted(settings["BackupVaultEvents"]) == ["BACKUP_JOB_COMPLETED", "RESTORE_JOB_COMPLETED"]
    unknown = cli(server, "vault", "notifications", "put", "main", "--topic", topic, "--events", "NO_SUCH_EVENT")
    assert unknown.exit_code == 2 and "[BackupVaultEvents[0]]" in unknown.stderr, unknown.stderr
    assert json.loads(cli(server, "vault", "notifications", "get", "main", "--json").stdout) == settings
    assert cli(server, "vault", "notifications", "delete", "main").exit_code == 0
    assert cli(server, "vault", "notifications", "get", "main").exit_code == 3


@ON_SQLITE_ONLY
def test_legal_holds_and_tags_through_the_server(sk: Snapkeep, endpoint: str) -> None:
    server = remote(endpoint)
    target = tagged_instances(sk, "backup", "daily")[0]
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    point = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]

    created = cli(server, "legal-hold", "create", "--title", "Case 42", "--description", "litigation", "--vault",
                  "main", "--tag", "case=42", "--json")
    assert created.exit_code == 0, created.stderr
    hold = json.loads(created.stdout)
    hold_id = hold["LegalHoldId"]
    assert hold["Title"] == "Case 42" and hold["RecoveryPointSelection"]["VaultNames"] == ["main"]
    here, there = both(sk, endpoint, "legal-hold", "recovery-points", hold_id, "--json")
    assert here.stdout == there.stdout
    assert [p["RecoveryPointArn"] for p in json.loads(there.stdout)] == [point]
    assert [h["LegalHoldId"] for h in json.loads(cli(server, "legal-hold", "list", "--json").stdout)] == [hold_id]
    refused = cli(server, "recovery-point", "delete", "main", point)
    assert refused.exit_code == 2 and "InvalidRequestException" in refused.stderr, refused.stderr
    assert sk.service.describe_recovery_point("main", point)["Status"] not in ("DELETING", "DELETED")
    no_reason = cli(server, "legal-hold", "cancel", hold_id, "--description", "")
    assert no_reason.exit_code == 2, no_reason.stderr
    assert cli(server, "legal-hold", "cancel", hold_id, "--description", "settled").exit_code == 0
    canceled = json.loads(cli(server, "legal-hold", "get", hold_id, "--json").stdout)
    assert canceled["Status"] == "CANCELED" and canceled["CancelDescription"] == "settled"
    assert cli(server, "legal-hold", "get", "no-such-hold").exit_code == 3
    hold_tags = json.loads(cli(server, "tag", "list", hold["LegalHoldArn"], "--json").stdout)
    assert hold_tags == {"case": "42"}

    vault_arn = json.loads(cli(server, "vault", "describe", "main", "--json").stdout)["BackupVaultArn"]
    assert cli(server, "tag", "add", vault_arn, "team=ops", "env=prod").exit_code == 0
    here, there = both(sk, endpoint, "tag", "list", vault_arn, "--json")
    assert here.stdout == there.stdout and json.loads(there.stdout) == {"team": "ops", "env": "prod"}
    assert cli(server, "tag", "remove", vault_arn, "env").exit_code == 0
    assert json.loads(cli(server, "tag", "list", vault_arn, "--json").stdout) == {"team": "ops"}
    reserved = cli(server, "tag", "add", vault_arn, "aws:owner=me")
    assert reserved.exit_code == 2, reserved.stderr
    unknown = cli(server, "tag", "list", vault_arn.replace(":main", ":nope"))
    assert unknown.exit_code == 3 and "ResourceNotFoundException" in unknown.stderr
    assert json.loads(cli(server, "tag", "list", vault_arn, "--json").stdout) == {"team": "ops"}
