"""Legal holds: validating a hold, which recovery points it takes, what it blocks, how its record ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import (
    InvalidParameterValue,
    InvalidRequest,
    InvalidResourceState,
    LimitExceeded,
    MissingParameterValue,
)
from snapkeep.domain.legal_holds import (
    MAX_ACTIVE_HOLDS,
    DateRange,
    PointFacts,
    RecoveryPointSelection,
    check_cancel,
    check_deletable,
    check_hold_limit,
    check_lifecycle_change,
    record_retained,
    retain_record_until,
    selection_from_json,
    selection_from_request,
    selection_to_aws,
    selection_to_json,
    selects,
    validate_hold_text,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VAULTS = ("main", "archive")
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"


def point(vault: str = "main", resource: str = INSTANCE, created: datetime = NOW - timedelta(days=1),
          arn: str = "arn:aws:ec2:us-east-1::image/ami-1", kind: str = "EC2") -> PointFacts:
    return PointFacts(arn, vault, resource, kind, created)


def selection(raw: dict[str, Any] | None) -> RecoveryPointSelection:
    return selection_from_request(raw, NOW, VAULTS)


# --- the hold's text ---------------------------------------------------------------------------------------

def test_title_and_description_are_required() -> None:
    assert validate_hold_text("Case 42", "Preserve for litigation") == ("Case 42", "Preserve for litigation")
    for title, description, field in ((None, "d", "Title"), ("  ", "d", "Title"), ("t", None, "Description"),
                                      ("t", "", "Description")):
        with pytest.raises(MissingParameterValue) as caught:
            validate_hold_text(title, description)
        assert caught.value.field == field
        assert caught.value.message.startswith(f"{field}: ")


def test_title_length_and_type() -> None:
    with pytest.raises(InvalidParameterValue, match="at most 256 characters; got 257"):
        validate_hold_text("x" * 257, "d")
    with pytest.raises(InvalidParameterValue, match="Description: must be a string"):
        validate_hold_text("t", 5)


# --- the selection ------------------------------------------------------------------------------------------

def test_selection_round_trips_through_the_catalog_and_the_api() -> None:
    raw = {"VaultNames": ["main"], "ResourceIdentifiers": [INSTANCE, "EC2"],
           "DateRange": {"FromDate": NOW - timedelta(days=7), "ToDate": NOW}}
    chosen = selection(raw)
    assert selection_from_json(selection_to_json(chosen)) == chosen
    assert selection_to_aws(chosen) == raw
    assert selection_from_json(None) == RecoveryPointSelection()
    assert selection_to_aws(selection(None)) == {}


@pytest.mark.parametrize(("raw", "error", "field", "fragment"), [
    ({"VaultNames": ["nope"]}, InvalidParameterValue, "RecoveryPointSelection.VaultNames",
     "VaultNames[0]: backup vault 'nope' does not exist"),
    ({"VaultNames": ["main", "bad name"]}, InvalidParameterValue, "RecoveryPointSelection.VaultNames[1]",
     "letters, digits, hyphens or underscores"),
    ({"VaultNames": []}, InvalidParameterValue, "RecoveryPointSelection.VaultNames", "must not be empty"),
    ({"VaultNames": "main"}, InvalidParameterValue, "RecoveryPointSelection.VaultNames", "list of strings"),
    ({"ResourceIdentifiers": ["not a type!"]}, InvalidParameterValue, "RecoveryPointSelection.ResourceIdentifiers",
     "neither an ARN nor a resource type"),
    ({"DateRange": {"FromDate": NOW - timedelta(days=1)}}, MissingParameterValue,
     "RecoveryPointSelection.DateRange.ToDate", "is required"),
    ({"DateRange": {"FromDate": NOW, "ToDate": NOW - timedelta(seconds=1)}}, InvalidParameterValue,
     "RecoveryPointSelection.DateRange.FromDate", "must not be later than ToDate"),
    ({"DateRange": {"FromDate": NOW - timedelta(days=1), "ToDate": NOW + timedelta(seconds=1)}},
     InvalidParameterValue, "RecoveryPointSelection.DateRange.ToDate", "is in the future"),
    ({"DateRange": {"FromDate": NOW + timedelta(days=1), "ToDate": NOW + timedelta(days=2)}},
     InvalidParameterValue, "RecoveryPointSelection.DateRange.FromDate", "is in the future"),
    ({"DateRange": {"FromDate": "yesterday", "ToDate": NOW}}, InvalidParameterValue,
     "RecoveryPointSelection.DateRange.FromDate", "must be a timestamp"),
])
def test_selection_validation(raw: dict[str, Any], error: type[Exception], field: str, fragment: str) -> None:
    with pytest.raises(error) as caught:
        selection(raw)
    assert type(caught.value) is error
    assert caught.value.field == field  # type: ignore[attr-defined]
    assert fragment in str(caught.value)


def test_a_date_range_may_end_now() -> None:
    chosen = selection({"DateRange": {"FromDate": NOW, "ToDate": NOW}})
    assert chosen.date_range == DateRange(NOW, NOW)


def test_no_criterion_selects_everything() -> None:
    everything = selection(None)
    assert selects(everything, point())
    assert selects(selection({}), point(vault="archive", kind="EBS"))


def test_criteria_are_anded_and_lists_ored() -> None:
    chosen = selection({"VaultNames": ["main", "archive"], "ResourceIdentifiers": [INSTANCE]})
    assert selects(chosen, point(vault="archive"))
    assert not selects(chosen, point(resource="arn:aws:ec2:us-east-1:123456789012:instance/i-other"))
    assert not selects(selection({"VaultNames": ["archive"], "ResourceIdentifiers": [INSTANCE]}), point())


def test_resource_identifiers_name_resources_points_or_types() -> None:
    assert selects(selection({"ResourceIdentifiers": ["arn:aws:ec2:us-east-1::image/ami-1"]}), point())
    assert selects(selection({"ResourceIdentifiers": ["EC2"]}), point())
    assert not selects(selection({"ResourceIdentifiers": ["EBS"]}), point())


def test_date_range_is_inclusive_at_both_ends() -> None:
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    chosen = selection({"DateRange": {"FromDate": start, "ToDate": end}})
    assert selects(chosen, point(created=start))
    assert selects(chosen, point(created=end))
    assert not selects(chosen, point(created=start - timedelta(microseconds=1)))
    assert not selects(chosen, point(created=end + timedelta(microseconds=1)))


# --- what a hold blocks -----------------------------------------------------------------------------------------

def test_held_points_cannot_be_deleted_and_the_message_names_the_holds() -> None:
    check_deletable([], "arn:rp")
    with pytest.raises(InvalidRequest) as caught:
        check_deletable([("h-1", "Case 42"), ("h-2", "Audit")], "arn:rp")
    assert caught.value.field == "RecoveryPointArn"
    assert "under 2 active legal hold(s): h-1 ('Case 42'), h-2 ('Audit')" in caught.value.message


def test_held_points_may_keep_or_lengthen_their_retention_but_not_shorten_it() -> None:
    hold = [("h-1", "Case 42")]
    at = NOW + timedelta(days=30)
    check_lifecycle_change(hold, at, at)
    check_lifecycle_change(hold, at, at + timedelta(days=1))
    check_lifecycle_change(hold, at, None)
    check_lifecycle_change(hold, None, None)
    check_lifecycle_change([], at, NOW)
    for old, new in ((at, at - timedelta(days=1)), (None, at)):
        with pytest.raises(InvalidRequest) as caught:
            check_lifecycle_change(hold, old, new)
        assert caught.value.field == "Lifecycle.DeleteAfterDays"
        assert "cannot be shortened" in caught.value.message and "h-1 ('Case 42')" in caught.value.message


def test_active_hold_limit() -> None:
    check_hold_limit(MAX_ACTIVE_HOLDS - 1)
    with pytest.raises(LimitExceeded, match="already has 50 active legal holds"):
        check_hold_limit(MAX_ACTIVE_HOLDS)


# --- canceling ----------------------------------------------------------------------------------------------

def test_only_an_active_hold_can_be_canceled() -> None:
    check_cancel("ACTIVE", "h-1")
    with pytest.raises(InvalidResourceState, match="h-1 is CANCELED; only an ACTIVE legal hold"):
        check_cancel("CANCELED", "h-1")


def test_retain_record_until() -> None:
    assert retain_record_until(NOW, None) is None
    assert retain_record_until(NOW, 0) == NOW
    assert retain_record_until(NOW, 30) == NOW + timedelta(days=30)
    for bad in (-1, 36501, 1.5, True, "3"):
        with pytest.raises(InvalidParameterValue) as caught:
            retain_record_until(NOW, bad)
        assert caught.value.field == "RetainRecordInDays"


@given(st.integers(0, 400), st.integers(-1000, 1000))
def test_a_record_is_visible_exactly_until_retain_record_until(days: int, hours_later: int) -> None:
    until = retain_record_until(NOW, days)
    assert until is not None
    moment = NOW + timedelta(hours=hours_later)
    assert record_retained(until, moment) == (moment < NOW + timedelta(days=days))
    assert record_retained(None, moment)
