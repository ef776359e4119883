"""Vault lock, vault access policy and legal hold operations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.api.handler import Handler, paginate
from snapkeep.service import BackupService


def _put_lock(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.put_backup_vault_lock_configuration(
        p["BackupVaultName"], p.get("MinRetentionDays"), p.get("MaxRetentionDays"), p.get("ChangeableForDays")
    )
    return {}


def _delete_lock(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_backup_vault_lock_configuration(p["BackupVaultName"])
    return {}


def _put_policy(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.put_backup_vault_access_policy(p["BackupVaultName"], p.get("Policy"))
    return {}


def _get_policy(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_backup_vault_access_policy(p["BackupVaultName"])


def _delete_policy(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_backup_vault_access_policy(p["BackupVaultName"])
    return {}


def _create_hold(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.create_legal_hold(
        p.get("Title"),
        p.get("Description"),
        idempotency_token=p.get("IdempotencyToken"),
        recovery_point_selection=p.get("RecoveryPointSelection"),
        tags=p.get("Tags"),
    )


def _get_hold(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_legal_hold(p["LegalHoldId"])


def _list_holds(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_legal_holds(), p, "LegalHolds")


def _cancel_hold(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.cancel_legal_hold(p["LegalHoldId"], p.get("CancelDescription"), p.get("RetainRecordInDays"))
    return {}


def _points_by_hold(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return paginate(svc.list_recovery_points_by_legal_hold(p["LegalHoldId"]), p, "RecoveryPoints")


OPERATIONS: dict[str, Handler] = {
    "PutBackupVaultLockConfiguration": _put_lock,
    "DeleteBackupVaultLockConfiguration": _delete_lock,
    "PutBackupVaultAccessPolicy": _put_policy,
    "GetBackupVaultAccessPolicy": _get_policy,
    "DeleteBackupVaultAccessPolicy": _delete_policy,
    "CreateLegalHold": _create_hold,
    "GetLegalHold": _get_hold,
    "ListLegalHolds": _list_holds,
    "CancelLegalHold": _cancel_hold,
    "ListRecoveryPointsByLegalHold": _points_by_hold,
}
