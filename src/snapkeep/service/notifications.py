"""Backup vault notifications: which vault events are published to which SNS topic.

The configuration lives on the vault (notification_topic_arn, notification_events); the events themselves are
written to the outbox by the catalog as jobs and recovery points change (catalog.events) and published by the
workers (engine.notify). Events recorded while a vault was subscribed are still delivered after its notifications
are changed or deleted, to the topic they were recorded for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snapkeep.domain.errors import ResourceNotFound
from snapkeep.domain.notifications import validate_topic_arn, validate_vault_events
from snapkeep.service.base import ServiceBase, require


class NotificationOperations(ServiceBase):
    def put_backup_vault_notifications(self, name: str, topic_arn: str, vault_events: Sequence[str] | None) -> None:
        """Replace the vault's notifications (AWS semantics: the call is idempotent, the last one wins)."""
        require(name, "BackupVaultName")
        wanted = validate_vault_events(vault_events)
        with self.store.transaction() as conn:
            self.store.get_vault(conn, name)
            reachable = {self.account_id} | {a["account_id"] for a in self.store.list_accounts(conn)}
            topic = validate_topic_arn(topic_arn, reachable)
            self.store.update_vault(
                conn, name, {"notification_topic_arn": str(topic), "notification_events": wanted}
            )

    def get_backup_vault_notifications(self, name: str) -> dict[str, Any]:
        require(name, "BackupVaultName")
        with self.store.transaction() as conn:
            vault = self.store.get_vault(conn, name)
        if not vault["notification_topic_arn"]:
            raise ResourceNotFound(
                f"backup vault '{name}' has no notifications (set them with PutBackupVaultNotifications)",
                field="BackupVaultName",
            )
        return {
            "BackupVaultName": vault["name"],
            "BackupVaultArn": vault["arn"],
            "SNSTopicArn": vault["notification_topic_arn"],
            "BackupVaultEvents": list(vault["notification_events"] or []),
        }

    def delete_backup_vault_notifications(self, name: str) -> None:
        """Stop notifying; a vault without notifications is left as it is (the call is idempotent, as in AWS)."""
        require(name, "BackupVaultName")
        with self.store.transaction() as conn:
            self.store.get_vault(conn, name)
            self.store.update_vault(conn, name, {"notification_topic_arn": None, "notification_events": None})
