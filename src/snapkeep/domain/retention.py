"""The lifecycle of recovery points over time: when each moves to cold storage, when it expires, and why (pure).

Like restic's ``ApplyPolicy(list, policy) -> keep, remove, reasons``: ``plan_retention`` looks at every recovery
point against ``now`` and returns what to expire, what to move to cold storage and what to keep, each with a
reason a person can read. The engine executes the plan; nothing here touches storage.

AWS Backup facts used (botocore backup service model, Lifecycle / CalculatedLifecycle /
UpdateRecoveryPointLifecycle; AWS Backup developer guide):

* CalculatedLifecycle: ``MoveToColdStorageAt = CreationDate + MoveToColdStorageAfterDays`` and
  ``DeleteAt = CreationDate + DeleteAfterDays`` ("The number of days after creation that a recovery point is ...").
  AWS deletes within 8 hours after DeleteAt; Snapkeep expires at the first run on or after DeleteAt.
* No DeleteAfterDays keeps the recovery point forever; ``-1`` for both fields means "keep indefinitely"
  ("To remove the existing lifecycle and retention periods and keep your recovery points indefinitely, specify -1
  for MoveToColdStorageAfterDays and DeleteAfterDays").
* DeleteAfterDays must be at least 90 days after MoveToColdStorageAfterDays (AWS error "Invalid lifecycle.
  DeleteAfterDays cannot be less than 90 days apart from MoveToColdStorageAfterDays") and between 1 and 36500
  ("Invalid lifecycle. DeleteAfterDays cannot be less than 1 or more than 36500 days").
* "The transition to cold after days setting can't be changed after a backup has been transitioned to cold."
* An active legal hold blocks deletion of the recovery points it holds.
* Vault Lock MinRetentionDays: jobs with a shorter retention fail; recovery points saved before the lock are not
  affected. Snapkeep additionally never expires a point earlier than its vault's MinRetentionDays when the caller
  passes ``vault_min_retention_days`` (pass it only for points the lock governs to mirror AWS exactly).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from snapkeep.domain.clock import ensure_utc, iso_z
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest

MAX_LIFECYCLE_DAYS = 36500
COLD_MINIMUM_DAYS = 90

StorageClass = Literal["WARM", "COLD", "DELETED"]


class LifecycleLike(Protocol):
    """Anything with AWS's two lifecycle numbers, such as plans.Lifecycle (None or -1 meaning "not set")."""

    @property
    def move_to_cold_storage_after_days(self) -> int | None: ...

    @property
    def delete_after_days(self) -> int | None: ...


@dataclass(frozen=True)
class RetentionLifecycle:
    """The two lifecycle numbers on their own, for callers without a plans.Lifecycle at hand."""

    move_to_cold_storage_after_days: int | None = None
    delete_after_days: int | None = None


@dataclass(frozen=True)
class RecoveryPointAge:
    recovery_point_arn: str
    creation_date: datetime
    lifecycle: LifecycleLike
    storage_class: StorageClass
    legal_hold: bool = False
    vault_min_retention_days: int | None = None


@dataclass(frozen=True)
class RetentionDecision:
    """One recovery point's decision. `due_at`: when the action fell due, or for a kept point when it next will."""

    recovery_point_arn: str
    reason: str
    due_at: datetime | None = None


@dataclass(frozen=True)
class RetentionPlan:
    """Every input point lands in exactly one of the three, in input order."""

    to_expire: tuple[RetentionDecision, ...]
    to_move_to_cold: tuple[RetentionDecision, ...]
    kept: tuple[RetentionDecision, ...]


def _days(value: int | None, field: str) -> int | None:
    """None and AWS's -1 both mean "not set"; any other negative is refused."""
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(f"{field}: must be a whole number of days; got {value!r}", field=field)
    if value < 0:
        raise InvalidParameterValue(f"{field}: must be -1 (not set) or a number of days; got {value}", field=field)
    return value


def _after(start: datetime, days: int | None) -> datetime | None:
    if days is None:
        return None
    try:
        return start + timedelta(days=days)
    except OverflowError:  # past year 9999: as good as never
        return None


def calculated_lifecycle(creation_date: datetime, lifecycle: LifecycleLike | None
                         ) -> tuple[datetime | None, datetime | None]:
    """AWS's CalculatedLifecycle (MoveToColdStorageAt, DeleteAt) of a point created at `creation_date`."""
    created = ensure_utc(creation_date)
    if lifecycle is None:
        return None, None
    cold = _days(lifecycle.move_to_cold_storage_after_days, "Lifecycle.MoveToColdStorageAfterDays")
    delete = _days(lifecycle.delete_after_days, "Lifecycle.DeleteAfterDays")
    return _after(created, cold), _after(created, delete)


def _decide(point: RecoveryPointAge, now: datetime) -> tuple[str, RetentionDecision]:
    arn = point.recovery_point_arn
    if point.storage_class == "DELETED":
        return "kept", RetentionDecision(arn, "already deleted (StorageClass DELETED): nothing to do")
    created = ensure_utc(point.creation_date)
    cold_at, delete_at = calculated_lifecycle(created, point.lifecycle)
    delete_days = _days(point.lifecycle.delete_after_days if point.lifecycle else None, "DeleteAfterDays")
    cold_days = _days(point.lifecycle.move_to_cold_storage_after_days if point.lifecycle else None,
                      "MoveToColdStorageAfterDays")
    min_days = _days(point.vault_min_retention_days, "MinRetentionDays")
    lock_until = _after(created, min_days) if min_days else None

    # When the point may go: its DeleteAt, pushed back to the vault lock's minimum when that is later.
    expires_at = delete_at
    if delete_at is not None and lock_until is not None and lock_until > delete_at:
        expires_at = lock_until
    blocked: str | None = None
    if delete_at is not None and now >= delete_at:
        if point.legal_hold:
            blocked = (f"legal hold active: DeleteAt {iso_z(delete_at)} has passed but a held recovery point "
                       "is never deleted")
        elif expires_at is not None and now < expires_at:
            blocked = (f"vault lock MinRetentionDays={min_days}: kept until {iso_z(expires_at)} although the "
                       f"lifecycle DeleteAt {iso_z(delete_at)} has passed")
        else:
            assert expires_at is not None
            reason = f"DeleteAfterDays={delete_days}: DeleteAt {iso_z(delete_at)} has passed"
            if expires_at != delete_at:
                reason += f" (vault lock MinRetentionDays={min_days} held it until {iso_z(expires_at)})"
            return "expire", RetentionDecision(arn, reason, expires_at)

    if point.storage_class == "WARM" and cold_at is not None and now >= cold_at:
        reason = f"MoveToColdStorageAfterDays={cold_days}: MoveToColdStorageAt {iso_z(cold_at)} has passed"
        return "cold", RetentionDecision(arn, reason + (f"; {blocked}" if blocked else ""), cold_at)
    if blocked:
        return "kept", RetentionDecision(arn, blocked, None if point.legal_hold else expires_at)

    if expires_at is None:
        reason = "no DeleteAfterDays: kept forever"
    elif expires_at != delete_at:
        assert delete_at is not None
        reason = (f"expires {iso_z(expires_at)} (vault lock MinRetentionDays={min_days} extends the lifecycle "
                  f"DeleteAt {iso_z(delete_at)})")
    else:
        reason = f"expires {iso_z(expires_at)}"
    next_at = expires_at
    if point.storage_class == "WARM" and cold_at is not None:
        reason += f"; moves to cold storage at {iso_z(cold_at)}"
        next_at = cold_at if next_at is None else min(next_at, cold_at)
    if point.legal_hold:
        reason += "; legal hold active"
    return "kept", RetentionDecision(arn, reason, next_at)


def plan_retention(points: Iterable[RecoveryPointAge], now: datetime) -> RetentionPlan:
    """Decide, for each recovery point, expire / move to cold storage / keep, with the reason.

    Deterministic and total: every point lands in exactly one list, in input order. A point under an active legal
    hold is never expired; a point is never expired before `vault_min_retention_days` after its creation. When a
    point is due both to move to cold storage and to expire, it expires (unless held, then it moves).
    """
    at = ensure_utc(now)
    buckets: dict[str, list[RetentionDecision]] = {"expire": [], "cold": [], "kept": []}
    for point in points:
        bucket, decision = _decide(point, at)
        buckets[bucket].append(decision)
    return RetentionPlan(tuple(buckets["expire"]), tuple(buckets["cold"]), tuple(buckets["kept"]))


def _check_days(value: int | None, field: str) -> int | None:
    days = _days(value, field)
    if days is not None and not 1 <= days <= MAX_LIFECYCLE_DAYS:
        raise InvalidParameterValue(
            f"{field}: must be between 1 and {MAX_LIFECYCLE_DAYS} days (or -1 for none); got {days}", field=field)
    return days


def validate_lifecycle(lifecycle: LifecycleLike, field: str = "Lifecycle") -> None:
    """AWS's rules for one Lifecycle: each value 1..36500 (or absent / -1), DeleteAfterDays >= cold + 90."""
    cold = _check_days(lifecycle.move_to_cold_storage_after_days, f"{field}.MoveToColdStorageAfterDays")
    delete = _check_days(lifecycle.delete_after_days, f"{field}.DeleteAfterDays")
    if cold is not None and delete is not None and delete < cold + COLD_MINIMUM_DAYS:
        path = f"{field}.DeleteAfterDays"
        raise InvalidParameterValue(
            f"{path}: must be at least {COLD_MINIMUM_DAYS} days after MoveToColdStorageAfterDays ({cold}), "
            f"so at least {cold + COLD_MINIMUM_DAYS}; got {delete} (backups stay in cold storage for at least "
            f"{COLD_MINIMUM_DAYS} days)", field=path)


def validate_lifecycle_change(old: LifecycleLike | None, new: LifecycleLike, storage_class: StorageClass,
                              field: str = "Lifecycle") -> None:
    """Rules of UpdateRecoveryPointLifecycle for a recovery point now in `storage_class`.

    AWS replaces the whole lifecycle: a value left out of `new` is cleared, not kept (the API reference warns
    "Not including them may result in your plan updating with null values").
    """
    if storage_class == "DELETED":
        raise InvalidRequest(f"{field}: the recovery point is deleted; its lifecycle can no longer be changed",
                             field=field)
    validate_lifecycle(new, field)
    if storage_class == "COLD":
        before = _days(old.move_to_cold_storage_after_days if old else None, "MoveToColdStorageAfterDays")
        after = _days(new.move_to_cold_storage_after_days, "MoveToColdStorageAfterDays")
        if before != after:
            path = f"{field}.MoveToColdStorageAfterDays"
            raise InvalidRequest(
                f"{path}: cannot be changed after the recovery point has transitioned to cold storage "
                f"(it is {before if before is not None else 'not set'}; got "
                f"{after if after is not None else 'not set'})", field=path)
