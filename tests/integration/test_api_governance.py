"""Vault Lock, vault access policies and legal holds through boto3's real `backup` client against a live ApiServer,
with real backup jobs in the lab, the retention sweep and both catalogs (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidRequest, LimitExceeded
from snapkeep.engine import retention, scheduler
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, ROLE, drain, tagged_instances

ACCOUNT = "123456789012"


def client(endpoint: str, key_id: str = ADMIN_ID, secret: str = ADMIN_SECRET, *, validate: bool = True) -> Any:
    """boto3's backup client; `validate=False` lets requests boto3 would refuse reach the server."""
    return boto3.client("backup", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret,
                        config=Config(parameter_validation=validate, retries={"max_attempts": 1}))


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def backup_now(sk: Snapkeep, backup: Any, vault: str, resource: str,
               lifecycle: dict[str, int] | None) -> dict[str, Any]:
    """Run one on-demand backup job through the API to its end; its description."""
    kwargs: dict[str, Any] = {"Lifecycle": lifecycle} if lifecycle else {}
    job = backup.start_backup_job(BackupVaultName=vault, ResourceArn=resource, IamRoleArn=ROLE, **kwargs)
    drain(sk)
    return dict(backup.describe_backup_job(BackupJobId=job["BackupJobId"]))


def later(sk: Snapkeep, delta: timedelta) -> datetime:
    """Move the workers' clock forward by `delta` (and keep it moving); the new now."""
    real = sk.context.clock
    sk.context.clock = lambda: real() + delta
    return sk.context.clock()


def job_snapshots(sk: Snapkeep, resource: str, job_id: str) -> list[dict[str, Any]]:
    arn = Arn.parse(resource)
    return ec2api.snapshots_tagged(sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job_id)


def point_arns(backup: Any, vault: str) -> list[str]:
    return sorted(p["RecoveryPointArn"]
                  for p in backup.list_recovery_points_by_backup_vault(BackupVaultName=vault)["RecoveryPoints"])


# --- Vault Lock ----------------------------------------------------------------------------------------------

def test_vault_lock_modes_through_boto3(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    backup.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=7, MaxRetentionDays=35)
    vault = backup.describe_backup_vault(BackupVaultName="main")
    assert (vault["Locked"], vault["MinRetentionDays"], vault["MaxRetentionDays"]) == (True, 7, 35)
    assert "LockDate" not in vault  # governance mode
    listed = backup.list_backup_vaults()["BackupVaultList"]
    assert [(v["BackupVaultName"], v["Locked"], v["MinRetentionDays"]) for v in listed] == [("main", True, 7)]

    for bad, fragment in (({"MinRetentionDays": 30, "MaxRetentionDays": 7}, "must not exceed MaxRetentionDays"),
                          ({"MinRetentionDays": 0}, "MinRetentionDays: must be between 1 and 36500"),
                          ({"MinRetentionDays": 7, "ChangeableForDays": 2}, "72-hour cooling-off")):
        with pytest.raises(ClientError) as caught:
            backup.put_backup_vault_lock_configuration(BackupVaultName="main", **bad)
        code, status, message = error_of(caught)
        assert (code, status) == ("InvalidParameterValueException", 400) and fragment in message
    assert backup.describe_backup_vault(BackupVaultName="main")["MinRetentionDays"] == 7  # nothing changed

    backup.delete_backup_vault_lock_configuration(BackupVaultName="main")  # governance: any time
    vault = backup.describe_backup_vault(BackupVaultName="main")
    assert vault["Locked"] is False and "MinRetentionDays" not in vault

    before = datetime.now(UTC)
    backup.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=1, ChangeableForDays=3)
    lock_date = backup.describe_backup_vault(BackupVaultName="main")["LockDate"]
    assert before + timedelta(days=3) - timedelta(seconds=1) <= lock_date <= datetime.now(UTC) + timedelta(days=3)
    backup.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=2, ChangeableForDays=5)
    assert backup.describe_backup_vault(BackupVaultName="main")["MinRetentionDays"] == 2  # cooling-off: changeable

    real = sk.service.clock
    sk.service.clock = lambda: real() + timedelta(days=5, minutes=1)  # past the lock date: immutable
    with pytest.raises(backup.exceptions.InvalidRequestException) as change:
        backup.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=1)
    assert "became immutable" in str(change.value)
    with pytest.raises(backup.exceptions.InvalidRequestException):
        backup.delete_backup_vault_lock_configuration(BackupVaultName="main")
    with pytest.raises(backup.exceptions.InvalidRequestException) as keep_vault:
        backup.delete_backup_vault(BackupVaultName="main")  # empty, but a compliance lock keeps it for good
    assert "can never be deleted" in str(keep_vault.value)
    vault = backup.describe_backup_vault(BackupVaultName="main")
    assert (vault["Locked"], vault["MinRetentionDays"]) == (True, 2)
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.put_backup_vault_lock_configuration(BackupVaultName="nope", MinRetentionDays=1)

    backup.create_backup_vault(BackupVaultName="cooling")  # before its lock date an empty vault may go
    backup.put_backup_vault_lock_configuration(BackupVaultName="cooling", MinRetentionDays=1, ChangeableForDays=30)
    backup.delete_backup_vault(BackupVaultName="cooling")
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]] == ["main"]


def test_locked_vault_fails_jobs_outside_its_bounds_and_keeps_its_points(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    target = tagged_instances(sk, "backup", "daily")[0]
    backup.create_backup_vault(BackupVaultName="vault-locked")
    before_lock = backup_now(sk, backup, "vault-locked", target, {"DeleteAfterDays": 1})
    assert before_lock["State"] == "COMPLETED"
    backup.put_backup_vault_lock_configuration(BackupVaultName="vault-locked", MinRetentionDays=7,
                                               MaxRetentionDays=35)

    for lifecycle, fragment in (({"DeleteAfterDays": 3}, "shorter than the target vault lock's MinRetentionDays (7)"),
                                ({"DeleteAfterDays": 36}, "longer than the target vault lock's MaxRetentionDays (35)"),
                                (None, "would be kept forever")):
        failed = backup_now(sk, backup, "vault-locked", target, lifecycle)
        assert failed["State"] == "FAILED", failed
        assert failed["StatusMessage"].startswith("Backup vault 'vault-locked' is locked: ")
        assert fragment in failed["StatusMessage"]
        assert "RecoveryPointArn" not in failed
        assert job_snapshots(sk, target, failed["BackupJobId"]) == []  # failed before any AWS call
    inside = backup_now(sk, backup, "vault-locked", target, {"DeleteAfterDays": 10})
    assert inside["State"] == "COMPLETED"
    assert point_arns(backup, "vault-locked") == sorted([before_lock["RecoveryPointArn"],
                                                          inside["RecoveryPointArn"]])

    # A scheduled job is checked the same way.
    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": "short", "Rules": [{
        "RuleName": "hourly", "TargetBackupVaultName": "vault-locked", "ScheduleExpression": "cron(0 * ? * * *)",
        "StartWindowMinutes": 60, "CompletionWindowMinutes": 120, "Lifecycle": {"DeleteAfterDays": 2}}]})
    backup.create_backup_selection(BackupPlanId=plan["BackupPlanId"], BackupSelection={
        "SelectionName": "one", "IamRoleArn": ROLE, "Resources": [target]})
    created = backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])["CreationDate"]
    tick = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    later(sk, tick - sk.context.clock())
    assert len(scheduler.tick(sk.store, tick)) == 1
    drain(sk)
    [scheduled] = [j for j in backup.list_backup_jobs(ByBackupVaultName="vault-locked")["BackupJobs"]
                   if j.get("CreatedBy")]
    assert scheduled["State"] == "FAILED" and "MinRetentionDays (7)" in scheduled["StatusMessage"]

    for point in (before_lock["RecoveryPointArn"], inside["RecoveryPointArn"]):
        with pytest.raises(ClientError) as refused:
            backup.delete_recovery_point(BackupVaultName="vault-locked", RecoveryPointArn=point)
        code, _, message = error_of(refused)
        assert code == "InvalidRequestException"
        assert "backup vault 'vault-locked' is protected by Vault Lock in governance mode" in message
    assert backup.describe_recovery_point(BackupVaultName="vault-locked", RecoveryPointArn=inside[
        "RecoveryPointArn"])["Status"] == "COMPLETED"

    point = inside["RecoveryPointArn"]
    for days, fragment in ((5, "cannot be shortened (10 days -> 5 days)"),
                           (40, "40 days is longer than MaxRetentionDays (35)")):
        with pytest.raises(backup.exceptions.InvalidRequestException) as lifecycle_refused:
            backup.update_recovery_point_lifecycle(BackupVaultName="vault-locked", RecoveryPointArn=point,
                                                   Lifecycle={"DeleteAfterDays": days})
        assert fragment in str(lifecycle_refused.value)
    described = backup.describe_recovery_point(BackupVaultName="vault-locked", RecoveryPointArn=point)
    assert described["Lifecycle"] == {"DeleteAfterDays": 10}
    longer = backup.update_recovery_point_lifecycle(BackupVaultName="vault-locked", RecoveryPointArn=point,
                                                    Lifecycle={"DeleteAfterDays": 20})
    assert longer["CalculatedLifecycle"]["DeleteAt"] == described["CreationDate"] + timedelta(days=20)

    # The lifecycle still ends points in a locked vault: the one saved before the lock expires on time.
    now = later(sk, timedelta(days=1, minutes=1))
    assert retention.sweep(sk.store, now) == [before_lock["RecoveryPointArn"]]
    drain(sk)
    assert point_arns(backup, "vault-locked") == [point]


# --- legal holds ---------------------------------------------------------------------------------------------

def test_legal_hold_blocks_deletion_until_canceled(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    target = tagged_instances(sk, "backup", "daily")[0]
    first = backup_now(sk, backup, "main", target, {"DeleteAfterDays": 2})
    second = backup_now(sk, backup, "main", target, {"DeleteAfterDays": 2})
    held = second["RecoveryPointArn"]
    created = backup.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=held)["CreationDate"]
    selection = {"VaultNames": ["main"], "ResourceIdentifiers": [target],
                 "DateRange": {"FromDate": created - timedelta(milliseconds=5), "ToDate": datetime.now(UTC)}}
    hold = backup.create_legal_hold(Title="Case 42", Description="Preserve for litigation",
                                    IdempotencyToken="case-42", RecoveryPointSelection=selection,
                                    Tags={"case": "42"})
    assert hold["Status"] == "ACTIVE"
    hold_id = hold["LegalHoldId"]
    assert hold["LegalHoldArn"] == f"arn:aws:backup:us-east-1:{ACCOUNT}:legal-hold:{hold_id}"
    assert hold["RecoveryPointSelection"]["VaultNames"] == ["main"]
    again = backup.create_legal_hold(Title="Case 42", Description="Preserve for litigation",
                                     IdempotencyToken="case-42", RecoveryPointSelection=selection)
    assert again["LegalHoldId"] == hold_id
    assert [h["LegalHoldId"] for h in backup.list_legal_holds()["LegalHolds"]] == [hold_id]
    got = backup.get_legal_hold(LegalHoldId=hold_id)
    assert (got["Title"], got["Status"], got["CreationDate"]) == ("Case 42", "ACTIVE", hold["CreationDate"])
    assert "CancellationDate" not in got
    points = backup.list_recovery_points_by_legal_hold(LegalHoldId=hold_id)["RecoveryPoints"]
    assert points == [{"RecoveryPointArn": held, "ResourceArn": target, "ResourceType": "EC2",
                       "BackupVaultName": "main"}]

    with pytest.raises(ClientError) as refused:
        backup.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=held)
    code, _, message = error_of(refused)
    assert code == "InvalidRequestException" and f"{hold_id} ('Case 42')" in message
    with pytest.raises(InvalidRequest, match="active legal hold"):  # the CLI's path: the same service method
        sk.service.delete_recovery_point("main", held)
    with pytest.raises(backup.exceptions.InvalidRequestException) as shorter:
        backup.update_recovery_point_lifecycle(BackupVaultName="main", RecoveryPointArn=held,
                                               Lifecycle={"DeleteAfterDays": 1})
    assert "cannot be shortened" in str(shorter.value)
    assert backup.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=held)["Status"] == "COMPLETED"

    backup.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=first["RecoveryPointArn"])  # not held
    drain(sk)
    assert point_arns(backup, "main") == [held]

    # Past its DeleteAt the held point survives the sweep, snapshots and all.
    now = later(sk, timedelta(days=2, minutes=1))
    assert retention.sweep(sk.store, now) == []
    drain(sk)
    assert point_arns(backup, "main") == [held]
    snapshots = [v["SnapshotId"] for v in sk.service.describe_recovery_point("main", held)["Volumes"]]
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    assert len(ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]) == len(snapshots)

    with pytest.raises(ClientError) as bad_days:
        backup.cancel_legal_hold(LegalHoldId=hold_id, CancelDescription="done", RetainRecordInDays=-1)
    assert error_of(bad_days)[0] == "InvalidParameterValueException"
    assert backup.get_legal_hold(LegalHoldId=hold_id)["Status"] == "ACTIVE"
    with pytest.raises(ClientError) as no_reason:
        client(api, validate=False).cancel_legal_hold(LegalHoldId=hold_id)
    assert error_of(no_reason)[0] == "MissingParameterValueException"

    backup.cancel_legal_hold(LegalHoldId=hold_id, CancelDescription="Case closed", RetainRecordInDays=1)
    canceled = backup.get_legal_hold(LegalHoldId=hold_id)
    assert (canceled["Status"], canceled["CancelDescription"]) == ("CANCELED", "Case closed")
    assert canceled["RetainRecordUntil"] == canceled["CancellationDate"] + timedelta(days=1)
    with pytest.raises(ClientError) as twice:
        backup.cancel_legal_hold(LegalHoldId=hold_id, CancelDescription="again")
    assert error_of(twice)[0] == "InvalidResourceStateException"

    assert retention.sweep(sk.store, now) == [held]
    drain(sk)
    assert point_arns(backup, "main") == []
    assert ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshots}])["Snapshots"] == []

    real = sk.service.clock
    sk.service.clock = lambda: real() + timedelta(days=1, minutes=1)  # past RetainRecordUntil
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.get_legal_hold(LegalHoldId=hold_id)
    assert backup.list_legal_holds()["LegalHolds"] == []


def test_legal_hold_validation_changes_nothing(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    loose = client(api, validate=False)
    now = datetime.now(UTC)
    cases: list[tuple[Any, dict[str, Any], str, str]] = [
        (loose, {"Description": "d"}, "MissingParameterValueException", "Title"),
        (backup, {"Title": "", "Description": "d"}, "MissingParameterValueException", "Title: is required"),
        (backup, {"Title": "t", "Description": ""}, "MissingParameterValueException", "Description: is required"),
        (backup, {"Title": "t", "Description": "d", "RecoveryPointSelection": {"VaultNames": ["nope"]}},
         "InvalidParameterValueException", "backup vault 'nope' does not exist"),
        (backup, {"Title": "t", "Description": "d", "RecoveryPointSelection": {"DateRange": {
            "FromDate": now - timedelta(days=1), "ToDate": now + timedelta(days=1)}}},
         "InvalidParameterValueException", "is in the future"),
        (backup, {"Title": "t", "Description": "d", "RecoveryPointSelection": {"DateRange": {
            "FromDate": now - timedelta(days=1), "ToDate": now - timedelta(days=2)}}},
         "InvalidParameterValueException", "must not be later than ToDate"),
    ]
    for caller, kwargs, code, fragment in cases:
        with pytest.raises(ClientError) as caught:
            caller.create_legal_hold(**kwargs)
        got_code, status, message = error_of(caught)
        assert (got_code, status) == (code, 400), kwargs
        assert fragment in message, message
    assert backup.list_legal_holds()["LegalHolds"] == []
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.get_legal_hold(LegalHoldId="no-such-hold")
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.list_recovery_points_by_legal_hold(LegalHoldId="no-such-hold")

    # Fifty active holds at most; a canceled one frees a place.
    for index in range(50):
        sk.service.create_legal_hold(f"hold {index}", "limit test")
    with pytest.raises(ClientError) as limit:
        backup.create_legal_hold(Title="one too many", Description="d")
    assert error_of(limit)[0] == "LimitExceededException"
    with pytest.raises(LimitExceeded):
        sk.service.create_legal_hold("one too many", "d")
    pages = list(backup.get_paginator("list_legal_holds").paginate(PaginationConfig={"PageSize": 20}))
    assert [len(p["LegalHolds"]) for p in pages] == [20, 20, 10]
    first = pages[0]["LegalHolds"][0]["LegalHoldId"]
    backup.cancel_legal_hold(LegalHoldId=first, CancelDescription="free a place")
    assert backup.create_legal_hold(Title="fits again", Description="d")["Status"] == "ACTIVE"


# --- access policies ------------------------------------------------------------------------------------------

def _user(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def test_access_policy_denies_a_named_user_and_allows_others(sk: Snapkeep, api: str) -> None:
    root = client(api)
    keys = sk.keys()
    otto = client(api, *keys.create_key("otto", "admin", datetime.now(UTC)))
    alice = client(api, *keys.create_key("alice", "admin", datetime.now(UTC)))
    vera = client(api, *keys.create_key("vera", "operator", datetime.now(UTC)))
    target = tagged_instances(sk, "backup", "daily")[0]
    point = backup_now(sk, root, "main", target, {"DeleteAfterDays": 30})["RecoveryPointArn"]
    root.create_backup_vault(BackupVaultName="other")

    for bad, fragment in (("{oops", "not valid JSON"),
                          (json.dumps({"Version": "2012-10-17", "Statement": [{
                              "Effect": "Maybe", "Principal": "*", "Action": "backup:*", "Resource": "*"}]}),
                           "Statement[0].Effect must be Allow or Deny"),
                          (json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Resource": "*"}]}),
                           "Statement[0] needs Action"),
                          (json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "backup:*",
                                                      "Resource": "*", "Condition": {
                                                          "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}),
                           "cannot evaluate")):
        with pytest.raises(ClientError) as invalid:
            root.put_backup_vault_access_policy(BackupVaultName="main", Policy=bad)
        code, _, message = error_of(invalid)
        assert code == "InvalidParameterValueException" and fragment in message
    with pytest.raises(root.exceptions.ResourceNotFoundException):
        root.get_backup_vault_access_policy(BackupVaultName="main")  # nothing was stored

    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "OttoMayNotTouch", "Effect": "Deny", "Principal": {"AWS": [_user("otto"), _user("olga")]},
         "Action": ["backup:DeleteRecoveryPoint", "backup:UpdateRecoveryPointLifecycle", "backup:Start*",
                    "backup:Describe*", "backup:ListRecoveryPointsByBackupVault",
                    "backup:PutBackupVaultAccessPolicy", "backup:DeleteBackupVault"],
         "Resource": "*"},
        {"Sid": "AllowIsNoGrant", "Effect": "Allow", "Principal": "*", "Action": "backup:*", "Resource": "*"}]})
    vera.create_backup_vault(BackupVaultName="by-vera")
    with pytest.raises(ClientError) as operator_denied:  # the role stays the first gate: Allow grants nothing
        vera.put_backup_vault_access_policy(BackupVaultName="main", Policy=policy)
    assert error_of(operator_denied)[0] == "AccessDeniedException"
    root.put_backup_vault_access_policy(BackupVaultName="main", Policy=policy)
    got = root.get_backup_vault_access_policy(BackupVaultName="main")
    assert got["Policy"] == policy and got["BackupVaultArn"].endswith(":backup-vault:main")

    refused = [
        lambda: otto.describe_backup_vault(BackupVaultName="main"),
        lambda: otto.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=point),
        lambda: otto.update_recovery_point_lifecycle(BackupVaultName="main", RecoveryPointArn=point,
                                                     Lifecycle={"DeleteAfterDays": 40}),
        lambda: otto.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=point),
        lambda: otto.list_recovery_points_by_backup_vault(BackupVaultName="main"),
        lambda: otto.start_restore_job(RecoveryPointArn=point, Metadata={"InstanceType": "t3.micro"}),
        lambda: otto.start_backup_job(BackupVaultName="main", ResourceArn=target, IamRoleArn=ROLE),
        lambda: otto.put_backup_vault_access_policy(BackupVaultName="main", Policy=json.dumps(
            {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})),
        lambda: otto.delete_backup_vault(BackupVaultName="main"),
    ]
    for call in refused:
        with pytest.raises(ClientError) as denied:
            call()
        code, status, message = error_of(denied)
        assert (code, status) == ("AccessDeniedException", 403)
        assert f"User: {_user('otto')} is not authorized to perform: backup:" in message
        assert "access policy of backup vault 'main' (statement 'OttoMayNotTouch')" in message
    assert root.get_backup_vault_access_policy(BackupVaultName="main")["Policy"] == policy
    assert point_arns(root, "main") == [point]
    assert root.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=point)["Lifecycle"] == {
        "DeleteAfterDays": 30}
    assert root.list_restore_jobs()["RestoreJobs"] == []
    assert len(root.list_backup_jobs()["BackupJobs"]) == 1

    # Other users, and otto on a vault without that policy, are not affected.
    assert alice.describe_backup_vault(BackupVaultName="main")["NumberOfRecoveryPoints"] == 1
    assert vera.list_recovery_points_by_backup_vault(BackupVaultName="main")["RecoveryPoints"]
    assert otto.describe_backup_vault(BackupVaultName="other")["BackupVaultName"] == "other"
    assert [v["BackupVaultName"] for v in otto.list_backup_vaults()["BackupVaultList"]] == [
        "by-vera", "main", "other"]
    alice.update_recovery_point_lifecycle(BackupVaultName="main", RecoveryPointArn=point,
                                          Lifecycle={"DeleteAfterDays": 40})
    assert root.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=point)["Lifecycle"] == {
        "DeleteAfterDays": 40}


def test_a_deny_for_everyone_binds_admins_but_the_root_can_remove_the_policy(sk: Snapkeep, api: str) -> None:
    root = client(api)
    alice = client(api, *sk.keys().create_key("alice", "admin", datetime.now(UTC)))
    policy = json.dumps({"Version": "2012-10-17", "Statement": {
        "Effect": "Deny", "Principal": "*", "NotAction": ["backup:Describe*", "backup:List*"],
        "Resource": "arn:aws:backup:*:*:backup-vault:main"}})
    root.put_backup_vault_access_policy(BackupVaultName="main", Policy=policy)
    for caller in (root, alice):
        with pytest.raises(ClientError) as denied:
            caller.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=1)
        code, status, message = error_of(denied)
        assert (code, status) == ("AccessDeniedException", 403) and "(Statement[0] (no Sid))" in message
    with pytest.raises(ClientError) as alice_delete:
        alice.delete_backup_vault_access_policy(BackupVaultName="main")
    assert error_of(alice_delete)[0] == "AccessDeniedException"
    assert root.describe_backup_vault(BackupVaultName="main")["Locked"] is False
    assert alice.describe_backup_vault(BackupVaultName="main")["BackupVaultName"] == "main"  # NotAction spares it

    # The bootstrap admin is the account root: it may always read and delete the policy, nothing more.
    assert root.get_backup_vault_access_policy(BackupVaultName="main")["Policy"] == policy
    root.delete_backup_vault_access_policy(BackupVaultName="main")
    with pytest.raises(root.exceptions.ResourceNotFoundException):
        root.get_backup_vault_access_policy(BackupVaultName="main")
    alice.put_backup_vault_lock_configuration(BackupVaultName="main", MinRetentionDays=1)
    assert root.describe_backup_vault(BackupVaultName="main")["Locked"] is True
