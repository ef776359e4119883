"""Backup vault notifications: which events a vault accepts, which state changes raise which event, and the
SNS message each one is (pure: no I/O, times are arguments).

AWS Backup facts (botocore backup model, BackupVaultEvent; API reference PutBackupVaultNotifications; developer
guide "Notification options with AWS Backup", backup-notifications):

* PutBackupVaultNotifications accepts every value of the BackupVaultEvent enum, but "Deprecated events do not
  return statuses or notifications": BACKUP_JOB_SUCCESSFUL, BACKUP_JOB_FAILED, BACKUP_JOB_EXPIRED,
  RESTORE_JOB_SUCCESSFUL, RESTORE_JOB_FAILED, BACKUP_PLAN_CREATED and BACKUP_PLAN_MODIFIED are stored and given back
  by GetBackupVaultNotifications, and never sent. A failed job is told by BACKUP_JOB_COMPLETED with its `State`
  attribute (FAILED, EXPIRED, ABORTED, ...): subscribers that only want failures filter on that attribute.
* Snapkeep sends the supported events it has jobs for: BACKUP_JOB_STARTED, BACKUP_JOB_COMPLETED,
  RESTORE_JOB_STARTED, RESTORE_JOB_COMPLETED and RECOVERY_POINT_MODIFIED (`SENT_EVENTS`). Copy, S3, EKS,
  continuous-backup, indexing and access-point events are accepted and never raised: Snapkeep has no such jobs.
* AWS Backup publishes to Standard topics only (no FIFO) of its own account; Snapkeep also reaches a topic in a
  protected account, through that account's role.

When each event is raised (once per transition, in the transaction that makes it):

* BACKUP_JOB_STARTED: a backup job moves into RUNNING. BACKUP_JOB_COMPLETED: it reaches a final state (COMPLETED,
  PARTIAL, FAILED, EXPIRED, ABORTED); a job that never ran (CREATED → EXPIRED) raises only this one.
* RESTORE_JOB_STARTED: a restore job first moves into RUNNING. RESTORE_JOB_COMPLETED: it reaches COMPLETED, FAILED or
  ABORTED. Restore events go to the vault of the recovery point restored.
* RECOVERY_POINT_MODIFIED: a recovery point's lifecycle, status (DELETING, DELETED, EXPIRED when its deletion
  failed, ...) or storage class changes. Its creation is told by BACKUP_JOB_COMPLETED instead.

The message: Subject "Notification from AWS Backup" (kept, so that tools keyed on it keep working), a plain-text
body, and String message attributes a subscription filter policy can match. The COMPLETED, FAILED and EXPIRED
bodies and the attributes are AWS's documented samples; the other bodies follow their wording:

=======================  =============================================================================================
backup job COMPLETED     An AWS Backup job was completed successfully. Recovery point ARN: <rp>. Resource ARN : <r>.
                         BackupJob ID : <id>
backup job FAILED        An AWS Backup job failed. Resource ARN : <r>. BackupJob ID : <id>
backup job EXPIRED       An AWS Backup job failed to complete in time. Resource ARN : <r>. BackupJob ID : <id>
backup job ABORTED       An AWS Backup job was stopped. Resource ARN : <r>. BackupJob ID : <id>
backup job PARTIAL       An AWS Backup job was completed with issues. Recovery point ARN: <rp>. Resource ARN : <r>.
                         BackupJob ID : <id>
backup job started       An AWS Backup job was started. Resource ARN : <r>. BackupJob ID : <id>
=======================  =============================================================================================

with attributes EventType=BACKUP_JOB, State=<job state>, AccountId=<the job's account>, Id=<job id>,
StartTime=<ISO-8601 UTC with milliseconds and Z>. Restore jobs read the same way ("An AWS Backup restore job was
started / was completed successfully / failed / was stopped. Recovery point ARN : <rp>. [Created resource ARN :
<arn>.] RestoreJob ID : <id>") with EventType=RESTORE_JOB and Id=<restore job id>. A recovery point's message says
what changed ("An AWS Backup recovery point's lifecycle was changed / is being deleted / was deleted / could not be
deleted / moved to cold storage / is now <status>. Recovery point ARN : <rp>. Resource ARN : <r>") with
EventType=RECOVERY_POINT_MODIFIED, State=<its status>, AccountId and RecoveryPointArn (the attribute AWS's
recovery-point events carry). Delivery adds one attribute of Snapkeep's own, NotificationId, the same on every
delivery of one notification, so a subscriber can drop the rare duplicate (delivery is at least once, see
engine.notify).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from snapkeep.domain.arn import Arn
from snapkeep.domain.clock import ensure_utc
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue

SUBJECT = "Notification from AWS Backup"

# The BackupVaultEvent enum of botocore's model, in its order.
ALL_EVENTS: tuple[str, ...] = (
    "BACKUP_JOB_STARTED", "BACKUP_JOB_COMPLETED", "BACKUP_JOB_SUCCESSFUL", "BACKUP_JOB_FAILED", "BACKUP_JOB_EXPIRED",
    "RESTORE_JOB_STARTED", "RESTORE_JOB_COMPLETED", "RESTORE_JOB_SUCCESSFUL", "RESTORE_JOB_FAILED",
    "COPY_JOB_STARTED", "COPY_JOB_SUCCESSFUL", "COPY_JOB_FAILED", "RECOVERY_POINT_MODIFIED", "BACKUP_PLAN_CREATED",
    "BACKUP_PLAN_MODIFIED", "S3_BACKUP_OBJECT_FAILED", "S3_RESTORE_OBJECT_FAILED", "CONTINUOUS_BACKUP_INTERRUPTED",
    "RECOVERY_POINT_INDEX_COMPLETED", "RECOVERY_POINT_INDEX_DELETED", "RECOVERY_POINT_INDEXING_FAILED",
    "EKS_RESTORE_OBJECT_FAILED", "EKS_RESTORE_OBJECT_SKIPPED", "EKS_BACKUP_OBJECT_FAILED",
    "EKS_RESTORE_MODIFICATION_SUCCESS", "EKS_RESTORE_MODIFICATION_FAILED", "ACCESS_POINT_AVAILABLE",
    "ACCESS_POINT_CREATION_FAILED", "ACCESS_POINT_DELETED", "ACCESS_POINT_DELETION_FAILED", "ACCESS_POINT_EXPIRED",
    "ACCESS_POINT_DISASSOCIATED",
)

BACKUP_JOB_STARTED = "BACKUP_JOB_STARTED"
BACKUP_JOB_COMPLETED = "BACKUP_JOB_COMPLETED"
RESTORE_JOB_STARTED = "RESTORE_JOB_STARTED"
RESTORE_JOB_COMPLETED = "RESTORE_JOB_COMPLETED"
RECOVERY_POINT_MODIFIED = "RECOVERY_POINT_MODIFIED"

SENT_EVENTS: tuple[str, ...] = (
    BACKUP_JOB_STARTED, BACKUP_JOB_COMPLETED, RESTORE_JOB_STARTED, RESTORE_JOB_COMPLETED, RECOVERY_POINT_MODIFIED,
)
"""The events Snapkeep raises; every other value of the enum is accepted and never sent."""

DEPRECATED_EVENTS = frozenset(
    {
        "BACKUP_JOB_SUCCESSFUL", "BACKUP_JOB_FAILED", "BACKUP_JOB_EXPIRED", "RESTORE_JOB_SUCCESSFUL",
        "RESTORE_JOB_FAILED", "BACKUP_PLAN_CREATED", "BACKUP_PLAN_MODIFIED",
    }
)
"""Accepted by AWS for old configurations, never sent by AWS (and so never by Snapkeep)."""

_BACKUP_FINAL = frozenset({"COMPLETED", "PARTIAL", "FAILED", "EXPIRED", "ABORTED"})
_RESTORE_FINAL = frozenset({"COMPLETED", "FAILED", "ABORTED"})
_TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")

FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(hours=1)
MAX_DELIVERY_ATTEMPTS = 72
"""With FIRST_RETRY doubling up to LONGEST_RETRY, a notification is tried for about three days."""


# -- configuration ------------------------------------------------------------------------------------------------
def validate_vault_events(events: object, field_name: str = "BackupVaultEvents") -> list[str]:
    """The events in the order given, duplicates dropped; every one must be a BackupVaultEvent."""
    if events is None:
        raise MissingParameterValue(f"{field_name} is required", field=field_name)
    if isinstance(events, str) or not isinstance(events, Sequence):
        raise InvalidParameterValue(f"{field_name}: must be a list of backup vault events", field=field_name)
    if not events:
        raise InvalidParameterValue(
            f"{field_name}: at least one event is required; Snapkeep sends {', '.join(SENT_EVENTS)}", field=field_name
        )
    out: list[str] = []
    for index, event in enumerate(events):
        if event not in ALL_EVENTS:
            raise InvalidParameterValue(
                f"{field_name}[{index}]: '{event}' is not a backup vault event; Snapkeep sends "
                f"{', '.join(SENT_EVENTS)} (the other values of AWS Backup's BackupVaultEvent are accepted "
                "and never sent)",
                field=f"{field_name}[{index}]",
            )
        if event not in out:
            out.append(str(event))
    return out


def validate_topic_arn(text: object, reachable_accounts: Collection[str], field_name: str = "SNSTopicArn") -> Arn:
    """An SNS Standard topic ARN in an account Snapkeep can publish to (its own, or a protected account)."""
    if text is None or text == "":
        raise MissingParameterValue(f"{field_name} is required", field=field_name)
    arn = Arn.parse(str(text), field=field_name)
    if arn.service != "sns" or not arn.region or not arn.account:
        raise InvalidParameterValue(
            f"{field_name}: '{text}' is not an SNS topic ARN (like arn:aws:sns:us-east-1:123456789012:my-topic)",
            field=field_name,
        )
    if arn.resource.endswith(".fifo"):
        raise InvalidParameterValue(
            f"{field_name}: '{arn.resource}' is a FIFO topic; backup vault notifications go to Standard topics only",
            field=field_name,
        )
    if not _TOPIC_NAME.fullmatch(arn.resource):
        raise InvalidParameterValue(
            f"{field_name}: topic name '{arn.resource}' must be 1-256 letters, digits, hyphens or underscores",
            field=field_name,
        )
    if arn.account not in reachable_accounts:
        raise InvalidParameterValue(
            f"{field_name}: the topic is in account {arn.account}, which Snapkeep cannot publish to; use a topic "
            f"in {', '.join(sorted(reachable_accounts))} (Snapkeep's own account or a protected account)",
            field=field_name,
        )
    return arn


# -- what a state change raises -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notification:
    """One SNS message a vault event becomes: the event it answers to, the body and the message attributes."""

    event: str
    message: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The form kept in the outbox until it is published."""
        return {"Subject": SUBJECT, "Message": self.message, "MessageAttributes": dict(self.attributes)}


@dataclass(frozen=True)
class BackupJobFacts:
    job_id: str
    account_id: str
    resource_arn: str
    state: str
    start_time: datetime
    recovery_point_arn: str | None = None


@dataclass(frozen=True)
class RestoreJobFacts:
    restore_job_id: str
    account_id: str
    recovery_point_arn: str
    status: str
    creation_date: datetime
    created_resource_arn: str | None = None


@dataclass(frozen=True)
class RecoveryPointFacts:
    recovery_point_arn: str
    account_id: str
    resource_arn: str
    status: str
    storage_class: str
    lifecycle: Mapping[str, Any] | None = None


def aws_timestamp(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as AWS writes StartTime."""
    utc = ensure_utc(value)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_BACKUP_OUTCOME = {
    "COMPLETED": "was completed successfully",
    "PARTIAL": "was completed with issues",
    "FAILED": "failed",
    "EXPIRED": "failed to complete in time",
    "ABORTED": "was stopped",
}


def backup_job_notifications(before: str | None, job: BackupJobFacts) -> list[Notification]:
    """What a backup job moving from state `before` (None: just recorded) to `job.state` raises."""
    state, before = str(job.state), None if before is None else str(before)
    if state == before:
        return []
    tail = f"Resource ARN : {job.resource_arn}. BackupJob ID : {job.job_id}"
    attributes = {
        "EventType": "BACKUP_JOB",
        "State": state,
        "AccountId": job.account_id,
        "Id": job.job_id,
        "StartTime": aws_timestamp(job.start_time),
    }
    if state == "RUNNING":
        return [Notification(BACKUP_JOB_STARTED, f"An AWS Backup job was started. {tail}", attributes)]
    if state in _BACKUP_FINAL and before not in _BACKUP_FINAL:
        point = ""
        if state in ("COMPLETED", "PARTIAL") and job.recovery_point_arn:
            point = f"Recovery point ARN: {job.recovery_point_arn}. "
        text = f"An AWS Backup job {_BACKUP_OUTCOME[state]}. {point}{tail}"
        return [Notification(BACKUP_JOB_COMPLETED, text, attributes)]
    return []


_RESTORE_OUTCOME = {"COMPLETED": "was completed successfully", "FAILED": "failed", "ABORTED": "was stopped"}


def restore_job_notifications(before: str | None, job: RestoreJobFacts) -> list[Notification]:
    """What a restore job moving from status `before` (None: just recorded) to `job.status` raises."""
    status, before = str(job.status), None if before is None else str(before)
    if status == before:
        return []
    attributes = {
        "EventType": "RESTORE_JOB",
        "State": status,
        "AccountId": job.account_id,
        "Id": job.restore_job_id,
        "StartTime": aws_timestamp(job.creation_date),
    }
    point = f"Recovery point ARN : {job.recovery_point_arn}. "
    tail = f"RestoreJob ID : {job.restore_job_id}"
    if status == "RUNNING":
        text = f"An AWS Backup restore job was started. {point}{tail}"
        return [Notification(RESTORE_JOB_STARTED, text, attributes)]
    if status in _RESTORE_FINAL and before not in _RESTORE_FINAL:
        created = ""
        if status == "COMPLETED" and job.created_resource_arn:
            created = f"Created resource ARN : {job.created_resource_arn}. "
        text = f"An AWS Backup restore job {_RESTORE_OUTCOME[status]}. {point}{created}{tail}"
        return [Notification(RESTORE_JOB_COMPLETED, text, attributes)]
    return []


_POINT = "An AWS Backup recovery point"
_POINT_STATUS_CHANGE = {
    "DELETING": f"{_POINT} is being deleted",
    "DELETED": f"{_POINT} was deleted",
    "EXPIRED": f"{_POINT} could not be deleted",
}


def recovery_point_notifications(before: RecoveryPointFacts, after: RecoveryPointFacts) -> list[Notification]:
    """RECOVERY_POINT_MODIFIED when the lifecycle, the status or the storage class changes (one message)."""
    if after.status != before.status:
        what = _POINT_STATUS_CHANGE.get(after.status, f"{_POINT} is now {after.status}")
    elif after.storage_class != before.storage_class:
        what = f"{_POINT} moved to {'cold' if after.storage_class == 'COLD' else after.storage_class} storage"
    elif dict(after.lifecycle or {}) != dict(before.lifecycle or {}):
        what = f"{_POINT}'s lifecycle was changed"
    else:
        return []
    text = f"{what}. Recovery point ARN : {after.recovery_point_arn}. Resource ARN : {after.resource_arn}"
    attributes = {
        "EventType": RECOVERY_POINT_MODIFIED,
        "State": after.status,
        "AccountId": after.account_id,
        "RecoveryPointArn": after.recovery_point_arn,
    }
    return [Notification(RECOVERY_POINT_MODIFIED, text, attributes)]


def subscribed(notifications: Iterable[Notification], events: Collection[str]) -> list[Notification]:
    """The notifications a vault told about `events` is sent."""
    return [n for n in notifications if n.event in events and n.event in SENT_EVENTS]


# -- delivery -----------------------------------------------------------------------------------------------------
def publish_attributes(stored: Mapping[str, Any], notification_id: str) -> dict[str, str]:
    """The message attributes to publish: the stored ones and the NotificationId that marks every delivery."""
    return {**{str(k): str(v) for k, v in (stored.get("MessageAttributes") or {}).items()},
            "NotificationId": notification_id}


def delivery_backoff(failed_attempts: int) -> timedelta:
    """How long to wait after the `failed_attempts`-th failed delivery: doubling from FIRST_RETRY, at most an hour."""
    if failed_attempts < 1:
        return timedelta(0)
    doubled: timedelta = FIRST_RETRY * (2 ** min(failed_attempts - 1, 20))
    return min(LONGEST_RETRY, doubled)


def gives_up(failed_attempts: int) -> bool:
    """True once a notification has failed so often that it stays in the outbox, undelivered, with its last error."""
    return failed_attempts >= MAX_DELIVERY_ATTEMPTS
