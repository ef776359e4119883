"""Vault locks, vault access policies and legal holds: what keeps recovery points from being deleted or changed.

Where each protection is enforced:

* Vault Lock: DeleteRecoveryPoint, UpdateRecoveryPointLifecycle and DeleteBackupVault (core, through the checks
  below), backup jobs in their first step (engine.backup), never the retention sweep: the lifecycle still expires
  points on time.
* Legal holds: DeleteRecoveryPoint, UpdateRecoveryPointLifecycle (no shortening) and the retention sweep.
* Access policies: every API request on a vault or on a recovery point in it (`enforce_vault_access_policy`,
  called by the API's dispatcher). The CLI in local mode works on the catalog directly, as the account root
  would, and is not subject to them; against a server it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from snapkeep.catalog import governance as gov
from snapkeep.catalog.store import Row
from snapkeep.domain import arn as arns
from snapkeep.domain import legal_holds as holds
from snapkeep.domain import vault_policy
from snapkeep.domain.errors import (
    AccessDenied,
    AlreadyExists,
    InvalidRequest,
    MissingParameterValue,
    ResourceNotFound,
)
from snapkeep.domain.vaults import (
    check_delete_against_lock,
    check_lifecycle_against_lock,
    check_lock_change,
    describe_lock,
    lock_from_request,
    lock_mode,
    validate_vault_name,
)
from snapkeep.service.base import ServiceBase

# The account root may always read and delete a vault's access policy, whatever it says, as the AWS account root
# may an S3 bucket policy: a policy denying everyone cannot lock a vault away for good. Nothing else is exempt.
ROOT_EXEMPT_OPERATIONS = frozenset({"GetBackupVaultAccessPolicy", "DeleteBackupVaultAccessPolicy"})


@lru_cache(maxsize=256)
def _parsed(policy: str) -> vault_policy.VaultPolicy:
    return vault_policy.parse_policy(policy)


class GovernanceOperations(ServiceBase):
    # -- Vault Lock ------------------------------------------------------------------------------------------
    def put_backup_vault_lock_configuration(
        self,
        name: str,
        min_retention_days: int | None = None,
        max_retention_days: int | None = None,
        changeable_for_days: int | None = None,
    ) -> None:
        """Set or replace the lock; refused once a compliance-mode lock has reached its lock date."""
        validate_vault_name(name)
        now = self.clock()
        lock = lock_from_request(min_retention_days, max_retention_days, changeable_for_days, now)
        with self.store.transaction() as conn:
            row = gov.lock_vault_row(conn, name)
            check_lock_change(gov.vault_lock(row), now)
            gov.set_vault_lock(conn, name, lock)

    def delete_backup_vault_lock_configuration(self, name: str) -> None:
        """Remove the lock (governance mode, or compliance mode before its lock date); no lock is no error."""
        validate_vault_name(name)
        now = self.clock()
        with self.store.transaction() as conn:
            row = gov.lock_vault_row(conn, name)
            check_lock_change(gov.vault_lock(row), now)
            gov.set_vault_lock(conn, name, None)

    def _check_vault_deletable(self, vault: Row) -> None:
        """AWS: "Vaults locked in compliance mode cannot be deleted once the cooling-off period expires"; a vault
        under a governance-mode lock (or still cooling off) may be, once it is empty."""
        lock = gov.vault_lock(vault)
        now = self.clock()
        if lock is not None and lock_mode(lock, now) == "COMPLIANCE":
            raise InvalidRequest(
                f"BackupVaultName: backup vault '{vault['name']}' is protected by {describe_lock(lock, now)} and can "
                "never be deleted", field="BackupVaultName")

    def _check_point_deletable(self, conn: Any, point: Row) -> None:
        """DeleteRecoveryPoint's guards: the vault's lock, then the point's active legal holds."""
        vault = gov.lock_vault_row(conn, point["backup_vault_name"], shared=True)
        check_delete_against_lock(gov.vault_lock(vault), vault["name"], self.clock())
        holds.check_deletable(gov.active_holds_on(conn, point["recovery_point_arn"]), point["recovery_point_arn"])

    def _check_point_lifecycle(self, conn: Any, point: Row, new_delete_after_days: int | None,
                               new_delete_at: datetime | None) -> None:
        """UpdateRecoveryPointLifecycle's guards: the vault's lock, then the point's active legal holds."""
        vault = gov.lock_vault_row(conn, point["backup_vault_name"], shared=True)
        old_days = (point["lifecycle"] or {}).get("DeleteAfterDays")
        check_lifecycle_against_lock(gov.vault_lock(vault), vault["name"], old_days, new_delete_after_days,
                                     self.clock())
        holds.check_lifecycle_change(gov.active_holds_on(conn, point["recovery_point_arn"]), point["delete_at"],
                                     new_delete_at)

    # -- access policies -------------------------------------------------------------------------------------
    def put_backup_vault_access_policy(self, name: str, policy: str | None) -> None:
        validate_vault_name(name)
        vault_policy.parse_policy(policy)
        with self.store.transaction() as conn:
            gov.lock_vault_row(conn, name)
            gov.set_access_policy(conn, name, policy)

    def get_backup_vault_access_policy(self, name: str) -> dict[str, Any]:
        validate_vault_name(name)
        with self.store.transaction() as conn:
            row = self.store.get_vault(conn, name)
        if not row["access_policy"]:
            raise ResourceNotFound(f"backup vault '{name}' has no access policy", field="BackupVaultName")
        return {"BackupVaultName": name, "BackupVaultArn": row["arn"], "Policy": row["access_policy"]}

    def delete_backup_vault_access_policy(self, name: str) -> None:
        """Remove the policy; a vault without one is left as it is."""
        validate_vault_name(name)
        with self.store.transaction() as conn:
            gov.lock_vault_row(conn, name)
            gov.set_access_policy(conn, name, None)

    def enforce_vault_access_policy(self, operation: str, params: Mapping[str, Any], *, user_name: str,
                                    root: bool = False) -> None:
        """Raise AccessDenied when a Deny statement of the access policy of a vault the request acts on applies.

        A request acts on the vault named by BackupVaultName, and on a recovery point named by RecoveryPointArn
        (or ResourceArn) together with the vault holding it; a vault ResourceArn names that vault. Requests naming
        no vault (ListBackupVaults, legal holds, plans...) are not subject to vault policies, nor is a vault that
        does not exist (the operation answers ResourceNotFound itself). `root` (the account's bootstrap admin)
        is exempt only from ROOT_EXEMPT_OPERATIONS.
        """
        if root and operation in ROOT_EXEMPT_OPERATIONS:
            return
        targets: dict[str, list[str]] = {}
        with self.store.transaction() as conn:
            vault_name = params.get("BackupVaultName")
            if isinstance(vault_name, str):
                targets.setdefault(vault_name, []).append(arns.vault_arn(self.region, self.account_id, vault_name))
            for key in ("RecoveryPointArn", "ResourceArn"):
                value = params.get(key)
                if not isinstance(value, str):
                    continue
                point = self.store.get_recovery_point_any(conn, value)
                if point is not None:
                    vault = point["backup_vault_name"]
                    targets.setdefault(vault, []).extend(
                        [arns.vault_arn(self.region, self.account_id, vault), value])
                elif value.startswith(f"arn:aws:backup:{self.region}:{self.account_id}:backup-vault:"):
                    vault = value.rsplit(":", 1)[1]
                    targets.setdefault(vault, []).append(value)
            policies = {}
            for vault in targets:
                try:
                    policy = self.store.get_vault(conn, vault)["access_policy"]
                except ResourceNotFound:
                    continue
                if policy:
                    policies[vault] = policy
        principal = f"arn:aws:iam::{self.account_id}:user/{user_name}"
        action = f"backup:{operation}"
        for vault, policy in policies.items():
            resources = tuple(dict.fromkeys(targets[vault]))
            context = vault_policy.RequestContext(principal, self.account_id, user_name, action, resources)
            denied = vault_policy.explicit_deny(_parsed(policy), context)
            if denied is not None:
                raise AccessDenied(
                    f"User: {principal} is not authorized to perform: {action} on resource: {resources[-1]} with an "
                    f"explicit deny in the access policy of backup vault '{vault}' ({denied.name})")

    # -- legal holds -----------------------------------------------------------------------------------------
    def create_legal_hold(
        self,
        title: str | None,
        description: str | None,
        *,
        idempotency_token: str | None = None,
        recovery_point_selection: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Hold every recovery point matching the selection now; a repeated IdempotencyToken changes nothing."""
        title, description = holds.validate_hold_text(title, description)
        now = self.clock()
        with self.store.transaction() as conn:
            if idempotency_token:
                existing = gov.find_legal_hold_by_token(conn, idempotency_token)
                if existing is not None:
                    return self._hold_out(existing, summary=True)
            selection = holds.selection_from_request(
                recovery_point_selection, now, (v["name"] for v in self.store.list_vaults(conn)))
            holds.check_hold_limit(gov.count_active_holds(conn))
            picked = [
                p["recovery_point_arn"]
                for p in gov.lock_live_points(conn)
                if holds.selects(selection, holds.PointFacts(p["recovery_point_arn"], p["backup_vault_name"],
                                                             p["resource_arn"], p["resource_type"],
                                                             p["creation_date"]))
            ]
            hold_id = str(uuid.uuid4())
            values = {
                "legal_hold_id": hold_id,
                "arn": f"arn:aws:backup:{self.region}:{self.account_id}:legal-hold:{hold_id}",
                "title": title,
                "description": description,
                "status": "ACTIVE",
                "idempotency_token": idempotency_token or None,
                "recovery_point_selection": holds.selection_to_json(selection),
                "tags": dict(tags or {}),
                "creation_date": now,
            }
            try:
                gov.insert_legal_hold(conn, values, picked)
            except AlreadyExists:
                # A concurrent request with the same IdempotencyToken won the race: answer with its hold.
                winner = gov.find_legal_hold_by_token(conn, idempotency_token) if idempotency_token else None
                if winner is None:
                    raise
                return self._hold_out(winner, summary=True)
            return self._hold_out(gov.get_legal_hold(conn, hold_id), summary=True)

    def _retained_hold(self, conn: Any, legal_hold_id: str) -> Row:
        if not legal_hold_id:
            raise MissingParameterValue("LegalHoldId: is required", field="LegalHoldId")
        row = gov.get_legal_hold(conn, legal_hold_id)
        if not holds.record_retained(row["retain_record_until"], self.clock()):
            raise ResourceNotFound(f"legal hold '{legal_hold_id}' not found", field="LegalHoldId")
        return row

    def get_legal_hold(self, legal_hold_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            return self._hold_out(self._retained_hold(conn, legal_hold_id))

    def list_legal_holds(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self.store.transaction() as conn:
            rows = gov.list_legal_holds(conn)
        return [
            {k: v for k, v in self._hold_out(r).items() if k in _LIST_MEMBERS}
            for r in rows
            if holds.record_retained(r["retain_record_until"], now)
        ]

    def cancel_legal_hold(self, legal_hold_id: str, cancel_description: str | None,
                          retain_record_in_days: int | None = None) -> None:
        """Release the hold's recovery points: their lifecycle applies again from the next retention sweep."""
        if cancel_description is None or not str(cancel_description).strip():
            raise MissingParameterValue("CancelDescription: is required", field="CancelDescription")
        now = self.clock()
        until = holds.retain_record_until(now, retain_record_in_days)
        with self.store.transaction() as conn:
            row = self._retained_hold(conn, legal_hold_id)
            holds.check_cancel(row["status"], legal_hold_id)
            gov.update_legal_hold(conn, legal_hold_id, {
                "status": "CANCELED",
                "cancel_description": cancel_description,
                "cancellation_date": now,
                "retain_record_until": until,
            })

    def list_recovery_points_by_legal_hold(self, legal_hold_id: str) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            self._retained_hold(conn, legal_hold_id)
            points = gov.points_of_hold(conn, legal_hold_id)
        return [
            {
                "RecoveryPointArn": p["recovery_point_arn"],
                "ResourceArn": p["resource_arn"],
                "ResourceType": p["resource_type"],
                "BackupVaultName": p["backup_vault_name"],
            }
            for p in points
        ]

    @staticmethod
    def _hold_out(row: Row, summary: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Title": row["title"],
            "Status": row["status"],
            "Description": row["description"],
            "LegalHoldId": row["legal_hold_id"],
            "LegalHoldArn": row["arn"],
            "CreationDate": row["creation_date"],
            "RecoveryPointSelection": holds.selection_to_aws(
                holds.selection_from_json(row["recovery_point_selection"])),
        }
        if not summary:
            for key, column in (("CancelDescription", "cancel_description"),
                                ("CancellationDate", "cancellation_date"),
                                ("RetainRecordUntil", "retain_record_until")):
                if row[column] is not None:
                    out[key] = row[column]
        return out


_LIST_MEMBERS = frozenset({"Title", "Status", "Description", "LegalHoldId", "LegalHoldArn", "CreationDate",
                           "CancellationDate"})
