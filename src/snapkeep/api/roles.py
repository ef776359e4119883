"""Who may call which AWS Backup operation: three roles over an explicit table of every operation.

- viewer: read operations only: every Get*, List*, Describe* and Export* operation (three of them are POSTs:
  GetBackupPlanFromJSON, ListBackupAccessPointsByRecoveryPoint, ListBackupAccessPointsByResource).
- operator: everything a viewer may, and day-to-day changes: plans, selections, vaults, jobs, restores, copies,
  tags, legal holds (placing one only protects), notifications, audit frameworks and reports, restore testing,
  tiering, index settings.
- admin: everything. Admin-only are the operations that destroy recovery points or can shorten their
  retention, weaken the protection of a vault (vault lock, access policy, legal hold release, multi-party
  approval), grant or revoke access to backup data, or change account-wide settings; `ADMIN_ONLY` lists each
  with the reason.

Operations not in the table are refused for every role: a new AWS Backup operation must be classified here first.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from snapkeep.domain.errors import AccessDenied, InvalidParameterValue


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class Access(StrEnum):
    """The least role an operation needs."""

    READ = "read"  # viewer
    WRITE = "write"  # operator
    ADMIN = "admin"  # admin


READ_PREFIXES = ("Get", "List", "Describe", "Export")

# Admin-only operations and why.
ADMIN_ONLY: Mapping[str, str] = MappingProxyType(
    {
        "DeleteRecoveryPoint": "it deletes a recovery point",
        "UpdateRecoveryPointLifecycle": "it can shorten a recovery point's retention",
        "DisassociateRecoveryPoint": "it deletes a continuous recovery point from its vault",
        "DisassociateRecoveryPointFromParent": "it removes a recovery point from its composite recovery point",
        "DeleteBackupVault": "it deletes a backup vault",
        "PutBackupVaultLockConfiguration": "it changes a vault lock",
        "DeleteBackupVaultLockConfiguration": "it removes a vault lock",
        "CancelLegalHold": "it releases recovery points from a legal hold",
        "PutBackupVaultAccessPolicy": "it changes who may use a backup vault",
        "DeleteBackupVaultAccessPolicy": "it removes the access policy protecting a backup vault",
        "AssociateBackupVaultMpaApprovalTeam": "it changes the multi-party approval guarding a vault",
        "DisassociateBackupVaultMpaApprovalTeam": "it removes the multi-party approval guarding a vault",
        "CreateRestoreAccessBackupVault": "it grants restore access to a logically air-gapped vault",
        "RevokeRestoreAccessBackupVault": "it revokes restore access to a logically air-gapped vault",
        "CreateBackupAccessPoint": "it grants direct access to backup data",
        "DeleteBackupAccessPoint": "it removes an access point to backup data",
        "UpdateGlobalSettings": "it changes account-wide settings",
        "UpdateRegionSettings": "it changes which resource types may be protected in the region",
    }
)

_READ = (
    "DescribeBackupAccessPoint", "DescribeBackupJob", "DescribeBackupVault", "DescribeCopyJob", "DescribeFramework",
    "DescribeGlobalSettings", "DescribeProtectedResource", "DescribeRecoveryPoint", "DescribeRegionSettings",
    "DescribeReportJob", "DescribeReportPlan", "DescribeRestoreJob", "DescribeScanJob", "ExportBackupPlanTemplate",
    "GetBackupPlan", "GetBackupPlanFromJSON", "GetBackupPlanFromTemplate", "GetBackupSelection",
    "GetBackupVaultAccessPolicy", "GetBackupVaultNotifications", "GetLegalHold", "GetPITRMalwareScanResults",
    "GetRecoveryPointIndexDetails", "GetRecoveryPointRestoreMetadata", "GetRestoreJobMetadata",
    "GetRestoreTestingInferredMetadata", "GetRestoreTestingPlan", "GetRestoreTestingSelection",
    "GetSupportedResourceTypes", "GetTieringConfiguration", "ListBackupAccessPoints",
    "ListBackupAccessPointsByRecoveryPoint", "ListBackupAccessPointsByResource", "ListBackupJobSummaries",
    "ListBackupJobs", "ListBackupPlanTemplates", "ListBackupPlanVersions", "ListBackupPlans",
    "ListBackupSelections", "ListBackupVaults", "ListCopyJobSummaries", "ListCopyJobs", "ListFrameworks",
    "ListIndexedRecoveryPoints", "ListLegalHolds", "ListProtectedResources", "ListProtectedResourcesByBackupVault",
    "ListRecoveryPointsByBackupVault", "ListRecoveryPointsByLegalHold", "ListRecoveryPointsByResource",
    "ListReportJobs", "ListReportPlans", "ListRestoreAccessBackupVaults", "ListRestoreJobSummaries",
    "ListRestoreJobs", "ListRestoreJobsByProtectedResource", "ListRestoreTestingPlans",
    "ListRestoreTestingSelections", "ListScanJobSummaries", "ListScanJobs", "ListTags", "ListTieringConfigurations",
)

_WRITE = (
    "CreateBackupPlan", "CreateBackupSelection", "CreateBackupVault", "CreateFramework", "CreateLegalHold",
    "CreateLogicallyAirGappedBackupVault", "CreateReportPlan", "CreateRestoreTestingPlan",
    "CreateRestoreTestingSelection", "CreateTieringConfiguration", "DeleteBackupPlan", "DeleteBackupSelection",
    "DeleteBackupVaultNotifications", "DeleteFramework", "DeleteReportPlan", "DeleteRestoreTestingPlan",
    "DeleteRestoreTestingSelection", "DeleteTieringConfiguration", "PutBackupVaultNotifications",
    "PutRestoreValidationResult", "StartBackupJob", "StartCopyJob", "StartReportJob", "StartRestoreJob",
    "StartScanJob", "StopBackupJob", "TagResource", "UntagResource", "UpdateBackupPlan", "UpdateFramework",
    "UpdateRecoveryPointIndexSettings", "UpdateReportPlan", "UpdateRestoreTestingPlan",
    "UpdateRestoreTestingSelection", "UpdateTieringConfiguration",
)

# Every operation of AWS Backup (botocore's model, API version 2018-11-15) and the least role it needs.
OPERATIONS: Mapping[str, Access] = MappingProxyType(
    {
        **dict.fromkeys(_READ, Access.READ),
        **dict.fromkeys(_WRITE, Access.WRITE),
        **dict.fromkeys(ADMIN_ONLY, Access.ADMIN),
    }
)

_ALLOWED: Mapping[Role, frozenset[Access]] = MappingProxyType(
    {
        Role.VIEWER: frozenset({Access.READ}),
        Role.OPERATOR: frozenset({Access.READ, Access.WRITE}),
        Role.ADMIN: frozenset({Access.READ, Access.WRITE, Access.ADMIN}),
    }
)

_LEAST_ROLE: Mapping[Access, Role] = MappingProxyType(
    {Access.READ: Role.VIEWER, Access.WRITE: Role.OPERATOR, Access.ADMIN: Role.ADMIN}
)


def parse_role(value: str, *, field: str = "Role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidParameterValue(
            f"{field}: must be one of admin, operator, viewer, got '{value}'", field=field
        ) from None


def required_role(operation_name: str) -> Role | None:
    """The least role that may call the operation; None for a name that is no AWS Backup operation."""
    access = OPERATIONS.get(operation_name)
    return None if access is None else _LEAST_ROLE[access]


def is_allowed(role: Role, operation_name: str) -> bool:
    access = OPERATIONS.get(operation_name)
    return access is not None and access in _ALLOWED[Role(role)]


def authorize(role: Role, operation_name: str, *, user_name: str | None = None) -> None:
    """Raise AccessDenied unless `role` may call `operation_name`; the message names the action and the role."""
    role = Role(role)
    if is_allowed(role, operation_name):
        return
    who = f"User {user_name} (role {role})" if user_name else f"Role {role}"
    action = f"backup:{operation_name}"
    access = OPERATIONS.get(operation_name)
    if access is None:
        why = "it is not an operation of AWS Backup"
    elif access is Access.ADMIN:
        why = f"only role admin may, because {ADMIN_ONLY[operation_name]}"
    else:
        why = "role viewer may only call read operations (Get*, List*, Describe*, Export*); it needs role operator"
    raise AccessDenied(f"{who} is not authorized to perform: {action}: {why}")
