"""Backup vault notification operations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.api.handler import Handler
from snapkeep.service import BackupService


def _put(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.put_backup_vault_notifications(p["BackupVaultName"], p.get("SNSTopicArn", ""), p.get("BackupVaultEvents"))
    return {}


def _get(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return svc.get_backup_vault_notifications(p["BackupVaultName"])


def _delete(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.delete_backup_vault_notifications(p["BackupVaultName"])
    return {}


OPERATIONS: dict[str, Handler] = {
    "PutBackupVaultNotifications": _put,
    "GetBackupVaultNotifications": _get,
    "DeleteBackupVaultNotifications": _delete,
}
