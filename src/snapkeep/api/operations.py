"""The AWS Backup operations Snapkeep serves, as an explicit registry: operation name → handler.

Each handler takes the parsed, validated input (AWS member names) and returns the output in AWS member names;
the protocol layer turns both into bytes. Operations not in the registry answer an AWS-shaped "not supported".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.api import ops_governance, ops_notifications, ops_reports
from snapkeep.api.handler import Handler, paginate
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest
from snapkeep.service import BackupService


def _create_vault(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.create_backup_vault(
        p["BackupVaultName"], p.get("BackupVaultTags"), p.get("EncryptionKeyArn"), p.get("CreatorRequestId")
    )


def _describe_vault(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.describe_backup_vault(p["BackupVaultName"])


def _list_vaults(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_backup_vaults(), p, "BackupVaultList")


def _delete_vault(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_backup_vault(p["BackupVaultName"])
    return {}


def _create_plan(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.create_backup_plan(p["BackupPlan"], p.get("BackupPlanTags"), p.get("CreatorRequestId"))


def _update_plan(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.update_backup_plan(p["BackupPlanId"], p["BackupPlan"])


def _get_plan(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_backup_plan(p["BackupPlanId"], p.get("VersionId"))


def _delete_plan(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.delete_backup_plan(p["BackupPlanId"])


def _list_plans(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    rows = [{k: v for k, v in r.items() if v is not None} for r in svc.list_backup_plans(bool(p.get("IncludeDeleted")))]
    return paginate(rows, p, "BackupPlansList")


def _list_plan_versions(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_backup_plan_versions(p["BackupPlanId"]), p, "BackupPlanVersionsList")


def _create_selection(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.create_backup_selection(p["BackupPlanId"], p["BackupSelection"], p.get("CreatorRequestId"))


def _get_selection(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    out = svc.get_backup_selection(p["BackupPlanId"], p["SelectionId"])
    return {k: v for k, v in out.items() if v is not None}


def _delete_selection(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_backup_selection(p["BackupPlanId"], p["SelectionId"])
    return {}


def _list_selections(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_backup_selections(p["BackupPlanId"]), p, "BackupSelectionsList")


def _start_backup_job(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    _check_backup_options(p)
    return svc.start_backup_job(
        p["BackupVaultName"],
        p["ResourceArn"],
        p["IamRoleArn"],
        idempotency_token=p.get("IdempotencyToken"),
        start_window_minutes=p.get("StartWindowMinutes"),
        complete_window_minutes=p.get("CompleteWindowMinutes"),
        lifecycle=p.get("Lifecycle"),
        recovery_point_tags=p.get("RecoveryPointTags"),
    )


def _check_backup_options(p: Mapping[str, Any]) -> None:
    """Refuse what Snapkeep would otherwise silently ignore: VSS values other than AWS's two, indexing, and
    logically air-gapped vaults."""
    for key, value in (p.get("BackupOptions") or {}).items():
        if key != "WindowsVSS":
            raise InvalidParameterValue(
                f"BackupOptions: '{key}' is not a backup option for EC2 (only WindowsVSS)", field="BackupOptions"
            )
        if value not in ("enabled", "disabled"):
            raise InvalidParameterValue(
                f"BackupOptions.WindowsVSS: must be 'enabled' or 'disabled'; got '{value}'",
                field="BackupOptions.WindowsVSS",
            )
    if p.get("Index") == "ENABLED":
        raise InvalidRequest("Index: Snapkeep does not support backup indexes yet", field="Index")
    if p.get("LogicallyAirGappedBackupVaultArn"):
        raise InvalidRequest(
            "LogicallyAirGappedBackupVaultArn: Snapkeep does not support logically air-gapped vaults yet",
            field="LogicallyAirGappedBackupVaultArn",
        )


def _describe_backup_job(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.describe_backup_job(p["BackupJobId"])


def _list_backup_jobs(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    jobs, token = svc.list_backup_jobs_page(
        max_results=int(p.get("MaxResults") or 1000),
        next_token=p.get("NextToken"),
        state=p.get("ByState"),
        vault=p.get("ByBackupVaultName"),
        resource_arn=p.get("ByResourceArn"),
        resource_type=p.get("ByResourceType"),
        account_id=p.get("ByAccountId"),
        created_after=p.get("ByCreatedAfter"),
        created_before=p.get("ByCreatedBefore"),
        complete_after=p.get("ByCompleteAfter"),
        complete_before=p.get("ByCompleteBefore"),
        parent_job_id=p.get("ByParentJobId"),
        message_category=p.get("ByMessageCategory"),
    )
    return {"BackupJobs": jobs, "NextToken": token} if token else {"BackupJobs": jobs}


def _stop_backup_job(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.stop_backup_job(p["BackupJobId"])
    return {}


def _list_points_by_vault(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    points = svc.list_recovery_points(p["BackupVaultName"], p.get("ByResourceArn"))
    if p.get("ByResourceType"):
        points = [r for r in points if r["ResourceType"] == p["ByResourceType"]]
    return paginate(points, p, "RecoveryPoints")


def _list_points_by_resource(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    points = [
        {k: v for k, v in r.items() if k in _BY_RESOURCE_MEMBERS}
        for r in svc.list_recovery_points(None, p["ResourceArn"])
    ]
    return paginate(points, p, "RecoveryPoints")


_BY_RESOURCE_MEMBERS = frozenset(
    {
        "RecoveryPointArn",
        "CreationDate",
        "Status",
        "StatusMessage",
        "EncryptionKeyArn",
        "BackupSizeBytes",
        "BackupVaultName",
        "IsParent",
        "ParentRecoveryPointArn",
        "ResourceName",
        "VaultType",
    }
)


def _describe_point(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.describe_recovery_point(p["BackupVaultName"], p["RecoveryPointArn"])


def _delete_point(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_recovery_point(p["BackupVaultName"], p["RecoveryPointArn"])
    return {}


def _update_point_lifecycle(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.update_recovery_point_lifecycle(p["BackupVaultName"], p["RecoveryPointArn"], p.get("Lifecycle") or {})


def _start_restore(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.start_restore_job(
        p["RecoveryPointArn"],
        p["Metadata"],
        resource_type=p.get("ResourceType"),
        iam_role_arn=p.get("IamRoleArn"),
        idempotency_token=p.get("IdempotencyToken"),
        copy_source_tags=bool(p.get("CopySourceTagsToRestoredResource")),
    )


def _describe_restore(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.describe_restore_job(p["RestoreJobId"])


def _list_restores(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_restore_jobs(p.get("ByStatus")), p, "RestoreJobs")


def _supported_types(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return {"ResourceTypes": ["EC2", "EBS"]}


def _plan_from_json(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_backup_plan_from_json(p["BackupPlanTemplateJson"])


def _export_plan(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.export_backup_plan_template(p["BackupPlanId"])


def _list_protected(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_protected_resources(), p, "Results")


def _describe_protected(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.describe_protected_resource(p["ResourceArn"])


def _restore_metadata(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_recovery_point_restore_metadata(p["BackupVaultName"], p["RecoveryPointArn"])


def _restore_job_metadata(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_restore_job_metadata(p["RestoreJobId"])


def _restores_by_resource(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    jobs = svc.list_restore_jobs_by_resource(
        p["ResourceArn"],
        p.get("ByStatus"),
        p.get("ByRecoveryPointCreationDateAfter"),
        p.get("ByRecoveryPointCreationDateBefore"),
    )
    return paginate(jobs, p, "RestoreJobs")


OPERATIONS: dict[str, Handler] = {
    "CreateBackupVault": _create_vault,
    "DescribeBackupVault": _describe_vault,
    "ListBackupVaults": _list_vaults,
    "DeleteBackupVault": _delete_vault,
    "CreateBackupPlan": _create_plan,
    "UpdateBackupPlan": _update_plan,
    "GetBackupPlan": _get_plan,
    "DeleteBackupPlan": _delete_plan,
    "ListBackupPlans": _list_plans,
    "ListBackupPlanVersions": _list_plan_versions,
    "CreateBackupSelection": _create_selection,
    "GetBackupSelection": _get_selection,
    "DeleteBackupSelection": _delete_selection,
    "ListBackupSelections": _list_selections,
    "StartBackupJob": _start_backup_job,
    "DescribeBackupJob": _describe_backup_job,
    "ListBackupJobs": _list_backup_jobs,
    "StopBackupJob": _stop_backup_job,
    "ListRecoveryPointsByBackupVault": _list_points_by_vault,
    "ListRecoveryPointsByResource": _list_points_by_resource,
    "DescribeRecoveryPoint": _describe_point,
    "DeleteRecoveryPoint": _delete_point,
    "UpdateRecoveryPointLifecycle": _update_point_lifecycle,
    "StartRestoreJob": _start_restore,
    "DescribeRestoreJob": _describe_restore,
    "ListRestoreJobs": _list_restores,
    "GetSupportedResourceTypes": _supported_types,
    "GetBackupPlanFromJSON": _plan_from_json,
    "ExportBackupPlanTemplate": _export_plan,
    "ListProtectedResources": _list_protected,
    "DescribeProtectedResource": _describe_protected,
    "GetRecoveryPointRestoreMetadata": _restore_metadata,
    "GetRestoreJobMetadata": _restore_job_metadata,
    "ListRestoreJobsByProtectedResource": _restores_by_resource,
}
OPERATIONS.update(ops_governance.OPERATIONS)
OPERATIONS.update(ops_notifications.OPERATIONS)
OPERATIONS.update(ops_reports.OPERATIONS)
