"""Recovery point lifecycle over time: CalculatedLifecycle, the retention plan, UpdateRecoveryPointLifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest
from snapkeep.domain.retention import (
    RecoveryPointAge,
    RetentionDecision,
    RetentionLifecycle,
    StorageClass,
    calculated_lifecycle,
    plan_retention,
    validate_lifecycle,
    validate_lifecycle_change,
)

T0 = datetime(2026, 1, 1, 5, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PlansLifecycle:
    """Stands in for plans.Lifecycle (written elsewhere): any object with the two attributes will do."""

    move_to_cold_storage_after_days: int | None = None
    delete_after_days: int | None = None
    opt_in_to_archive_for_supported_resources: bool = False


def point(arn: str = "rp-1", cold: int | None = None, delete: int | None = None, *,
          storage: StorageClass = "WARM", created: datetime = T0, hold: bool = False,
          min_days: int | None = None) -> RecoveryPointAge:
    return RecoveryPointAge(arn, created, RetentionLifecycle(cold, delete), storage, hold, min_days)


def one(plan_points: list[RecoveryPointAge], now: datetime) -> tuple[str, RetentionDecision]:
    plan = plan_retention(plan_points, now)
    for name in ("to_expire", "to_move_to_cold", "kept"):
        decisions = getattr(plan, name)
        if decisions:
            return name, decisions[0]
    raise AssertionError("empty plan")


# --- CalculatedLifecycle -----------------------------------------------------------------------------------

def test_calculated_lifecycle_adds_days_to_the_creation_time() -> None:
    assert calculated_lifecycle(T0, RetentionLifecycle(30, 120)) == (
        datetime(2026, 1, 31, 5, 0, tzinfo=UTC), datetime(2026, 5, 1, 5, 0, tzinfo=UTC))
    assert calculated_lifecycle(T0, RetentionLifecycle(None, 35)) == (None, datetime(2026, 2, 5, 5, 0, tzinfo=UTC))
    assert calculated_lifecycle(T0, PlansLifecycle(-1, -1)) == (None, None)
    assert calculated_lifecycle(T0, None) == (None, None)


def test_calculated_lifecycle_is_in_utc_whatever_the_input_zone() -> None:
    created = datetime(2026, 1, 1, 6, 0, tzinfo=timezone(timedelta(hours=1)))
    assert calculated_lifecycle(created, RetentionLifecycle(None, 1)) == (None, datetime(2026, 1, 2, 5, 0, tzinfo=UTC))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        calculated_lifecycle(datetime(2026, 1, 1), RetentionLifecycle(None, 1))
    with pytest.raises(ValueError, match="naive"):
        plan_retention([point(delete=1)], datetime(2026, 1, 1))


def test_negative_days_other_than_minus_one_are_refused() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        calculated_lifecycle(T0, RetentionLifecycle(None, -3))
    assert caught.value.field == "Lifecycle.DeleteAfterDays"
    assert "-1 (not set)" in caught.value.message


# --- plan_retention golden cases ---------------------------------------------------------------------------

def test_expires_once_delete_at_has_passed() -> None:
    assert one([point(delete=35)], T0 + timedelta(days=35)) == (
        "to_expire", RetentionDecision("rp-1", "DeleteAfterDays=35: DeleteAt 2026-02-05T05:00:00Z has passed",
                                       T0 + timedelta(days=35)))
    assert one([point(delete=35)], T0 + timedelta(days=35) - timedelta(seconds=1)) == (
        "kept", RetentionDecision("rp-1", "expires 2026-02-05T05:00:00Z", T0 + timedelta(days=35)))


def test_no_delete_after_days_keeps_forever() -> None:
    assert one([point()], T0 + timedelta(days=10_000)) == (
        "kept", RetentionDecision("rp-1", "no DeleteAfterDays: kept forever", None))
    assert one([point(cold=-1, delete=-1)], T0 + timedelta(days=10_000))[1].reason == "no DeleteAfterDays: kept forever"


def test_moves_to_cold_then_expires() -> None:
    p = point(cold=30, delete=120)
    assert one([p], T0 + timedelta(days=29)) == ("kept", RetentionDecision(
        "rp-1", "expires 2026-05-01T05:00:00Z; moves to cold storage at 2026-01-31T05:00:00Z", T0 + timedelta(days=30)))
    assert one([p], T0 + timedelta(days=30)) == ("to_move_to_cold", RetentionDecision(
        "rp-1", "MoveToColdStorageAfterDays=30: MoveToColdStorageAt 2026-01-31T05:00:00Z has passed",
        T0 + timedelta(days=30)))
    cold = point(cold=30, delete=120, storage="COLD")
    assert one([cold], T0 + timedelta(days=60)) == (
        "kept", RetentionDecision("rp-1", "expires 2026-05-01T05:00:00Z", T0 + timedelta(days=120)))
    assert one([cold], T0 + timedelta(days=120))[0] == "to_expire"


def test_due_for_cold_and_expiry_at_once_expires() -> None:
    assert one([point(cold=30, delete=120)], T0 + timedelta(days=400))[0] == "to_expire"


def test_legal_hold_blocks_expiry_and_says_so() -> None:
    name, decision = one([point(delete=35, hold=True, storage="COLD")], T0 + timedelta(days=400))
    assert name == "kept"
    assert decision.reason == ("legal hold active: DeleteAt 2026-02-05T05:00:00Z has passed but a held recovery "
                               "point is never deleted")
    assert one([point(delete=35, hold=True)], T0)[1].reason == "expires 2026-02-05T05:00:00Z; legal hold active"


def test_legal_hold_does_not_stop_the_move_to_cold() -> None:
    name, decision = one([point(cold=30, delete=120, hold=True)], T0 + timedelta(days=200))
    assert name == "to_move_to_cold"
    assert decision.reason.startswith("MoveToColdStorageAfterDays=30: ")
    assert "legal hold active" in decision.reason


def test_vault_lock_min_retention_holds_a_point_then_lets_it_go() -> None:
    p = point(delete=7, min_days=30)
    assert one([p], T0) == ("kept", RetentionDecision(
        "rp-1", "expires 2026-01-31T05:00:00Z (vault lock MinRetentionDays=30 extends the lifecycle DeleteAt "
        "2026-01-08T05:00:00Z)", T0 + timedelta(days=30)))
    assert one([p], T0 + timedelta(days=10)) == ("kept", RetentionDecision(
        "rp-1", "vault lock MinRetentionDays=30: kept until 2026-01-31T05:00:00Z although the lifecycle DeleteAt "
        "2026-01-08T05:00:00Z has passed", T0 + timedelta(days=30)))
    assert one([p], T0 + timedelta(days=30)) == ("to_expire", RetentionDecision(
        "rp-1", "DeleteAfterDays=7: DeleteAt 2026-01-08T05:00:00Z has passed (vault lock MinRetentionDays=30 held "
        "it until 2026-01-31T05:00:00Z)", T0 + timedelta(days=30)))


def test_vault_lock_shorter_than_lifecycle_changes_nothing() -> None:
    assert one([point(delete=35, min_days=7)], T0)[1].reason == "expires 2026-02-05T05:00:00Z"


def test_deleted_points_are_left_alone() -> None:
    assert one([point(delete=1, storage="DELETED")], T0 + timedelta(days=5)) == (
        "kept", RetentionDecision("rp-1", "already deleted (StorageClass DELETED): nothing to do", None))


def test_accepts_any_lifecycle_like_object() -> None:
    p = RecoveryPointAge("rp-9", T0, PlansLifecycle(None, 2), "WARM")
    assert plan_retention([p], T0 + timedelta(days=3)).to_expire[0].recovery_point_arn == "rp-9"


def test_plan_keeps_input_order_in_each_list() -> None:
    points = [point("a", delete=1), point("b"), point("c", delete=1), point("d", cold=1, delete=200)]
    plan = plan_retention(points, T0 + timedelta(days=2))
    assert [d.recovery_point_arn for d in plan.to_expire] == ["a", "c"]
    assert [d.recovery_point_arn for d in plan.to_move_to_cold] == ["d"]
    assert [d.recovery_point_arn for d in plan.kept] == ["b"]


# --- plan_retention properties -----------------------------------------------------------------------------

lifecycles_st = st.builds(RetentionLifecycle, st.one_of(st.none(), st.just(-1), st.integers(1, 400)),
                          st.one_of(st.none(), st.just(-1), st.integers(1, 600)))
points_st = st.lists(st.builds(
    RecoveryPointAge,
    st.uuids().map(lambda u: f"arn:aws:backup:us-east-1:111122223333:recovery-point:{u}"),
    st.integers(0, 800).map(lambda d: T0 + timedelta(days=d)),
    lifecycles_st,
    st.sampled_from(("WARM", "COLD", "DELETED")),
    st.booleans(),
    st.one_of(st.none(), st.integers(1, 500)),
), max_size=15, unique_by=lambda p: p.recovery_point_arn)
now_st = st.integers(0, 2000).map(lambda d: T0 + timedelta(days=d, hours=d % 24))


@settings(max_examples=200)
@given(points_st, now_st)
def test_plan_partitions_the_input_and_is_deterministic(points: list[RecoveryPointAge], now: datetime) -> None:
    plan = plan_retention(points, now)
    assert plan == plan_retention(list(points), now)
    placed = [d.recovery_point_arn for d in (*plan.to_expire, *plan.to_move_to_cold, *plan.kept)]
    assert sorted(placed) == sorted(p.recovery_point_arn for p in points)
    assert all(d.reason for d in (*plan.to_expire, *plan.to_move_to_cold, *plan.kept))


@settings(max_examples=200)
@given(points_st, now_st)
def test_never_expires_a_held_point_early_or_under_lock(points: list[RecoveryPointAge], now: datetime) -> None:
    by_arn = {p.recovery_point_arn: p for p in points}
    for decision in plan_retention(points, now).to_expire:
        p = by_arn[decision.recovery_point_arn]
        assert not p.legal_hold
        assert p.storage_class != "DELETED"
        _, delete_at = calculated_lifecycle(p.creation_date, p.lifecycle)
        assert delete_at is not None and now >= delete_at
        if p.vault_min_retention_days:
            assert now >= p.creation_date + timedelta(days=p.vault_min_retention_days)


@settings(max_examples=200)
@given(points_st, now_st)
def test_only_warm_points_past_their_cold_date_move(points: list[RecoveryPointAge], now: datetime) -> None:
    by_arn = {p.recovery_point_arn: p for p in points}
    for decision in plan_retention(points, now).to_move_to_cold:
        p = by_arn[decision.recovery_point_arn]
        cold_at, _ = calculated_lifecycle(p.creation_date, p.lifecycle)
        assert p.storage_class == "WARM" and cold_at is not None and now >= cold_at


@settings(max_examples=200)
@given(points_st, now_st, st.integers(0, 500))
def test_once_expired_a_point_stays_expired_later(points: list[RecoveryPointAge], now: datetime,
                                                  later: int) -> None:
    first = {d.recovery_point_arn for d in plan_retention(points, now).to_expire}
    second = {d.recovery_point_arn for d in plan_retention(points, now + timedelta(days=later)).to_expire}
    assert first <= second


# --- UpdateRecoveryPointLifecycle --------------------------------------------------------------------------

def test_valid_lifecycle_changes() -> None:
    validate_lifecycle_change(RetentionLifecycle(30, 120), RetentionLifecycle(60, 365), "WARM")
    validate_lifecycle_change(RetentionLifecycle(30, 120), RetentionLifecycle(30, 3650), "COLD")
    validate_lifecycle_change(RetentionLifecycle(None, 35), RetentionLifecycle(-1, -1), "WARM")
    validate_lifecycle_change(None, PlansLifecycle(None, 1), "WARM")
    validate_lifecycle_change(RetentionLifecycle(None, 35), RetentionLifecycle(None, None), "COLD")
    validate_lifecycle(RetentionLifecycle(30, 120))
    validate_lifecycle(RetentionLifecycle(36400, 36500))


LIFECYCLE_CASES: list[tuple[RetentionLifecycle | None, RetentionLifecycle, StorageClass, type[Exception], str, str]] = [
    (RetentionLifecycle(30, 120), RetentionLifecycle(30, 119), "WARM", InvalidParameterValue,
     "Lifecycle.DeleteAfterDays", "at least 90 days after MoveToColdStorageAfterDays (30)"),
    (None, RetentionLifecycle(1, 90), "WARM", InvalidParameterValue, "Lifecycle.DeleteAfterDays", "at least 91"),
    (None, RetentionLifecycle(None, 0), "WARM", InvalidParameterValue, "Lifecycle.DeleteAfterDays",
     "between 1 and 36500"),
    (None, RetentionLifecycle(None, 36501), "WARM", InvalidParameterValue, "Lifecycle.DeleteAfterDays",
     "between 1 and 36500"),
    (None, RetentionLifecycle(0, None), "WARM", InvalidParameterValue, "Lifecycle.MoveToColdStorageAfterDays",
     "between 1 and 36500"),
    (None, RetentionLifecycle(-2, None), "WARM", InvalidParameterValue, "Lifecycle.MoveToColdStorageAfterDays",
     "-1 (not set)"),
    (None, RetentionLifecycle("30", None), "WARM", InvalidParameterValue,  # type: ignore[arg-type]
     "Lifecycle.MoveToColdStorageAfterDays", "whole number of days"),
    (None, RetentionLifecycle(None, True), "WARM", InvalidParameterValue,
     "Lifecycle.DeleteAfterDays", "whole number of days"),
    (RetentionLifecycle(30, 120), RetentionLifecycle(60, 365), "COLD", InvalidRequest,
     "Lifecycle.MoveToColdStorageAfterDays", "cannot be changed after the recovery point has transitioned"),
    (RetentionLifecycle(30, 120), RetentionLifecycle(None, 365), "COLD", InvalidRequest,
     "Lifecycle.MoveToColdStorageAfterDays", "(it is 30; got not set)"),
    (RetentionLifecycle(30, 120), RetentionLifecycle(30, 365), "DELETED", InvalidRequest, "Lifecycle",
     "recovery point is deleted"),
]


@pytest.mark.parametrize(("old", "new", "storage", "error", "field", "fragment"), LIFECYCLE_CASES)
def test_invalid_lifecycle_change(old: RetentionLifecycle | None, new: RetentionLifecycle, storage: StorageClass,
                                  error: type[Exception], field: str, fragment: str) -> None:
    with pytest.raises(error) as caught:
        validate_lifecycle_change(old, new, storage)
    assert type(caught.value) is error
    assert caught.value.field == field  # type: ignore[attr-defined]
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(field)


def test_lifecycle_field_prefix_can_be_chosen() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        validate_lifecycle(RetentionLifecycle(10, 20), "Rules[0].Lifecycle")
    assert caught.value.field == "Rules[0].Lifecycle.DeleteAfterDays"
    assert caught.value.message.startswith("Rules[0].Lifecycle.DeleteAfterDays: must be at least 90 days after")


@given(st.integers(1, 36500), st.integers(1, 36500))
def test_cold_rule_is_exactly_ninety_days(cold: int, delete: int) -> None:
    ok = delete >= cold + 90
    try:
        validate_lifecycle(RetentionLifecycle(cold, delete))
    except InvalidParameterValue:
        assert not ok
    else:
        assert ok
