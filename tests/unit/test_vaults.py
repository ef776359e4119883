"""Backup vault names and Backup Vault Lock: bounds, modes, immutability, and jobs against the lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue
from snapkeep.domain.vaults import (
    VaultLock,
    check_delete_against_lock,
    check_lifecycle_against_lock,
    check_lock_change,
    check_retention_against_lock,
    describe_lock,
    lock_from_request,
    lock_mode,
    validate_vault_name,
)

NOW = datetime(2022, 1, 1, 20, 0, tzinfo=UTC)


# --- names -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ab", "Default", "my_vault-1", "x" * 50, "A-_9"])
def test_valid_vault_names(name: str) -> None:
    assert validate_vault_name(name) == name


@pytest.mark.parametrize(("name", "error", "fragment"), [
    (None, MissingParameterValue, "is required"),
    ("", MissingParameterValue, "is required"),
    ("a", InvalidParameterValue, "2 to 50"),
    ("x" * 51, InvalidParameterValue, "2 to 50"),
    ("my.vault", InvalidParameterValue, "letters, digits, hyphens or underscores"),
    ("my vault", InvalidParameterValue, "letters, digits, hyphens or underscores"),
    ("vault\n", InvalidParameterValue, "2 to 50"),
    (42, InvalidParameterValue, "2 to 50"),
])
def test_invalid_vault_names(name: object, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        validate_vault_name(name)
    assert type(caught.value) is error
    assert caught.value.field == "BackupVaultName"  # type: ignore[attr-defined]
    assert fragment in str(caught.value)


def test_vault_name_field_can_be_chosen() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        validate_vault_name("a", field="Rules[0].TargetBackupVaultName")
    assert caught.value.field == "Rules[0].TargetBackupVaultName"
    assert caught.value.message.startswith("Rules[0].TargetBackupVaultName: ")


# --- lock requests -----------------------------------------------------------------------------------------

def test_lock_date_is_set_time_plus_changeable_for_days() -> None:
    """AWS's example: ChangeableForDays 30 on Jan. 1, 2022 at 8pm UTC -> lock date Jan. 31, 2022 at 8pm UTC."""
    lock = lock_from_request(7, 1200, 30, NOW)
    assert lock == VaultLock(7, 1200, 30, datetime(2022, 1, 31, 20, 0, tzinfo=UTC))


def test_governance_lock_has_no_lock_date() -> None:
    assert lock_from_request(1, None, None, NOW) == VaultLock(1, None, None, None)
    assert lock_from_request(None, None, None, NOW) == VaultLock(None, None, None, None)
    assert lock_from_request(None, 36500, 36500, NOW).max_retention_days == 36500
    assert lock_from_request(5, 5, 3, NOW).changeable_for_days == 3


@pytest.mark.parametrize(("low", "high", "changeable", "field", "fragment"), [
    (0, None, None, "MinRetentionDays", "between 1 and 36500"),
    (-1, None, None, "MinRetentionDays", "between 1 and 36500"),
    (36501, None, None, "MinRetentionDays", "between 1 and 36500"),
    (None, 0, None, "MaxRetentionDays", "between 1 and 36500"),
    (None, 36501, None, "MaxRetentionDays", "between 1 and 36500"),
    (30, 7, None, "MinRetentionDays", "must not exceed MaxRetentionDays (7)"),
    (1, 10, 2, "ChangeableForDays", "72-hour cooling-off"),
    (1, 10, 0, "ChangeableForDays", "between 3"),
    (1, 10, 36501, "ChangeableForDays", "36500"),
    (True, None, None, "MinRetentionDays", "whole number of days"),
    (None, 7.5, None, "MaxRetentionDays", "whole number of days"),
    (None, None, "3", "ChangeableForDays", "whole number of days"),
])
def test_lock_bounds(low: int | None, high: int | None, changeable: int | None, field: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        lock_from_request(low, high, changeable, NOW)
    assert type(caught.value) is InvalidParameterValue
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert caught.value.message.startswith(field)


def test_lock_request_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="naive"):
        lock_from_request(1, 2, 3, datetime(2022, 1, 1))


# --- modes and immutability --------------------------------------------------------------------------------

def test_lock_modes_over_time() -> None:
    compliance = lock_from_request(7, None, 3, NOW)
    assert lock_mode(lock_from_request(7, None, None, NOW), NOW + timedelta(days=10_000)) == "GOVERNANCE"
    assert lock_mode(compliance, NOW) == "COMPLIANCE_COOLOFF"
    assert lock_mode(compliance, NOW + timedelta(days=3) - timedelta(microseconds=1)) == "COMPLIANCE_COOLOFF"
    assert lock_mode(compliance, NOW + timedelta(days=3)) == "COMPLIANCE"
    assert lock_mode(compliance, NOW + timedelta(days=300)) == "COMPLIANCE"


def test_changes_allowed_in_governance_and_cooling_off() -> None:
    check_lock_change(None, NOW)
    check_lock_change(lock_from_request(7, None, None, NOW), NOW + timedelta(days=9999))
    check_lock_change(lock_from_request(7, None, 3, NOW), NOW + timedelta(days=2))


def test_immutable_lock_cannot_be_changed_or_deleted() -> None:
    lock = lock_from_request(7, None, 3, NOW)
    with pytest.raises(InvalidRequest) as caught:
        check_lock_change(lock, NOW + timedelta(days=3))
    assert caught.value.field == "BackupVaultName"
    assert "became immutable on 2022-01-04T20:00:00Z" in caught.value.message
    assert "can no longer be changed or deleted" in caught.value.message


@given(st.integers(3, 36500), st.integers(0, 80_000), st.integers(0, 80_000))
def test_compliance_never_goes_back(changeable: int, first: int, second: int) -> None:
    lock = lock_from_request(None, None, changeable, NOW)
    earlier, later = sorted((first, second))
    if lock_mode(lock, NOW + timedelta(days=earlier)) == "COMPLIANCE":
        assert lock_mode(lock, NOW + timedelta(days=later)) == "COMPLIANCE"
    assert (lock_mode(lock, NOW + timedelta(days=earlier)) == "COMPLIANCE") == (earlier >= changeable)


# --- jobs against the lock ---------------------------------------------------------------------------------

def test_retention_within_the_lock_is_accepted() -> None:
    lock = lock_from_request(7, 35, 3, NOW)
    for days in (7, 20, 35):
        check_retention_against_lock(lock, days)
    check_retention_against_lock(None, None)
    check_retention_against_lock(lock_from_request(7, None, None, NOW), None)
    check_retention_against_lock(lock_from_request(7, None, None, NOW), -1)


@pytest.mark.parametrize(("low", "high", "days", "fragment"), [
    (7, 35, 6, "shorter than the target vault lock's MinRetentionDays (7)"),
    (7, 35, 36, "longer than the target vault lock's MaxRetentionDays (35)"),
    (None, 35, None, "would be kept forever"),
    (7, 35, -1, "would be kept forever"),
])
def test_retention_outside_the_lock_fails_the_job(low: int | None, high: int | None, days: int | None,
                                                  fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_retention_against_lock(lock_from_request(low, high, None, NOW), days,
                                     "Rules[1].Lifecycle.DeleteAfterDays")
    assert caught.value.field == "Rules[1].Lifecycle.DeleteAfterDays"
    assert fragment in caught.value.message
    assert caught.value.message.startswith("Rules[1].Lifecycle.DeleteAfterDays: ")


@given(st.one_of(st.none(), st.integers(1, 36500)), st.one_of(st.none(), st.integers(1, 36500)),
       st.one_of(st.none(), st.integers(1, 40000)))
def test_retention_check_accepts_exactly_the_closed_range(low: int | None, high: int | None,
                                                          days: int | None) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    lock = lock_from_request(low, high, None, NOW)
    expected = (days is None and high is None) or (
        days is not None and (low is None or days >= low) and (high is None or days <= high))
    try:
        check_retention_against_lock(lock, days)
    except InvalidRequest:
        assert not expected
    else:
        assert expected


# --- what a locked vault refuses ---------------------------------------------------------------------------

def test_lock_descriptions_follow_the_mode() -> None:
    assert describe_lock(lock_from_request(7, None, None, NOW), NOW) == "Vault Lock in governance mode"
    compliance = lock_from_request(7, None, 3, NOW)
    assert describe_lock(compliance, NOW) == "Vault Lock in compliance mode (changeable until 2022-01-04T20:00:00Z)"
    assert describe_lock(compliance, NOW + timedelta(days=3)) == (
        "Vault Lock in compliance mode (immutable since 2022-01-04T20:00:00Z)")


def test_no_lock_lets_points_be_deleted() -> None:
    check_delete_against_lock(None, "main", NOW)


@pytest.mark.parametrize(("changeable", "later", "fragment"), [
    (None, 0, "remove the lock first"),
    (3, 1, "remove the lock first"),
    (3, 3, "the lock is immutable"),
])
def test_every_lock_mode_refuses_deleting_points(changeable: int | None, later: int, fragment: str) -> None:
    lock = lock_from_request(1, None, changeable, NOW)
    with pytest.raises(InvalidRequest) as caught:
        check_delete_against_lock(lock, "main", NOW + timedelta(days=later))
    assert caught.value.field == "RecoveryPointArn"
    assert "backup vault 'main' is protected by Vault Lock" in caught.value.message
    assert fragment in caught.value.message


def test_lifecycle_in_a_locked_vault_may_grow_within_the_bounds() -> None:
    lock = lock_from_request(7, 35, None, NOW)
    check_lifecycle_against_lock(None, "main", 10, 1, NOW)
    check_lifecycle_against_lock(lock, "main", 10, 20, NOW)
    check_lifecycle_against_lock(lock, "main", 10, 35, NOW)
    check_lifecycle_against_lock(lock, "main", 3, 7, NOW)  # saved before the lock, brought into its bounds
    check_lifecycle_against_lock(lock, "main", 100, 100, NOW)  # unchanged retention, even outside the bounds
    check_lifecycle_against_lock(lock, "main", None, -1, NOW)
    check_lifecycle_against_lock(lock_from_request(7, None, None, NOW), "main", 10, None, NOW)


@pytest.mark.parametrize(("low", "high", "old", "new", "fragment"), [
    (7, 35, 20, 10, "cannot be shortened (20 days -> 10 days)"),
    (7, 35, None, 30, "cannot be shortened (kept forever -> 30 days)"),
    (7, None, -1, 30, "cannot be shortened (kept forever -> 30 days)"),
    (7, 35, 20, 36, "36 days is longer than MaxRetentionDays (35)"),
    (7, 35, 20, None, "cannot be kept forever"),
    (7, 35, 3, 5, "5 days is shorter than MinRetentionDays (7)"),
])
def test_lifecycle_in_a_locked_vault_cannot_shrink_or_leave_the_bounds(
        low: int | None, high: int | None, old: int | None, new: int | None, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_lifecycle_against_lock(lock_from_request(low, high, None, NOW), "main", old, new, NOW)
    assert caught.value.field == "Lifecycle.DeleteAfterDays"
    assert "backup vault 'main' is protected by Vault Lock in governance mode" in caught.value.message
    assert fragment in caught.value.message


@given(st.one_of(st.none(), st.integers(1, 400)), st.one_of(st.none(), st.integers(1, 400)),
       st.one_of(st.none(), st.integers(1, 400)), st.one_of(st.none(), st.integers(1, 400)))
def test_a_locked_vault_never_lets_retention_shrink(low: int | None, high: int | None, old: int | None,
                                                    new: int | None) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    lock = lock_from_request(low, high, None, NOW)
    try:
        check_lifecycle_against_lock(lock, "main", old, new, NOW)
    except InvalidRequest:
        return
    forever = 10**9
    assert (forever if new is None else new) >= (forever if old is None else old)
    if new != old and new is not None:
        assert (low is None or new >= low) and (high is None or new <= high)
