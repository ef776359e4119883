"""Backup vault rules: names and Backup Vault Lock (pure; `now` is an argument).

AWS Backup facts (botocore backup service model: PutBackupVaultLockConfiguration,
DeleteBackupVaultLockConfiguration, DescribeBackupVault; re:Post knowledge center "backup-delete-vault-lock"):

* BackupVaultName matches ``^[a-zA-Z0-9\\-\\_]{2,50}$``.
* MinRetentionDays: "The shortest minimum retention period you can specify is 1 day". MaxRetentionDays: "The
  longest maximum retention period you can specify is 36500 days". ChangeableForDays: "you must set
  ChangeableForDays to 3 or greater. The maximum value you can specify is 36,500 days".
* Without ChangeableForDays the lock is in governance mode: it can be changed or deleted at any time (by whoever
  IAM allows). With it the lock is in compliance mode: "setting ChangeableForDays to 30 on Jan. 1, 2022 at 8pm UTC
  will set the lock date to Jan. 31, 2022 at 8pm UTC"; before the lock date it may still be changed or deleted
  (the cooling-off / grace time), "On and after the lock date, the Vault Lock becomes immutable and cannot be
  changed or deleted" and DeleteBackupVaultLockConfiguration answers InvalidRequestException.
* "any backup or copy job to the vault must have a lifecycle policy with a retention period equal to or longer
  than the minimum retention period" (and "equal to or shorter than the maximum"); otherwise the vault fails the
  job. Without MaxRetentionDays the lock allows "indefinite storage"; so with it, a job without DeleteAfterDays
  (kept forever) is longer than any maximum and fails. Recovery points saved before the lock are not affected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from snapkeep.domain.clock import ensure_utc, iso_z
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue

_VAULT_NAME = re.compile(r"^[a-zA-Z0-9\-\_]{2,50}$")
MIN_RETENTION_FLOOR = 1
MAX_RETENTION_CEILING = 36500
CHANGEABLE_FOR_DAYS_MIN = 3
CHANGEABLE_FOR_DAYS_MAX = 36500

LockMode = Literal["GOVERNANCE", "COMPLIANCE_COOLOFF", "COMPLIANCE"]


def validate_vault_name(name: object, field: str = "BackupVaultName") -> str:
    """Return `name` when AWS would accept it as a backup vault name; raise naming `field` otherwise."""
    if name is None or name == "":
        raise MissingParameterValue(f"{field}: is required", field=field)
    if not isinstance(name, str) or not _VAULT_NAME.fullmatch(name):
        raise InvalidParameterValue(
            f"{field}: '{name}' must be 2 to 50 letters, digits, hyphens or underscores", field=field)
    return name


@dataclass(frozen=True)
class VaultLock:
    """A vault's lock as DescribeBackupVault shows it; lock_date is None for a governance-mode lock."""

    min_retention_days: int | None
    max_retention_days: int | None
    changeable_for_days: int | None
    lock_date: datetime | None


def _whole_days(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(f"{field}: must be a whole number of days; got {value!r}", field=field)
    return value


def lock_from_request(min_retention_days: int | None, max_retention_days: int | None,
                      changeable_for_days: int | None, now: datetime) -> VaultLock:
    """The lock PutBackupVaultLockConfiguration sets at `now`, after AWS's bounds checks.

    A repeated Put during the cooling-off period replaces the lock and computes a new lock date from its `now`.
    """
    at = ensure_utc(now)
    low = _whole_days(min_retention_days, "MinRetentionDays")
    high = _whole_days(max_retention_days, "MaxRetentionDays")
    changeable = _whole_days(changeable_for_days, "ChangeableForDays")
    if low is not None and not MIN_RETENTION_FLOOR <= low <= MAX_RETENTION_CEILING:
        raise InvalidParameterValue(
            f"MinRetentionDays: must be between {MIN_RETENTION_FLOOR} and {MAX_RETENTION_CEILING} days; got {low}",
            field="MinRetentionDays")
    if high is not None and not MIN_RETENTION_FLOOR <= high <= MAX_RETENTION_CEILING:
        raise InvalidParameterValue(
            f"MaxRetentionDays: must be between {MIN_RETENTION_FLOOR} and {MAX_RETENTION_CEILING} days; "
            f"got {high}", field="MaxRetentionDays")
    if low is not None and high is not None and low > high:
        raise InvalidParameterValue(
            f"MinRetentionDays: must not exceed MaxRetentionDays ({high}); got {low}", field="MinRetentionDays")
    if changeable is not None and not CHANGEABLE_FOR_DAYS_MIN <= changeable <= CHANGEABLE_FOR_DAYS_MAX:
        raise InvalidParameterValue(
            f"ChangeableForDays: must be between {CHANGEABLE_FOR_DAYS_MIN} (the 72-hour cooling-off period) and "
            f"{CHANGEABLE_FOR_DAYS_MAX} days; got {changeable}", field="ChangeableForDays")
    lock_date = at + timedelta(days=changeable) if changeable is not None else None
    return VaultLock(low, high, changeable, lock_date)


def lock_mode(lock: VaultLock, now: datetime) -> LockMode:
    """GOVERNANCE without a lock date; COMPLIANCE_COOLOFF before it; COMPLIANCE (immutable) on and after it."""
    if lock.lock_date is None:
        return "GOVERNANCE"
    return "COMPLIANCE" if ensure_utc(now) >= ensure_utc(lock.lock_date) else "COMPLIANCE_COOLOFF"


def check_lock_change(lock: VaultLock | None, now: datetime, field: str = "BackupVaultName") -> None:
    """Raise InvalidRequest when Put/DeleteBackupVaultLockConfiguration would touch an immutable lock."""
    if lock is None or lock_mode(lock, now) != "COMPLIANCE":
        return
    assert lock.lock_date is not None
    raise InvalidRequest(
        f"{field}: the vault lock is in compliance mode and became immutable on {iso_z(lock.lock_date)}; "
        "it can no longer be changed or deleted", field=field)


def check_retention_against_lock(lock: VaultLock | None, delete_after_days: int | None,
                                 field: str = "Lifecycle.DeleteAfterDays") -> None:
    """Raise InvalidRequest when a job's retention falls outside the lock's [MinRetentionDays, MaxRetentionDays].

    None (or AWS's -1) means kept forever: fine against a minimum, refused by any maximum.
    """
    if lock is None:
        return
    days = None if delete_after_days is None or delete_after_days == -1 else delete_after_days
    low, high = lock.min_retention_days, lock.max_retention_days
    if days is None:
        if high is not None:
            raise InvalidRequest(
                f"{field}: the target vault's lock allows at most {high} days of retention (MaxRetentionDays) but "
                "the recovery point would be kept forever (no DeleteAfterDays); set DeleteAfterDays to at most "
                f"{high} or use another vault", field=field)
        return
    if low is not None and days < low:
        raise InvalidRequest(
            f"{field}: {days} days is shorter than the target vault lock's MinRetentionDays ({low}); the vault "
            "fails the job: retain longer or use another vault", field=field)
    if high is not None and days > high:
        raise InvalidRequest(
            f"{field}: {days} days is longer than the target vault lock's MaxRetentionDays ({high}); the vault "
            "fails the job: retain shorter or use another vault", field=field)


def describe_lock(lock: VaultLock, now: datetime) -> str:
    """The lock's mode in words, for messages."""
    mode = lock_mode(lock, now)
    if mode == "GOVERNANCE":
        return "Vault Lock in governance mode"
    assert lock.lock_date is not None
    if mode == "COMPLIANCE_COOLOFF":
        return f"Vault Lock in compliance mode (changeable until {iso_z(lock.lock_date)})"
    return f"Vault Lock in compliance mode (immutable since {iso_z(lock.lock_date)})"


def check_delete_against_lock(lock: VaultLock | None, vault_name: str, now: datetime,
                              field: str = "RecoveryPointArn") -> None:
    """A locked vault refuses DeleteRecoveryPoint, in every mode and for every point in it.

    AWS: Vault Lock prevents "attempts to delete any recovery point stored in or created in a backup vault" and
    denies the root user too. The lifecycle still expires points when their DeleteAt comes; in governance mode (or
    before the lock date) the lock itself can be removed first.
    """
    if lock is None:
        return
    how = ("remove the lock first (DeleteBackupVaultLockConfiguration)" if lock_mode(lock, now) != "COMPLIANCE"
           else "the lock is immutable")
    raise InvalidRequest(
        f"{field}: backup vault '{vault_name}' is protected by {describe_lock(lock, now)}: its recovery points "
        f"cannot be deleted before their lifecycle expires them; {how}", field=field)


def _retention_days(days: int | None) -> int | None:
    return None if days is None or days == -1 else days


def check_lifecycle_against_lock(lock: VaultLock | None, vault_name: str, old_delete_after_days: int | None,
                                 new_delete_after_days: int | None, now: datetime,
                                 field: str = "Lifecycle.DeleteAfterDays") -> None:
    """UpdateRecoveryPointLifecycle in a locked vault: retention may grow within the lock's bounds, never shrink.

    AWS: Vault Lock protects recovery points from "updates that shorten or otherwise alter their retention period"
    and prevents "attempts to update the lifecycle policy that controls the retention period". Snapkeep refuses any
    shortening (None and -1 mean kept forever, the longest) and any new retention outside [MinRetentionDays,
    MaxRetentionDays]; lengthening within the bounds is allowed, as are keeping the retention unchanged and changing
    the cold-storage setting (EC2 points never move to cold storage).
    """
    if lock is None:
        return
    old, new = _retention_days(old_delete_after_days), _retention_days(new_delete_after_days)
    what = f"backup vault '{vault_name}' is protected by {describe_lock(lock, now)}"
    if new is not None and (old is None or new < old):
        before = "kept forever" if old is None else f"{old} days"
        raise InvalidRequest(
            f"{field}: {what}: the retention of its recovery points cannot be shortened ({before} -> {new} days)",
            field=field)
    if new == old:
        return  # the retention stays as it is (a point saved before the lock may be outside its bounds)
    low, high = lock.min_retention_days, lock.max_retention_days
    if new is None and high is not None:
        raise InvalidRequest(
            f"{field}: {what}: retention is limited to MaxRetentionDays ({high}); the recovery point cannot be kept "
            "forever", field=field)
    if new is not None and low is not None and new < low:
        raise InvalidRequest(
            f"{field}: {what}: {new} days is shorter than MinRetentionDays ({low})", field=field)
    if new is not None and high is not None and new > high:
        raise InvalidRequest(
            f"{field}: {what}: {new} days is longer than MaxRetentionDays ({high})", field=field)
