"""The AWS Backup API over HTTP, driven by boto3's real `backup` client with only endpoint_url changed."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from snapkeep.app import Snapkeep
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, ROLE, drain, tagged_instances


def client(endpoint: str, key_id: str = ADMIN_ID, secret: str = ADMIN_SECRET) -> Any:
    return boto3.client("backup", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret)


def test_vaults_plans_jobs_and_restores_through_boto3(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    backup.create_backup_vault(BackupVaultName="api-vault", BackupVaultTags={"team": "ops"})
    vaults = {v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]}
    assert vaults == {"main", "api-vault"}
    with pytest.raises(backup.exceptions.AlreadyExistsException):
        backup.create_backup_vault(BackupVaultName="api-vault")
    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": "daily", "Rules": [{
        "RuleName": "daily", "TargetBackupVaultName": "api-vault", "ScheduleExpression": "cron(0 5 ? * * *)",
        "Lifecycle": {"DeleteAfterDays": 35}}]})
    got = backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])
    assert got["BackupPlan"]["Rules"][0]["ScheduleExpression"] == "cron(0 5 ? * * *)"
    assert isinstance(got["CreationDate"], datetime) and got["CreationDate"].tzinfo is not None
    selection = backup.create_backup_selection(BackupPlanId=plan["BackupPlanId"], BackupSelection={
        "SelectionName": "tagged", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})
    assert backup.get_backup_selection(BackupPlanId=plan["BackupPlanId"], SelectionId=selection["SelectionId"])[
        "BackupSelection"]["SelectionName"] == "tagged"

    target = tagged_instances(sk, "backup", "daily")[0]
    job = backup.start_backup_job(BackupVaultName="api-vault", ResourceArn=target, IamRoleArn=ROLE)
    drain(sk)
    described = backup.describe_backup_job(BackupJobId=job["BackupJobId"])
    assert described["State"] == "COMPLETED"
    points = backup.list_recovery_points_by_backup_vault(BackupVaultName="api-vault")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [described["RecoveryPointArn"]]
    by_resource = backup.list_recovery_points_by_resource(ResourceArn=target)["RecoveryPoints"]
    assert by_resource[0]["RecoveryPointArn"] == described["RecoveryPointArn"]
    restore = backup.start_restore_job(RecoveryPointArn=described["RecoveryPointArn"],
                                       Metadata={"InstanceType": "t3.micro"})
    drain(sk)
    assert backup.describe_restore_job(RestoreJobId=restore["RestoreJobId"])["Status"] == "COMPLETED"
    jobs = backup.list_backup_jobs(ByState="COMPLETED")["BackupJobs"]
    assert [j["BackupJobId"] for j in jobs] == [job["BackupJobId"]]


def test_validation_and_not_found_errors_come_back_as_aws_codes(api: str) -> None:
    backup = client(api)
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.describe_backup_vault(BackupVaultName="nope")
    with pytest.raises(backup.exceptions.InvalidParameterValueException) as bad:
        backup.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [{
            "RuleName": "r", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 5 * * * *)"}]})
    assert "ScheduleExpression" in str(bad.value)
    with pytest.raises(ClientError) as unsupported:
        backup.list_frameworks()
    assert unsupported.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "does not support ListFrameworks" in unsupported.value.response["Error"]["Message"]


def test_paging_with_next_token(api: str) -> None:
    backup = client(api)
    for index in range(5):
        backup.create_backup_vault(BackupVaultName=f"vault-{index}")
    pages = list(backup.get_paginator("list_backup_vaults").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["BackupVaultList"]) for p in pages] == [2, 2, 2]
    assert len({v["BackupVaultName"] for p in pages for v in p["BackupVaultList"]}) == 6


def test_unsigned_bad_signature_and_unknown_key_are_refused(api: str, sk: Snapkeep) -> None:
    request = urllib.request.Request(f"{api}/backup-vaults/", method="GET")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(request, timeout=10)
    assert unsigned.value.code == 403
    assert unsigned.value.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    with pytest.raises(ClientError) as wrong_secret:
        client(api, secret="not-the-secret").list_backup_vaults()
    assert wrong_secret.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as unknown:
        client(api, key_id="SKAKNOBODY0000000000").list_backup_vaults()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert {v["BackupVaultName"] for v in sk.service.list_backup_vaults()} == {"main"}


def test_roles_limit_what_a_key_may_do(api: str, sk: Snapkeep) -> None:
    keys = sk.keys()
    viewer_id, viewer_secret = keys.create_key("vera", "viewer", datetime.now(UTC))
    operator_id, operator_secret = keys.create_key("otto", "operator", datetime.now(UTC))
    viewer = client(api, viewer_id, viewer_secret)
    assert [v["BackupVaultName"] for v in viewer.list_backup_vaults()["BackupVaultList"]] == ["main"]
    with pytest.raises(ClientError) as denied:
        viewer.create_backup_vault(BackupVaultName="by-viewer")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "backup:CreateBackupVault" in denied.value.response["Error"]["Message"]
    operator = client(api, operator_id, operator_secret)
    operator.create_backup_vault(BackupVaultName="by-operator")
    with pytest.raises(ClientError) as no_delete:
        operator.delete_backup_vault(BackupVaultName="by-operator")
    assert no_delete.value.response["Error"]["Code"] == "AccessDeniedException"
    assert {v["BackupVaultName"] for v in sk.service.list_backup_vaults()} == {"main", "by-operator"}


def test_plan_lifecycle_stop_and_listings_through_boto3(sk: Snapkeep, api: str, lab: Any) -> None:
    backup = client(api)
    assert backup.get_supported_resource_types()["ResourceTypes"] == ["EC2", "EBS"]
    rule = {"RuleName": "daily", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 5 ? * * *)"}
    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [rule]})
    plan_id = plan["BackupPlanId"]
    updated = backup.update_backup_plan(BackupPlanId=plan_id, BackupPlan={"BackupPlanName": "p", "Rules": [
        dict(rule, ScheduleExpression="cron(30 6 ? * * *)")]})
    versions = backup.list_backup_plan_versions(BackupPlanId=plan_id)["BackupPlanVersionsList"]
    assert [v["VersionId"] for v in versions] == [plan["VersionId"], updated["VersionId"]]
    assert [p["BackupPlanId"] for p in backup.list_backup_plans()["BackupPlansList"]] == [plan_id]
    selection = backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
        "SelectionName": "all", "IamRoleArn": ROLE, "Resources": ["arn:aws:ec2:*:*:instance/*"]})
    listed = backup.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    assert [s["SelectionId"] for s in listed] == [selection["SelectionId"]]
    with pytest.raises(backup.exceptions.InvalidRequestException):
        backup.delete_backup_plan(BackupPlanId=plan_id)
    backup.delete_backup_selection(BackupPlanId=plan_id, SelectionId=selection["SelectionId"])
    deleted = backup.delete_backup_plan(BackupPlanId=plan_id)
    assert deleted["BackupPlanId"] == plan_id and deleted["DeletionDate"].tzinfo is not None
    assert backup.list_backup_plans()["BackupPlansList"] == []

    from tests.lab_flow import set_snapshot_seconds

    set_snapshot_seconds(lab.endpoint, 60.0)
    target = tagged_instances(sk, "backup", "daily")[0]
    job = backup.start_backup_job(BackupVaultName="main", ResourceArn=target, IamRoleArn=ROLE)
    backup.stop_backup_job(BackupJobId=job["BackupJobId"])
    drain(sk)
    assert backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "ABORTED"
    assert backup.list_restore_jobs()["RestoreJobs"] == []


def test_templates_protected_resources_and_restore_metadata_through_boto3(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    template = '{"BackupPlanName": "t", "Rules": [{"RuleName": "r", "TargetBackupVaultName": "main"}]}'
    plan_doc = backup.get_backup_plan_from_json(BackupPlanTemplateJson=template)["BackupPlan"]
    assert plan_doc["Rules"][0]["ScheduleExpression"] == "cron(0 5 ? * * *)"
    with pytest.raises(backup.exceptions.InvalidParameterValueException):
        backup.get_backup_plan_from_json(BackupPlanTemplateJson="{not json")
    plan_id = backup.create_backup_plan(BackupPlan=plan_doc)["BackupPlanId"]
    exported = backup.export_backup_plan_template(BackupPlanId=plan_id)["BackupPlanTemplateJson"]
    assert backup.get_backup_plan_from_json(BackupPlanTemplateJson=exported)["BackupPlan"] == plan_doc

    target = tagged_instances(sk, "backup", "daily")[0]
    job = backup.start_backup_job(BackupVaultName="main", ResourceArn=target, IamRoleArn=ROLE)
    drain(sk)
    point_arn = backup.describe_backup_job(BackupJobId=job["BackupJobId"])["RecoveryPointArn"]
    protected = backup.list_protected_resources()["Results"]
    assert [(r["ResourceArn"], r["LastRecoveryPointArn"]) for r in protected] == [(target, point_arn)]
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.describe_protected_resource(ResourceArn=target.replace("i-", "i-0000"))

    # The default restore metadata is valid input for a restore, as in AWS Backup's console flow.
    metadata = backup.get_recovery_point_restore_metadata(BackupVaultName="main", RecoveryPointArn=point_arn)
    assert metadata["ResourceType"] == "EC2" and metadata["RestoreMetadata"]["InstanceType"]
    restore = backup.start_restore_job(RecoveryPointArn=point_arn, Metadata=metadata["RestoreMetadata"])
    drain(sk)
    assert backup.describe_restore_job(RestoreJobId=restore["RestoreJobId"])["Status"] == "COMPLETED"
    stored = backup.get_restore_job_metadata(RestoreJobId=restore["RestoreJobId"])["Metadata"]
    assert stored["InstanceType"] == metadata["RestoreMetadata"]["InstanceType"]
    by_resource = backup.list_restore_jobs_by_protected_resource(ResourceArn=target)["RestoreJobs"]
    assert [r["RestoreJobId"] for r in by_resource] == [restore["RestoreJobId"]]
    described = backup.describe_protected_resource(ResourceArn=target)
    assert described["LastRecoveryPointArn"] == point_arn and "LatestRestoreJobCreationDate" in described
