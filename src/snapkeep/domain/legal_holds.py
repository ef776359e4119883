"""Legal holds: what a hold selects, what it blocks, and how its record ends (pure; `now` is an argument).

AWS Backup facts (botocore backup model: CreateLegalHold, CancelLegalHold, GetLegalHold, DateRange; developer
guide "Legal holds and AWS Backup"):

* Title and Description are required; RecoveryPointSelection picks recovery points by VaultNames,
  ResourceIdentifiers and a creation DateRange (FromDate and ToDate both required, inclusive, "Future DateTime
  values are not permitted"). The criteria given are AND'ed; a list matches when any of its values does.
* "Any actions to delete or disassociate a recovery point will fail with an error if one or more active legal
  holds are on the recovery point"; lifecycle deletion is "delayed until the legal hold is removed".
* "Each account can have a maximum of 50 legal holds active at one time" (LimitExceededException).
* CancelLegalHold needs a CancelDescription; RetainRecordInDays says how long the canceled hold's record stays.

Snapkeep's decisions:

* The hold applies to the recovery points that match when it is created (recorded then; later backups are not
  added). A criterion left out does not narrow the selection: without any, every current recovery point is held.
* A ResourceIdentifier is the ARN of a protected resource or of a recovery point; a value that is not an ARN names
  a resource type (EC2, EBS).
* A hold is ACTIVE as soon as CreateLegalHold answers (CREATING and CANCELING are never observable).
* While a point is held, DeleteRecoveryPoint is refused and UpdateRecoveryPointLifecycle may not shorten its
  retention (it may lengthen it); the retention sweep keeps it. Once every hold on it is canceled, its lifecycle
  applies again: a point past its DeleteAt is deleted by the next sweep.
* Without RetainRecordInDays a canceled hold's record is kept; with it (0 to 36500) GetLegalHold answers until
  CancellationDate + RetainRecordInDays and the hold is then treated as gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from snapkeep.domain.clock import ensure_utc, iso_z, parse_iso
from snapkeep.domain.errors import (
    InvalidParameterValue,
    InvalidRequest,
    InvalidResourceState,
    LimitExceeded,
    MissingParameterValue,
)
from snapkeep.domain.vaults import validate_vault_name

MAX_ACTIVE_HOLDS = 50
MAX_TITLE = 256
MAX_RETAIN_RECORD_DAYS = 36500
_RESOURCE_TYPE = re.compile(r"^[a-zA-Z0-9\-\_\.]{1,50}$")


@dataclass(frozen=True)
class DateRange:
    from_date: datetime
    to_date: datetime


@dataclass(frozen=True)
class RecoveryPointSelection:
    vault_names: tuple[str, ...] | None = None
    resource_identifiers: tuple[str, ...] | None = None
    date_range: DateRange | None = None


@dataclass(frozen=True)
class PointFacts:
    """What selection looks at in a recovery point."""

    recovery_point_arn: str
    backup_vault_name: str
    resource_arn: str
    resource_type: str
    creation_date: datetime


def validate_hold_text(title: object, description: object) -> tuple[str, str]:
    """Title and Description are both required; Title is at most 256 characters."""
    for field, value in (("Title", title), ("Description", description)):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise MissingParameterValue(f"{field}: is required", field=field)
        if not isinstance(value, str):
            raise InvalidParameterValue(f"{field}: must be a string", field=field)
    assert isinstance(title, str) and isinstance(description, str)
    if len(title) > MAX_TITLE:
        raise InvalidParameterValue(f"Title: must be at most {MAX_TITLE} characters; got {len(title)}", field="Title")
    return title, description


def _names(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterValue(f"{field}: must be a list of strings", field=field)
    if not value:
        raise InvalidParameterValue(f"{field}: must not be empty (leave it out to not filter on it)", field=field)
    return tuple(dict.fromkeys(value))


def selection_from_request(raw: Mapping[str, Any] | None, now: datetime,
                           known_vaults: Iterable[str]) -> RecoveryPointSelection:
    """Validate CreateLegalHold's RecoveryPointSelection against the vaults that exist at `now`."""
    if raw is None:
        return RecoveryPointSelection()
    base = "RecoveryPointSelection"
    vaults = _names(raw.get("VaultNames"), f"{base}.VaultNames")
    known = set(known_vaults)
    for index, name in enumerate(vaults or ()):
        validate_vault_name(name, f"{base}.VaultNames[{index}]")
        if name not in known:
            raise InvalidParameterValue(
                f"{base}.VaultNames[{index}]: backup vault '{name}' does not exist", field=f"{base}.VaultNames")
    resources = _names(raw.get("ResourceIdentifiers"), f"{base}.ResourceIdentifiers")
    for index, identifier in enumerate(resources or ()):
        if not identifier.startswith("arn:") and not _RESOURCE_TYPE.fullmatch(identifier):
            raise InvalidParameterValue(
                f"{base}.ResourceIdentifiers[{index}]: '{identifier}' is neither an ARN nor a resource type "
                "(like EC2)", field=f"{base}.ResourceIdentifiers")
    dates = raw.get("DateRange")
    date_range = None
    if dates is not None:
        date_range = _date_range(dates, ensure_utc(now), f"{base}.DateRange")
    return RecoveryPointSelection(vaults, resources, date_range)


def _date_range(raw: Mapping[str, Any], now: datetime, base: str) -> DateRange:
    values: dict[str, datetime] = {}
    for key in ("FromDate", "ToDate"):
        value = raw.get(key)
        if value is None:
            raise MissingParameterValue(f"{base}.{key}: is required (DateRange needs FromDate and ToDate)",
                                        field=f"{base}.{key}")
        if not isinstance(value, datetime):
            raise InvalidParameterValue(f"{base}.{key}: must be a timestamp", field=f"{base}.{key}")
        moment = ensure_utc(value)
        if moment > now:
            raise InvalidParameterValue(
                f"{base}.{key}: {iso_z(moment)} is in the future; future dates are not permitted (now is "
                f"{iso_z(now)})", field=f"{base}.{key}")
        values[key] = moment
    if values["FromDate"] > values["ToDate"]:
        raise InvalidParameterValue(
            f"{base}.FromDate: {iso_z(values['FromDate'])} is after ToDate {iso_z(values['ToDate'])}; FromDate must "
            "not be later than ToDate", field=f"{base}.FromDate")
    return DateRange(values["FromDate"], values["ToDate"])


def selection_to_json(selection: RecoveryPointSelection) -> dict[str, Any]:
    """For the catalog: dates as ISO-8601 text."""
    out: dict[str, Any] = {}
    if selection.vault_names is not None:
        out["VaultNames"] = list(selection.vault_names)
    if selection.resource_identifiers is not None:
        out["ResourceIdentifiers"] = list(selection.resource_identifiers)
    if selection.date_range is not None:
        out["DateRange"] = {"FromDate": selection.date_range.from_date.isoformat(),
                            "ToDate": selection.date_range.to_date.isoformat()}
    return out


def selection_from_json(stored: Mapping[str, Any] | None) -> RecoveryPointSelection:
    if not stored:
        return RecoveryPointSelection()
    dates = stored.get("DateRange")
    return RecoveryPointSelection(
        tuple(stored["VaultNames"]) if stored.get("VaultNames") is not None else None,
        tuple(stored["ResourceIdentifiers"]) if stored.get("ResourceIdentifiers") is not None else None,
        DateRange(parse_iso(dates["FromDate"]), parse_iso(dates["ToDate"])) if dates else None,
    )


def selection_to_aws(selection: RecoveryPointSelection) -> dict[str, Any]:
    """In AWS's RecoveryPointSelection shape (dates as datetimes)."""
    out: dict[str, Any] = {}
    if selection.vault_names is not None:
        out["VaultNames"] = list(selection.vault_names)
    if selection.resource_identifiers is not None:
        out["ResourceIdentifiers"] = list(selection.resource_identifiers)
    if selection.date_range is not None:
        out["DateRange"] = {"FromDate": selection.date_range.from_date, "ToDate": selection.date_range.to_date}
    return out


def _identifies(identifier: str, point: PointFacts) -> bool:
    if identifier.startswith("arn:"):
        return identifier in (point.resource_arn, point.recovery_point_arn)
    return identifier == point.resource_type


def selects(selection: RecoveryPointSelection, point: PointFacts) -> bool:
    """Whether the hold takes this recovery point: every criterion given must match."""
    if selection.vault_names is not None and point.backup_vault_name not in selection.vault_names:
        return False
    if selection.resource_identifiers is not None and not any(
            _identifies(i, point) for i in selection.resource_identifiers):
        return False
    if selection.date_range is not None:
        created = ensure_utc(point.creation_date)
        if not selection.date_range.from_date <= created <= selection.date_range.to_date:
            return False
    return True


def check_hold_limit(active_holds: int) -> None:
    if active_holds >= MAX_ACTIVE_HOLDS:
        raise LimitExceeded(
            f"the account already has {active_holds} active legal holds, the most allowed ({MAX_ACTIVE_HOLDS}); "
            "cancel one first")


def check_cancel(status: str, legal_hold_id: str) -> None:
    """Only an ACTIVE hold can be canceled."""
    if status != "ACTIVE":
        raise InvalidResourceState(
            f"LegalHoldId: legal hold {legal_hold_id} is {status}; only an ACTIVE legal hold can be canceled",
            field="LegalHoldId")


def retain_record_until(cancellation_date: datetime, retain_record_in_days: object) -> datetime | None:
    """When a canceled hold's record goes; None keeps it. Validates RetainRecordInDays (0 to 36500)."""
    if retain_record_in_days is None:
        return None
    days = retain_record_in_days
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_RETAIN_RECORD_DAYS:
        raise InvalidParameterValue(
            f"RetainRecordInDays: must be a whole number of days from 0 to {MAX_RETAIN_RECORD_DAYS}; "
            f"got {retain_record_in_days!r}", field="RetainRecordInDays")
    return ensure_utc(cancellation_date) + timedelta(days=days)


def record_retained(retain_until: datetime | None, now: datetime) -> bool:
    """A hold's record is visible until its RetainRecordUntil (always, when it has none)."""
    return retain_until is None or ensure_utc(now) < ensure_utc(retain_until)


def _hold_names(holds: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{hold_id} ('{title}')" for hold_id, title in holds)


def check_deletable(holds: Sequence[tuple[str, str]], recovery_point_arn: str) -> None:
    """Raise InvalidRequest when active holds, given as (LegalHoldId, Title), are on the recovery point."""
    if holds:
        raise InvalidRequest(
            f"RecoveryPointArn: {recovery_point_arn} is under {len(holds)} active legal hold(s): {_hold_names(holds)}; "
            "it cannot be deleted until every hold on it is canceled", field="RecoveryPointArn")


def check_lifecycle_change(holds: Sequence[tuple[str, str]], old_delete_at: datetime | None,
                           new_delete_at: datetime | None) -> None:
    """While held, a lifecycle update may keep or lengthen the retention, never shorten it (None = forever)."""
    if not holds:
        return
    shorter = new_delete_at is not None and (old_delete_at is None or new_delete_at < old_delete_at)
    if shorter:
        before = iso_z(old_delete_at) if old_delete_at else "never (kept forever)"
        assert new_delete_at is not None
        raise InvalidRequest(
            f"Lifecycle.DeleteAfterDays: the recovery point is under active legal hold(s) {_hold_names(holds)}: its "
            f"retention cannot be shortened (DeleteAt would move from {before} to {iso_z(new_delete_at)}); it may "
            "only be kept as long or longer", field="Lifecycle.DeleteAfterDays")
