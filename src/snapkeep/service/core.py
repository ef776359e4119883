"""The operations of AWS Backup over the catalog, in its request and response shapes.

The CLI calls these in local mode, and the AWS Backup-compatible API will serve them; validation lives in the
pure domain, the catalog is the source of truth, and anything slow is queued for the workers.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from snapkeep.catalog import governance as gov
from snapkeep.catalog import reports
from snapkeep.catalog.store import Row
from snapkeep.domain import arn as arns
from snapkeep.domain.clock import iso_z
from snapkeep.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidParameterValue,
    InvalidRequest,
    MissingParameterValue,
    ResourceNotFound,
)
from snapkeep.domain.job_reports import (
    AGGREGATE_ALL,
    ANY,
    backup_job_filter,
    check_opted_in,
    decode_job_cursor,
    effective_region_settings,
    encode_job_cursor,
    message_category,
)
from snapkeep.domain.jobs import BackupJobState, RestoreJobStatus, check_stoppable
from snapkeep.domain.plans import lifecycle_from_aws_json, lifecycle_to_aws_json, plan_from_aws_json, plan_to_aws_json
from snapkeep.domain.restore_metadata import (
    IOPS_VOLUME_TYPES,
    THROUGHPUT_VOLUME_TYPES,
    restore_source,
    validate_restore_metadata,
)
from snapkeep.domain.retention import RetentionLifecycle, calculated_lifecycle, validate_lifecycle_change
from snapkeep.domain.selection import selection_from_aws_json, selection_to_aws_json
from snapkeep.domain.tags import validate_tags
from snapkeep.domain.vaults import validate_vault_name
from snapkeep.engine.queue import TaskQueue
from snapkeep.engine.restore import check_volume_request, pick_volume
from snapkeep.engine.runs import backup_resource_type, create_backup_job, new_job_id
from snapkeep.service.base import ServiceBase
from snapkeep.service.base import require as _require
from snapkeep.service.governance import GovernanceOperations
from snapkeep.service.notifications import NotificationOperations
from snapkeep.service.reports import ReportOperations

_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}")


def _check_role_arn(value: str, field: str = "IamRoleArn") -> arns.Arn:
    """The parsed ARN of an IAM role, or InvalidParameterValue naming `field`."""
    role = arns.Arn.parse(value, field=field)
    if role.service != "iam" or not role.resource.startswith("role/"):
        raise InvalidParameterValue(
            f"{field}: '{value}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", field=field
        )
    return role


def _version_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8]).decode().rstrip("=").replace("/", "A")


def _instance_restore_metadata(row: Row) -> dict[str, str]:
    """StartRestoreJob's EC2 keys with the backed-up instance's values."""
    config = row["instance"] or {}
    meta: dict[str, str] = {}
    for key in ("InstanceType", "SubnetId", "VpcId", "KeyName"):
        if config.get(key):
            meta[key] = str(config[key])
    if config.get("SecurityGroupIds"):
        meta["SecurityGroupIds"] = json.dumps(config["SecurityGroupIds"])
    placement = {
        k: v
        for k, v in (("AvailabilityZone", config.get("AvailabilityZone")), ("Tenancy", config.get("Tenancy")))
        if v
    }
    if placement:
        meta["Placement"] = json.dumps(placement)
    meta["EbsOptimized"] = "true" if config.get("EbsOptimized") else "false"
    if config.get("IamInstanceProfileArn"):
        meta["IamInstanceProfileName"] = "UseBackedUpValue"
    return meta


def _volume_restore_metadata(row: Row) -> dict[str, str]:
    """StartRestoreJob's EBS keys with the backed-up volume's values; only keys StartRestoreJob would accept back
    (iops for io1/io2/gp3, throughput for gp3, kmsKeyId when encrypted)."""
    volume = (row["volumes"] or [{}])[0]
    meta: dict[str, str] = {"encrypted": "true" if volume.get("Encrypted") else "false"}
    for key, source in (("availabilityZone", "AvailabilityZone"), ("volumeType", "VolumeType"),
                        ("volumeSize", "VolumeSize")):
        if volume.get(source):
            meta[key] = str(volume[source])
    if volume.get("Iops") and volume.get("VolumeType") in IOPS_VOLUME_TYPES:
        meta["iops"] = str(volume["Iops"])
    if volume.get("Throughput") and volume.get("VolumeType") in THROUGHPUT_VOLUME_TYPES:
        meta["throughput"] = str(volume["Throughput"])
    if volume.get("Encrypted") and volume.get("KmsKeyId"):
        meta["kmsKeyId"] = str(volume["KmsKeyId"])
    return meta


class BackupService(GovernanceOperations, NotificationOperations, ReportOperations, ServiceBase):
    """Every operation; the areas beyond vaults, plans, jobs, recovery points and restores live in their mixins."""

    # -- protected accounts ------------------------------------------------------------------------------
    def put_protected_account(self, account_id: str, regions: list[str], role_arn: str | None = None) -> dict[str, Any]:
        if not (len(account_id) == 12 and account_id.isdigit()):
            raise InvalidParameterValue(
                f"AccountId: '{account_id}' is not a 12-digit AWS account id", field="AccountId"
            )
        if not regions:
            raise MissingParameterValue("Regions: at least one region is required", field="Regions")
        for region in regions:
            if not _REGION.fullmatch(region):
                raise InvalidParameterValue(
                    f"Regions: '{region}' is not an AWS region name (like eu-west-1)", field="Regions"
                )
        if role_arn is not None:
            role = _check_role_arn(role_arn, field="RoleArn")
            if role.account != account_id:
                raise InvalidParameterValue(
                    f"RoleArn: the role belongs to account {role.account}, not {account_id}", field="RoleArn"
                )
        with self.store.transaction() as conn:
            self.store.put_account(conn, account_id, role_arn, sorted(set(regions)), self.clock())
        return {"AccountId": account_id, "Regions": sorted(set(regions)), "RoleArn": role_arn}

    def list_protected_accounts(self) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            return [
                {"AccountId": a["account_id"], "Regions": a["regions"], "RoleArn": a["role_arn"]}
                for a in self.store.list_accounts(conn)
            ]

    # -- vaults --------------------------------------------------------------------------------------------
    def create_backup_vault(
        self,
        name: str,
        tags: Mapping[str, str] | None = None,
        encryption_key_arn: str | None = None,
        creator_request_id: str | None = None,
    ) -> dict[str, Any]:
        validate_vault_name(_require(name, "BackupVaultName"))
        if encryption_key_arn:
            key = arns.Arn.parse(encryption_key_arn, field="EncryptionKeyArn")
            if key.service != "kms":
                raise InvalidParameterValue("EncryptionKeyArn: must be a KMS key ARN", field="EncryptionKeyArn")
        now = self.clock()
        vault_arn = arns.vault_arn(self.region, self.account_id, name)
        with self.store.transaction() as conn:
            self.store.insert_vault(
                conn,
                {
                    "name": name,
                    "arn": vault_arn,
                    "encryption_key_arn": encryption_key_arn,
                    "creator_request_id": creator_request_id,
                    "tags": validate_tags(tags, field="BackupVaultTags"),
                    "creation_date": now,
                },
            )
        return {"BackupVaultName": name, "BackupVaultArn": vault_arn, "CreationDate": now}

    def describe_backup_vault(self, name: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_vault(conn, name)
            count = self.store.count_recovery_points(conn, name)
        return self._vault_out(row, count)

    def list_backup_vaults(self) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            return [
                self._vault_out(v, self.store.count_recovery_points(conn, v["name"]))
                for v in self.store.list_vaults(conn)
            ]

    def delete_backup_vault(self, name: str) -> None:
        with self.store.transaction() as conn:
            self._check_vault_deletable(self.store.get_vault(conn, name))
            count = self.store.count_recovery_points(conn, name)
            if self.store.live_jobs_for_vault(conn, name):
                raise InvalidRequest(
                    f"Backup vault '{name}' cannot be deleted while backup jobs into it are running",
                    field="BackupVaultName",
                )
            if count:
                raise InvalidRequest(
                    f"Backup vault '{name}' cannot be deleted because it contains {count} recovery points",
                    field="BackupVaultName",
                )
            self.store.delete_vault(conn, name)

    @staticmethod
    def _vault_out(row: Row, count: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "BackupVaultName": row["name"],
            "BackupVaultArn": row["arn"],
            "VaultType": "BACKUP_VAULT",
            "CreationDate": row["creation_date"],
            "NumberOfRecoveryPoints": count,
            "Locked": row["locked"],
        }
        # The lock's settings, shown while a lock is set (LockDate only for a compliance-mode lock).
        for key, column in (("MinRetentionDays", "lock_min_retention_days"),
                            ("MaxRetentionDays", "lock_max_retention_days"), ("LockDate", "lock_date")):
            if row["locked"] and row[column] is not None:
                out[key] = row[column]
        if row["encryption_key_arn"]:
            out["EncryptionKeyArn"] = row["encryption_key_arn"]
        if row["creator_request_id"]:
            out["CreatorRequestId"] = row["creator_request_id"]
        return out

    # -- plans ---------------------------------------------------------------------------------------------
    def create_backup_plan(
        self, plan_json: Mapping[str, Any], tags: Mapping[str, str] | None = None, creator_request_id: str | None = None
    ) -> dict[str, Any]:
        plan = plan_from_aws_json(plan_json)
        now = self.clock()
        plan_id = str(uuid.uuid4())
        version_id = _version_id()
        stored = plan_to_aws_json(plan)
        with self.store.transaction() as conn:
            if self.store.find_plan_by_name(conn, plan.backup_plan_name) is not None:
                raise AlreadyExists(
                    f"a backup plan named '{plan.backup_plan_name}' already exists", field="BackupPlanName"
                )
            self._check_vaults(conn, stored)
            self._seed_cursors(conn, plan_id, stored, now)
            self.store.insert_plan(
                conn,
                {
                    "plan_id": plan_id,
                    "arn": arns.plan_arn(self.region, self.account_id, plan_id),
                    "name": plan.backup_plan_name,
                    "version_id": version_id,
                    "plan": stored,
                    "creator_request_id": creator_request_id,
                    "tags": validate_tags(tags, field="BackupPlanTags"),
                    "creation_date": now,
                },
            )
        return {
            "BackupPlanId": plan_id,
            "BackupPlanArn": arns.plan_arn(self.region, self.account_id, plan_id),
            "CreationDate": now,
            "VersionId": version_id,
        }

    def _check_vaults(self, conn: Any, plan_json: Mapping[str, Any]) -> None:
        for index, rule in enumerate(plan_json["Rules"]):
            try:
                self.store.get_vault(conn, rule["TargetBackupVaultName"])
            except Exception as exc:
                raise InvalidParameterValue(
                    f"Rules[{index}].TargetBackupVaultName: backup vault '{rule['TargetBackupVaultName']}' "
                    "does not exist",
                    field=f"Rules[{index}].TargetBackupVaultName",
                ) from exc

    def _seed_cursors(
        self,
        conn: Any,
        plan_id: str,
        plan_json: Mapping[str, Any],
        now: datetime,
        previous: Mapping[str, Any] | None = None,
    ) -> None:
        """A rule is scheduled from the moment it (re)appears in the plan: it never catches up on runs from before."""
        before = {r["RuleName"] for r in (previous or {}).get("Rules", [])}
        for rule in plan_json["Rules"]:
            if rule["RuleName"] not in before:
                self.store.set_rule_cursor(conn, plan_id, rule["RuleName"], now)

    def update_backup_plan(self, plan_id: str, plan_json: Mapping[str, Any]) -> dict[str, Any]:
        plan = plan_from_aws_json(plan_json)
        now = self.clock()
        version_id = _version_id()
        stored = plan_to_aws_json(plan)
        with self.store.transaction() as conn:
            row = self.store.get_plan(conn, plan_id)
            other = self.store.find_plan_by_name(conn, plan.backup_plan_name)
            if other is not None and other["plan_id"] != plan_id:
                raise AlreadyExists(
                    f"a backup plan named '{plan.backup_plan_name}' already exists", field="BackupPlanName"
                )
            self._check_vaults(conn, stored)
            self._seed_cursors(conn, plan_id, stored, now, row["plan"])
            self.store.add_plan_version(conn, plan_id, version_id, stored, now)
        return {
            "BackupPlanId": plan_id,
            "BackupPlanArn": row["arn"],
            "CreationDate": row["creation_date"],
            "VersionId": version_id,
        }

    def get_backup_plan(self, plan_id: str, version_id: str | None = None) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_plan(conn, plan_id, include_deleted=version_id is not None)
            plan = row["plan"]
            if version_id:
                plan = self.store.get_plan_version(conn, plan_id, version_id)["plan"]
        out: dict[str, Any] = {
            "BackupPlan": plan,
            "BackupPlanId": plan_id,
            "BackupPlanArn": row["arn"],
            "VersionId": version_id or row["version_id"],
            "CreationDate": row["creation_date"],
        }
        if row["last_execution_date"]:
            out["LastExecutionDate"] = row["last_execution_date"]
        if row["deletion_date"]:
            out["DeletionDate"] = row["deletion_date"]
        return out

    def list_backup_plans(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            rows = self.store.list_plans(conn, include_deleted=include_deleted)
        return [
            {
                "BackupPlanId": r["plan_id"],
                "BackupPlanArn": r["arn"],
                "BackupPlanName": r["name"],
                "VersionId": r["version_id"],
                "CreationDate": r["creation_date"],
                "LastExecutionDate": r["last_execution_date"],
                "DeletionDate": r["deletion_date"],
            }
            for r in rows
        ]

    def list_backup_plan_versions(self, plan_id: str) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            row = self.store.get_plan(conn, plan_id, include_deleted=True)
            versions = self.store.list_plan_versions(conn, plan_id)
        return [
            {
                "BackupPlanId": plan_id,
                "BackupPlanArn": row["arn"],
                "VersionId": v["version_id"],
                "BackupPlanName": v["plan"]["BackupPlanName"],
                "CreationDate": v["creation_date"],
            }
            for v in versions
        ]

    def delete_backup_plan(self, plan_id: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.transaction() as conn:
            row = self.store.get_plan(conn, plan_id)
            if self.store.list_selections(conn, plan_id):
                raise InvalidRequest(
                    "Related backup plan selections must be deleted prior to backup plan deletion", field="BackupPlanId"
                )
            self.store.update_plan(conn, plan_id, {"deletion_date": now})
        return {
            "BackupPlanId": plan_id,
            "BackupPlanArn": row["arn"],
            "DeletionDate": now,
            "VersionId": row["version_id"],
        }

    # -- selections ----------------------------------------------------------------------------------------
    def create_backup_selection(
        self, plan_id: str, selection_json: Mapping[str, Any], creator_request_id: str | None = None
    ) -> dict[str, Any]:
        selection = selection_from_aws_json(selection_json)
        now = self.clock()
        selection_id = str(uuid.uuid4())
        with self.store.transaction() as conn:
            self.store.get_plan(conn, plan_id)
            if any(s["name"] == selection.selection_name for s in self.store.list_selections(conn, plan_id)):
                raise AlreadyExists(
                    f"a selection named '{selection.selection_name}' already exists in this plan", field="SelectionName"
                )
            self.store.insert_selection(
                conn,
                {
                    "selection_id": selection_id,
                    "plan_id": plan_id,
                    "name": selection.selection_name,
                    "selection": selection_to_aws_json(selection),
                    "creator_request_id": creator_request_id,
                    "creation_date": now,
                },
            )
        return {"SelectionId": selection_id, "BackupPlanId": plan_id, "CreationDate": now}

    def get_backup_selection(self, plan_id: str, selection_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_selection(conn, plan_id, selection_id)
        return {
            "BackupSelection": row["selection"],
            "SelectionId": selection_id,
            "BackupPlanId": plan_id,
            "CreationDate": row["creation_date"],
            "CreatorRequestId": row["creator_request_id"],
        }

    def list_backup_selections(self, plan_id: str) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            self.store.get_plan(conn, plan_id)
            rows = self.store.list_selections(conn, plan_id)
        return [
            {
                "SelectionId": r["selection_id"],
                "SelectionName": r["name"],
                "BackupPlanId": plan_id,
                "CreationDate": r["creation_date"],
                "IamRoleArn": r["selection"]["IamRoleArn"],
            }
            for r in rows
        ]

    def delete_backup_selection(self, plan_id: str, selection_id: str) -> None:
        with self.store.transaction() as conn:
            self.store.delete_selection(conn, plan_id, selection_id)

    # -- backup jobs ---------------------------------------------------------------------------------------
    def start_backup_job(
        self,
        vault: str,
        resource_arn: str,
        iam_role_arn: str,
        *,
        idempotency_token: str | None = None,
        start_window_minutes: int | None = None,
        complete_window_minutes: int | None = None,
        lifecycle: Mapping[str, Any] | None = None,
        recovery_point_tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        arn = arns.Arn.parse(_require(resource_arn, "ResourceArn"))
        resource_type = backup_resource_type(resource_arn)
        _check_role_arn(_require(iam_role_arn, "IamRoleArn"))
        start = 480 if start_window_minutes is None else start_window_minutes
        complete = 10080 if complete_window_minutes is None else complete_window_minutes
        if not 60 <= start <= 52_560_000:
            raise InvalidParameterValue(
                "StartWindowMinutes: must be between 60 and 52560000", field="StartWindowMinutes"
            )
        # AWS: the completion window counts from the scheduled time and "does not add additional time for
        # StartWindowMinutes": it only has to be positive, and longer than an explicitly given start window.
        if not 60 <= complete <= 52_560_000 or (start_window_minutes is not None and complete <= start):
            raise InvalidParameterValue(
                "CompleteWindowMinutes: must be between 60 and 52560000"
                + (f" and longer than StartWindowMinutes ({start})" if start_window_minutes is not None else ""),
                field="CompleteWindowMinutes",
            )
        lifecycle_json = None
        if lifecycle:
            lifecycle_json = lifecycle_to_aws_json(lifecycle_from_aws_json(lifecycle))
        point_tags = validate_tags(recovery_point_tags, field="RecoveryPointTags")
        now = self.clock()
        key = f"token:{idempotency_token}" if idempotency_token else f"ondemand:{new_job_id()}"
        with self.store.transaction() as conn:
            self.store.get_vault(conn, _require(vault, "BackupVaultName"))
            check_opted_in(effective_region_settings(reports.region_settings(conn)), resource_type, resource_arn)
            with_accounts = {a["account_id"] for a in self.store.list_accounts(conn)}
            if arn.account not in with_accounts:
                raise InvalidParameterValue(
                    f"ResourceArn: account {arn.account} is not protected by Snapkeep "
                    "(add it with `snapkeep account add`)",
                    field="ResourceArn",
                )
            job = create_backup_job(
                self.store,
                conn,
                resource_arn=resource_arn,
                vault=vault,
                rule=None,
                scheduled_at=now,
                iam_role_arn=iam_role_arn,
                idempotency_key=key,
                now=now,
                lifecycle=lifecycle_json,
                start_window_minutes=start,
                completion_window_minutes=complete,
                recovery_point_tags=point_tags,
            )
        return {"BackupJobId": job["job_id"], "CreationDate": job["creation_date"], "IsParent": False}

    def describe_backup_job(self, job_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            return self._job_out(self.store.get_job(conn, job_id))

    def list_backup_jobs(self, **filters: Any) -> list[dict[str, Any]]:
        """Every job matching the filters (the keywords of `backup_job_filter`), newest first."""
        return self.list_backup_jobs_page(**filters)[0]

    def list_backup_jobs_page(
        self, *, max_results: int | None = None, next_token: str | None = None, **filters: Any
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ListBackupJobs and the token of the next (None on the last page). Every filter but the
        message category is a WHERE clause; the category is derived from each job's state and message."""
        wanted = backup_job_filter(**filters)
        after = decode_job_cursor(next_token) if next_token else None
        by_category = wanted.message_category not in (None, ANY, AGGREGATE_ALL)
        limit = None if max_results is None or by_category else max_results + 1
        with self.store.transaction() as conn:
            rows = reports.list_backup_jobs(conn, wanted, after=after, limit=limit)
        rows = [r for r in rows if wanted.keeps_category(message_category(r["state"], r["status_message"]))]
        if max_results is None or len(rows) <= max_results:
            return [self._job_out(r) for r in rows], None
        page = rows[:max_results]
        return [self._job_out(r) for r in page], encode_job_cursor(page[-1]["creation_date"], page[-1]["job_id"])

    def stop_backup_job(self, job_id: str) -> None:
        with self.store.transaction() as conn:
            job = self.store.get_job(conn, job_id)
            check_stoppable(BackupJobState(job["state"]))
            # Only flag the job: the worker running it sees the flag at its next write and cleans up itself.
            if not self.store.update_job(
                conn, job_id, {"state": BackupJobState.ABORTING.value}, expect_version=job["version"]
            ):
                raise Conflict("the backup job changed while being stopped; try again", field="BackupJobId")
            TaskQueue.enqueue(conn, "backup", job_id, self.clock())

    def _job_out(self, j: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AccountId": j["account_id"],
            "BackupJobId": j["job_id"],
            "BackupVaultName": j["backup_vault_name"],
            "BackupVaultArn": arns.vault_arn(self.region, self.account_id, j["backup_vault_name"]),
            "ResourceArn": j["resource_arn"],
            "ResourceType": j["resource_type"],
            "State": j["state"],
            "PercentDone": f"{j['percent_done']:.1f}",
            "CreationDate": j["creation_date"],
            "StartBy": j["start_by"],
            "IamRoleArn": j["iam_role_arn"],
            "IsParent": False,
            "BackupSizeInBytes": j["backup_size_bytes"] or 0,
            "VaultType": "BACKUP_VAULT",
        }
        category = message_category(j["state"], j["status_message"])
        if category is not None:
            out["MessageCategory"] = category.value
        if j["lifecycle"]:
            out["RecoveryPointLifecycle"] = j["lifecycle"]
        for key, column in (
            ("StatusMessage", "status_message"),
            ("RecoveryPointArn", "recovery_point_arn"),
            ("CompletionDate", "completion_date"),
            ("ResourceName", "resource_name"),
        ):
            if j[column] is not None:
                out[key] = j[column]
        if j["plan_id"]:
            out["CreatedBy"] = {
                "BackupPlanId": j["plan_id"],
                "BackupPlanVersion": j["plan_version_id"],
                "BackupRuleId": j["rule_name"],
            }
        return out

    # -- recovery points -----------------------------------------------------------------------------------
    def list_recovery_points(self, vault: str | None = None, resource_arn: str | None = None) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            if vault is not None:
                self.store.get_vault(conn, vault)
            return [
                self._rp_out(r) for r in self.store.list_recovery_points(conn, vault=vault, resource_arn=resource_arn)
            ]

    def describe_recovery_point(self, vault: str, arn: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_recovery_point(conn, arn)
        if row["backup_vault_name"] != vault:
            raise ResourceNotFound(
                f"recovery point {arn} not found in backup vault '{vault}'", field="RecoveryPointArn"
            )
        return self._rp_out(row, detail=True)

    def delete_recovery_point(self, vault: str, arn: str) -> None:
        """Queue the deletion of a recovery point's image and snapshots; its record stays, marked DELETED.

        Refused while the vault is locked (any mode) or an active legal hold is on the point (governance).
        """
        with self.store.transaction() as conn:
            gov.lock_recovery_point_row(conn, arn)  # ordered against a legal hold taking the point
            row = self.store.get_recovery_point(conn, arn)
            if row["backup_vault_name"] != vault:
                raise ResourceNotFound(
                    f"recovery point {arn} not found in backup vault '{vault}'", field="RecoveryPointArn"
                )
            if row["status"] == "DELETING":
                return
            self._check_point_deletable(conn, row)
            if self.store.live_restores_of(conn, arn):
                raise Conflict(
                    "the recovery point is being restored; delete it when the restore has ended",
                    field="RecoveryPointArn",
                )
            self.store.update_recovery_point(conn, arn, {"status": "DELETING", "status_message": "deleted on request"})
            TaskQueue.enqueue(conn, "expire", arn, self.clock())

    def update_recovery_point_lifecycle(self, vault: str, arn: str, lifecycle: Mapping[str, Any]) -> dict[str, Any]:
        """AWS semantics: fields left out are cleared; the cold setting is frozen once the point is cold.

        A locked vault and an active legal hold limit the change (governance: no shortening of the retention).
        """
        new = lifecycle_from_aws_json(lifecycle)
        with self.store.transaction() as conn:
            gov.lock_recovery_point_row(conn, arn)
            row = self.store.get_recovery_point(conn, arn)
            if row["backup_vault_name"] != vault:
                raise ResourceNotFound(
                    f"recovery point {arn} not found in backup vault '{vault}'", field="RecoveryPointArn"
                )
            if row["status"] not in ("COMPLETED", "AVAILABLE"):
                raise InvalidRequest(
                    f"recovery point is {row['status']}: its lifecycle cannot change", field="RecoveryPointArn"
                )
            old = row["lifecycle"] or {}
            validate_lifecycle_change(
                RetentionLifecycle(old.get("MoveToColdStorageAfterDays"), old.get("DeleteAfterDays")),
                RetentionLifecycle(new.move_to_cold_storage_after_days, new.delete_after_days),
                row["storage_class"],
            )
            move_at, delete_at = calculated_lifecycle(row["creation_date"], new)
            self._check_point_lifecycle(conn, row, new.delete_after_days, delete_at)
            if row["image_backup"]:
                _check_image_backup_lifecycle(row, delete_at)
            elif row["resource_type"] in ("EC2", "EBS"):
                # Without an image backup there is no cold tier: no cold storage for EC2 in AWS Backup, and no EBS
                # archive step in Snapkeep (see engine.retention): the setting is kept, never acted on.
                move_at = None
            stored = lifecycle_to_aws_json(new)
            self.store.update_recovery_point(
                conn, arn, {"lifecycle": stored, "move_to_cold_at": move_at, "delete_at": delete_at}
            )
            if row["image_backup"] and delete_at is not None and delete_at != row["delete_at"]:
                # The image backup's manifest and packs must be retained as long (S3 Object Lock).
                TaskQueue.enqueue(conn, "image_retention", arn, self.clock())
        return {
            "BackupVaultArn": arns.vault_arn(self.region, self.account_id, vault),
            "RecoveryPointArn": arn,
            "Lifecycle": stored,
            "CalculatedLifecycle": {"MoveToColdStorageAt": move_at, "DeleteAt": delete_at},
        }

    def _rp_out(self, r: Row, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "RecoveryPointArn": r["recovery_point_arn"],
            "BackupVaultName": r["backup_vault_name"],
            "BackupVaultArn": arns.vault_arn(self.region, self.account_id, r["backup_vault_name"]),
            "ResourceArn": r["resource_arn"],
            "ResourceType": r["resource_type"],
            "Status": r["status"],
            "CreationDate": r["creation_date"],
            "CompletionDate": r["completion_date"],
            "BackupSizeInBytes": r["backup_size_bytes"],
            "IsEncrypted": r["is_encrypted"],
            "StorageClass": r["storage_class"],
            "IamRoleArn": r["iam_role_arn"],
            "CreatedBy": {"BackupPlanId": r["plan_id"], "BackupRuleId": r["rule_name"]} if r["plan_id"] else None,
            "Lifecycle": r["lifecycle"],
            "CalculatedLifecycle": {"MoveToColdStorageAt": r["move_to_cold_at"], "DeleteAt": r["delete_at"]},
            "ResourceName": r["resource_name"],
        }
        if detail:
            out["Volumes"] = r["volumes"]
            if r.get("image_backup"):
                out["ImageBackup"] = r["image_backup"]
            out["Instance"] = r["instance"]
        return {k: v for k, v in out.items() if v is not None}

    # -- plan templates --------------------------------------------------------------------------------------
    def get_backup_plan_from_json(self, template: str) -> dict[str, Any]:
        """Validate a plan given as JSON text and give it back as a plan document (nothing is stored)."""
        try:
            data = json.loads(template)
        except ValueError as exc:
            raise InvalidParameterValue(
                f"BackupPlanTemplateJson: not valid JSON: {exc}", field="BackupPlanTemplateJson"
            ) from exc
        if not isinstance(data, dict):
            raise InvalidParameterValue("BackupPlanTemplateJson: must be a JSON object", field="BackupPlanTemplateJson")
        return {"BackupPlan": plan_to_aws_json(plan_from_aws_json(data))}

    def export_backup_plan_template(self, plan_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_plan(conn, plan_id)
        return {"BackupPlanTemplateJson": json.dumps(row["plan"], sort_keys=True)}

    # -- protected resources ---------------------------------------------------------------------------------
    def list_protected_resources(self) -> list[dict[str, Any]]:
        """Every resource with a recovery point, with its newest one (AWS Backup's ListProtectedResources)."""
        with self.store.transaction() as conn:
            points = self.store.list_recovery_points(conn)  # newest first
        latest: dict[str, Row] = {}
        for point in points:
            latest.setdefault(point["resource_arn"], point)
        return [self._protected_out(p) for p in sorted(latest.values(), key=lambda p: str(p["resource_arn"]))]

    def describe_protected_resource(self, resource_arn: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            points = self.store.list_recovery_points(conn, resource_arn=resource_arn)
            if not points:
                raise ResourceNotFound(f"resource {resource_arn} has no recovery points", field="ResourceArn")
            arns_of_resource = {
                p["recovery_point_arn"]
                for p in self.store.list_recovery_points(conn, resource_arn=resource_arn, include_deleted=True)
            }
            restores = [r for r in self.store.list_restore_jobs(conn) if r["recovery_point_arn"] in arns_of_resource]
        out = self._protected_out(points[0])
        if restores:
            newest = restores[0]
            out["LatestRestoreJobCreationDate"] = newest["creation_date"]
            if newest["completion_date"]:
                minutes = (newest["completion_date"] - newest["creation_date"]).total_seconds() / 60
                out["LatestRestoreExecutionTimeMinutes"] = max(1, round(minutes))
        return out

    def _protected_out(self, point: Row) -> dict[str, Any]:
        out = {
            "ResourceArn": point["resource_arn"],
            "ResourceType": point["resource_type"],
            "LastBackupTime": point["creation_date"],
            "LastRecoveryPointArn": point["recovery_point_arn"],
            "LastBackupVaultArn": arns.vault_arn(self.region, self.account_id, point["backup_vault_name"]),
        }
        if point["resource_name"]:
            out["ResourceName"] = point["resource_name"]
        return out

    def get_recovery_point_restore_metadata(self, vault: str, arn: str) -> dict[str, Any]:
        """The metadata a restore of this point would use by default, in StartRestoreJob's keys."""
        with self.store.transaction() as conn:
            row = self.store.get_recovery_point(conn, arn)
        if row["backup_vault_name"] != vault:
            raise ResourceNotFound(
                f"recovery point {arn} not found in backup vault '{vault}'", field="RecoveryPointArn"
            )
        meta = _volume_restore_metadata(row) if row["resource_type"] == "EBS" else _instance_restore_metadata(row)
        return {
            "BackupVaultArn": arns.vault_arn(self.region, self.account_id, vault),
            "RecoveryPointArn": arn,
            "ResourceType": row["resource_type"],
            "RestoreMetadata": meta,
        }

    # -- restores ------------------------------------------------------------------------------------------
    def start_restore_job(
        self,
        recovery_point_arn: str,
        metadata: Mapping[str, Any],
        *,
        resource_type: str | None = None,
        iam_role_arn: str | None = None,
        idempotency_token: str | None = None,
        copy_source_tags: bool = False,
    ) -> dict[str, Any]:
        _require(recovery_point_arn, "RecoveryPointArn")
        if iam_role_arn:
            _check_role_arn(iam_role_arn)
        meta = {str(k): v for k, v in (metadata or {}).items()}
        with self.store.transaction() as conn:
            point = self.store.get_recovery_point(conn, recovery_point_arn)
            if point["status"] not in ("COMPLETED", "AVAILABLE"):
                raise InvalidRequest(
                    f"recovery point is {point['status']} and cannot be restored", field="RecoveryPointArn"
                )
            kind = resource_type or point["resource_type"]
            if kind not in ("EC2", "EBS"):
                raise InvalidParameterValue(
                    f"ResourceType: '{kind}' is not supported (EC2 or EBS)", field="ResourceType"
                )
            if kind == "EC2" and point["resource_type"] == "EBS":
                raise InvalidParameterValue(
                    "ResourceType: an EBS recovery point (a volume's snapshot) restores as EBS only, not EC2",
                    field="ResourceType",
                )
            meta = validate_restore_metadata(kind, meta)
            if kind == "EBS":
                check_volume_request(pick_volume(point, meta), meta)
            restore_source(kind, meta, point_region=point["region"], storage_class=point["storage_class"],
                           has_image_backup=bool(point["image_backup"]))
            job_id = new_job_id()
            job = self.store.insert_restore_job(
                conn,
                {
                    "restore_job_id": job_id,
                    "idempotency_token": idempotency_token or None,
                    "recovery_point_arn": recovery_point_arn,
                    "resource_type": kind,
                    "account_id": point["account_id"],
                    "region": point["region"],
                    "metadata": meta,
                    "iam_role_arn": iam_role_arn,
                    "copy_source_tags": copy_source_tags,
                    "status": RestoreJobStatus.PENDING.value,
                    "percent_done": 0.0,
                    "step": "start",
                    "step_data": {},
                    "creation_date": self.clock(),
                },
            )
            TaskQueue.enqueue(conn, "restore", job["restore_job_id"], self.clock())
        return {"RestoreJobId": job["restore_job_id"]}

    def describe_restore_job(self, job_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            return self._restore_out(self.store.get_restore_job(conn, job_id))

    def list_restore_jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            return [self._restore_out(r) for r in self.store.list_restore_jobs(conn, status=status)]

    def get_restore_job_metadata(self, job_id: str) -> dict[str, Any]:
        with self.store.transaction() as conn:
            row = self.store.get_restore_job(conn, job_id)
        return {"RestoreJobId": job_id, "Metadata": {k: str(v) for k, v in row["metadata"].items()}}

    def list_restore_jobs_by_resource(
        self,
        resource_arn: str,
        status: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> list[dict[str, Any]]:
        with self.store.transaction() as conn:
            points = {
                p["recovery_point_arn"]: p
                for p in self.store.list_recovery_points(conn, resource_arn=resource_arn, include_deleted=True)
            }
            jobs = self.store.list_restore_jobs(conn, status=status)
        out = []
        for job in jobs:
            point = points.get(job["recovery_point_arn"])
            if (
                point is None
                or (after and point["creation_date"] <= after)
                or (before and point["creation_date"] >= before)
            ):
                continue
            out.append(self._restore_out(job))
        return out

    @staticmethod
    def _restore_out(r: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AccountId": r["account_id"],
            "RestoreJobId": r["restore_job_id"],
            "RecoveryPointArn": r["recovery_point_arn"],
            "ResourceType": r["resource_type"],
            "Status": r["status"],
            "PercentDone": f"{r['percent_done']:.1f}",
            "CreationDate": r["creation_date"],
            "IamRoleArn": r["iam_role_arn"],
        }
        for key, column in (
            ("StatusMessage", "status_message"),
            ("CreatedResourceArn", "created_resource_arn"),
            ("CompletionDate", "completion_date"),
        ):
            if r[column] is not None:
                out[key] = r[column]
        return out


def _check_image_backup_lifecycle(row: Row, delete_at: datetime | None) -> None:
    """An image backup is immutable until the DeleteAt it was written with: a point's retention may be lengthened,
    never shortened below it; and an S3 Object Lock needs a date, so "keep forever" is refused too."""
    if delete_at is None:
        raise InvalidRequest("Lifecycle.DeleteAfterDays: the recovery point has an image backup, whose repository "
                             "retains it until a date; give a DeleteAfterDays", field="Lifecycle.DeleteAfterDays")
    if row["delete_at"] is not None and delete_at < row["delete_at"]:
        raise InvalidRequest(f"Lifecycle.DeleteAfterDays: the recovery point's image backup is retained until "
                             f"{iso_z(row['delete_at'])}; its retention can be lengthened, not shortened",
                             field="Lifecycle.DeleteAfterDays")
