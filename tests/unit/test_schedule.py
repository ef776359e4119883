"""AWS cron expressions: golden cases written by hand, DST, parse errors, and property tests against a brute force."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.domain.schedule import CronExpression, load_timezone


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def runs(expr: str, after: datetime, count: int, tz: str = "UTC") -> list[datetime]:
    return CronExpression.parse(expr).upcoming(after, tz, count)


# ------------------------------------------------------------------------------------------- golden cases


def test_default_daily_at_five_utc() -> None:
    assert runs("cron(0 5 ? * * *)", utc(2024, 3, 10, 12), 3) == [
        utc(2024, 3, 11, 5), utc(2024, 3, 12, 5), utc(2024, 3, 13, 5)]


def test_weekdays_at_noon_and_strictly_after() -> None:
    # 2024-03-08 is a Friday; a run exactly at `after` is not "after" it.
    assert runs("cron(0 12 ? * MON-FRI *)", utc(2024, 3, 8, 12), 3) == [
        utc(2024, 3, 11, 12), utc(2024, 3, 12, 12), utc(2024, 3, 13, 12)]


def test_default_timezone_is_utc() -> None:
    assert CronExpression.parse("cron(0 5 ? * * *)").next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 5)


@pytest.mark.parametrize(("expr", "hourly"), [
    ("cron(0/30 * ? * * *)", False),
    ("cron(0,30 9 ? * * *)", False),
    ("cron(*/15 3 ? * * *)", False),
    ("cron(15 * ? * * *)", True),
    ("cron(0 0/2 ? * * *)", True),
    ("cron(0 5 ? * * *)", True),
    ("cron(5/60 * ? * * *)", True),
])
def test_at_most_hourly(expr: str, hourly: bool) -> None:
    assert CronExpression.parse(expr).is_at_most_hourly() is hourly


def test_every_thirty_minutes_really_runs_twice_an_hour() -> None:
    assert runs("cron(0/30 * ? * * *)", utc(2024, 1, 1), 3) == [
        utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1), utc(2024, 1, 1, 1, 30)]


def test_minute_increments_start_at_the_given_minute() -> None:
    assert runs("cron(1/10 9 ? * * *)", utc(2024, 1, 1), 7) == [
        utc(2024, 1, 1, 9, m) for m in (1, 11, 21, 31, 41, 51)] + [utc(2024, 1, 2, 9, 1)]
    assert runs("cron(10-40/10 9 ? * * *)", utc(2024, 1, 1), 5) == [
        utc(2024, 1, 1, 9, 10), utc(2024, 1, 1, 9, 20), utc(2024, 1, 1, 9, 30), utc(2024, 1, 1, 9, 40),
        utc(2024, 1, 2, 9, 10)]


def test_last_day_of_month_including_leap_february() -> None:
    assert runs("cron(0 3 L * ? *)", utc(2024, 1, 31, 3), 3) == [
        utc(2024, 2, 29, 3), utc(2024, 3, 31, 3), utc(2024, 4, 30, 3)]
    assert runs("cron(0 3 L 2 ? *)", utc(2023, 1, 1), 3) == [
        utc(2023, 2, 28, 3), utc(2024, 2, 29, 3), utc(2025, 2, 28, 3)]


def test_last_weekday_of_month() -> None:
    # 2024-03-31 is a Sunday -> Friday 29th; 2024-08-31 is a Saturday -> Friday 30th; 2024-04-30 is a Tuesday.
    assert runs("cron(0 3 LW * ? 2024)", utc(2024, 3, 1), 3) == [
        utc(2024, 3, 29, 3), utc(2024, 4, 30, 3), utc(2024, 5, 31, 3)]
    assert CronExpression.parse("cron(0 3 LW * ? *)").next_after(utc(2024, 8, 1)) == utc(2024, 8, 30, 3)


def test_nearest_weekday_when_the_day_is_a_saturday_or_a_sunday() -> None:
    expr = "cron(0 3 15W * ? *)"
    # June 15 2024 is a Saturday -> Friday 14th; September 15 2024 is a Sunday -> Monday 16th;
    # July 15 2024 is a Monday -> the 15th itself.
    assert CronExpression.parse(expr).next_after(utc(2024, 6, 1)) == utc(2024, 6, 14, 3)
    assert CronExpression.parse(expr).next_after(utc(2024, 9, 1)) == utc(2024, 9, 16, 3)
    assert CronExpression.parse(expr).next_after(utc(2024, 7, 1)) == utc(2024, 7, 15, 3)


def test_nearest_weekday_never_leaves_the_month() -> None:
    # June 1 2024 is a Saturday -> Monday 3rd (not Friday May 31st); September 1 2024 a Sunday -> Monday 2nd.
    assert runs("cron(0 1 1W * ? *)", utc(2024, 5, 2), 1) == [utc(2024, 6, 3, 1)]
    assert runs("cron(0 1 1W * ? *)", utc(2024, 8, 2), 1) == [utc(2024, 9, 2, 1)]
    # March 31 2024 is a Sunday and the last day -> Friday 29th (not Monday April 1st).
    assert runs("cron(0 1 31W * ? *)", utc(2024, 3, 1), 1) == [utc(2024, 3, 29, 1)]
    # 30W: February has no 30th, so no run in February; March 30 2024 is a Saturday -> Friday 29th.
    assert runs("cron(0 1 30W * ? 2024)", utc(2024, 1, 31), 1) == [utc(2024, 3, 29, 1)]


def test_last_friday_and_last_thursday() -> None:
    assert runs("cron(0 3 ? * 6L *)", utc(2024, 1, 1), 3) == [
        utc(2024, 1, 26, 3), utc(2024, 2, 23, 3), utc(2024, 3, 29, 3)]
    assert runs("cron(0 3 ? * 5L *)", utc(2024, 2, 1), 2) == [utc(2024, 2, 29, 3), utc(2024, 3, 28, 3)]
    assert runs("cron(0 3 ? * FRIL *)", utc(2024, 1, 1), 1) == [utc(2024, 1, 26, 3)]


def test_first_monday() -> None:
    assert runs("cron(0 3 ? * 2#1 *)", utc(2023, 12, 31), 3) == [
        utc(2024, 1, 1, 3), utc(2024, 2, 5, 3), utc(2024, 3, 4, 3)]


def test_fifth_tuesday_skips_months_without_one() -> None:
    # 2024: Tuesdays fall on 30 Jan, 30 Apr, 30 Jul, 29 Oct, 31 Dec as fifth ones; Feb, Mar... have four.
    assert runs("cron(0 3 ? * 3#5 *)", utc(2024, 1, 1), 5) == [
        utc(2024, 1, 30, 3), utc(2024, 4, 30, 3), utc(2024, 7, 30, 3), utc(2024, 10, 29, 3), utc(2024, 12, 31, 3)]


def test_day_of_week_l_alone_means_saturday_and_one_is_sunday() -> None:
    assert runs("cron(0 3 ? * L *)", utc(2024, 1, 1), 2) == [utc(2024, 1, 6, 3), utc(2024, 1, 13, 3)]
    assert runs("cron(0 3 ? * 1 *)", utc(2024, 1, 1), 1) == [utc(2024, 1, 7, 3)]


def test_year_ranges_and_the_end_of_time() -> None:
    assert runs("cron(0 0 1 1 ? 2025-2027)", utc(2024, 6, 1), 5) == [
        utc(2025, 1, 1), utc(2026, 1, 1), utc(2027, 1, 1)]
    assert runs("cron(0 0 1 1 ? 2030/5)", utc(2024, 6, 1), 2) == [utc(2030, 1, 1), utc(2035, 1, 1)]
    assert CronExpression.parse("cron(0 0 1 1 ? 2025-2027)").next_after(utc(2027, 1, 1)) is None
    assert CronExpression.parse("cron(0 0 1 1 ? *)").next_after(utc(2199, 1, 1)) is None
    assert CronExpression.parse("cron(59 23 31 12 ? *)").next_after(utc(2199, 1, 1)) == utc(2199, 12, 31, 23, 59)


def test_month_and_day_names_are_case_insensitive() -> None:
    # Mondays in January and July 2024 at 06:30.
    expected = [utc(2024, 1, 22, 6, 30), utc(2024, 1, 29, 6, 30), utc(2024, 7, 1, 6, 30)]
    assert runs("cron(30 6 ? JAN,JUL MON *)", utc(2024, 1, 20), 3) == expected
    lower = CronExpression.parse("cron(30 6 ? jan,Jul mon *)")
    assert lower.text == "cron(30 6 ? JAN,JUL MON *)"
    assert lower == CronExpression.parse("  cron(30  6 ? JAN,JUL MON *) ")
    assert lower.upcoming(utc(2024, 1, 20), "UTC", 3) == expected
    # Sunday 31 March 2024 is the last Sunday-to-Tuesday of January-March in 2024.
    assert runs("cron(0 9 ? JAN-MAR SUN-TUE 2024)", utc(2024, 3, 30), 3) == [utc(2024, 3, 31, 9)]


def test_wrapping_ranges_run_over_the_end_of_the_field() -> None:
    assert runs("cron(0 3 ? * FRI-MON *)", utc(2024, 1, 1, 4), 4) == [  # Monday 1 Jan 2024
        utc(2024, 1, 5, 3), utc(2024, 1, 6, 3), utc(2024, 1, 7, 3), utc(2024, 1, 8, 3)]
    assert runs("cron(0 22-1 ? * * *)", utc(2024, 1, 1, 12), 4) == [
        utc(2024, 1, 1, 22), utc(2024, 1, 1, 23), utc(2024, 1, 2, 0), utc(2024, 1, 2, 1)]


def test_runs_between_is_exclusive_inclusive() -> None:
    expr = CronExpression.parse("cron(0 5 ? * * *)")
    assert list(expr.runs_between(utc(2024, 1, 1, 5), utc(2024, 1, 3, 5))) == [utc(2024, 1, 2, 5), utc(2024, 1, 3, 5)]
    assert list(expr.runs_between(utc(2024, 1, 3), utc(2024, 1, 1))) == []


def test_accepts_any_aware_datetime_and_refuses_naive() -> None:
    expr = CronExpression.parse("cron(0 5 ? * * *)")
    paris = datetime(2024, 1, 1, 7, tzinfo=ZoneInfo("Europe/Paris"))  # 06:00 UTC
    assert expr.next_after(paris) == utc(2024, 1, 2, 5)
    with pytest.raises(ValueError):
        expr.next_after(datetime(2024, 1, 1))


def test_results_are_utc() -> None:
    run = CronExpression.parse("cron(0 5 ? * * *)").next_after(utc(2024, 1, 1), "Asia/Tokyo")
    assert run == utc(2024, 1, 1, 20) and run is not None and run.tzinfo is UTC


# ------------------------------------------------------------------------------------------------------- DST


def test_new_york_spring_forward_skips_the_missing_run() -> None:
    # 2024-03-10 02:00 EST -> 03:00 EDT: 02:30 does not exist that day.
    assert runs("cron(30 2 * * ? *)", utc(2024, 3, 8, 12), 2, "America/New_York") == [
        utc(2024, 3, 9, 7, 30), utc(2024, 3, 11, 6, 30)]


def test_new_york_fall_back_runs_once_at_the_first_occurrence() -> None:
    # 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 happens twice; the run is at 01:30 EDT (05:30 UTC) only.
    assert runs("cron(30 1 * * ? *)", utc(2024, 11, 2), 3, "America/New_York") == [
        utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_new_york_hourly_across_both_transitions() -> None:
    hourly = CronExpression.parse("cron(0 * * * ? *)")
    # Spring: 01:00 EST, (02:00 missing), 03:00 EDT, 04:00 EDT, 05:00 EDT.
    assert list(hourly.runs_between(utc(2024, 3, 10, 5), utc(2024, 3, 10, 9), "America/New_York")) == [
        utc(2024, 3, 10, 6), utc(2024, 3, 10, 7), utc(2024, 3, 10, 8), utc(2024, 3, 10, 9)]
    # Fall: 01:00 EDT, (01:00 EST not repeated), 02:00 EST, 03:00 EST, 04:00 EST.
    assert list(hourly.runs_between(utc(2024, 11, 3, 4), utc(2024, 11, 3, 9), "America/New_York")) == [
        utc(2024, 11, 3, 5), utc(2024, 11, 3, 7), utc(2024, 11, 3, 8), utc(2024, 11, 3, 9)]


def test_next_after_from_inside_the_repeated_hour() -> None:
    hourly = CronExpression.parse("cron(0 * * * ? *)")
    assert hourly.next_after(utc(2024, 11, 3, 5, 30), "America/New_York") == utc(2024, 11, 3, 7)  # 01:30 EDT
    assert hourly.next_after(utc(2024, 11, 3, 6, 30), "America/New_York") == utc(2024, 11, 3, 7)  # 01:30 EST
    half = CronExpression.parse("cron(45 1 * * ? *)")
    assert half.next_after(utc(2024, 11, 3, 5, 50), "America/New_York") == utc(2024, 11, 4, 6, 45)


def test_berlin_spring_forward_and_fall_back() -> None:
    # 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET.
    assert runs("cron(30 2 * * ? *)", utc(2024, 3, 29, 12), 2, "Europe/Berlin") == [
        utc(2024, 3, 30, 1, 30), utc(2024, 4, 1, 0, 30)]
    assert runs("cron(30 2 * * ? *)", utc(2024, 10, 25, 12), 3, "Europe/Berlin") == [
        utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]
    hourly = CronExpression.parse("cron(0 * * * ? *)")
    assert list(hourly.runs_between(utc(2024, 10, 26, 23), utc(2024, 10, 27, 3), "Europe/Berlin")) == [
        utc(2024, 10, 27, 0), utc(2024, 10, 27, 2), utc(2024, 10, 27, 3)]  # 02:00 CEST, 03:00 CET, 04:00 CET


def test_lord_howe_half_hour_dst() -> None:
    # 2024-10-06 02:00 +10:30 -> 02:30 +11; 2024-04-07 02:00 +11 -> 01:30 +10:30.
    assert runs("cron(15 2 * * ? *)", utc(2024, 10, 4), 2, "Australia/Lord_Howe") == [
        utc(2024, 10, 4, 15, 45), utc(2024, 10, 6, 15, 15)]
    assert runs("cron(45 1 * * ? *)", utc(2024, 4, 5), 3, "Australia/Lord_Howe") == [
        utc(2024, 4, 5, 14, 45), utc(2024, 4, 6, 14, 45), utc(2024, 4, 7, 15, 15)]


# ------------------------------------------------------------------------------------------------ efficiency


@pytest.mark.parametrize("expr", ["cron(0 0 1 1 ? *)", "cron(0 0 29 2 ? *)", "cron(0 0 ? 2 3#5 *)"])
def test_sparse_schedules_are_fast(expr: str) -> None:
    started = time.perf_counter()
    result = CronExpression.parse(expr).upcoming(utc(2024, 1, 1), "Europe/Berlin", 100)
    assert time.perf_counter() - started < 1.0
    assert result == sorted(result) and len(result) >= 6  # a fifth Tuesday in February: 6 times until 2199


@pytest.mark.parametrize("expr", ["cron(0 0 30 2 ? *)", "cron(0 0 31 4,6,9,11 ? *)", "cron(0 0 ? 2 2#5 2100-2110)"])
def test_impossible_schedules_end_quickly(expr: str) -> None:
    started = time.perf_counter()
    cron = CronExpression.parse(expr)
    assert cron.next_after(utc(1970, 1, 1), "America/New_York") is None
    assert cron.upcoming(utc(2024, 1, 1), "UTC", 100) == []
    assert list(cron.runs_between(utc(2024, 1, 1), utc(2199, 12, 31))) == []
    assert time.perf_counter() - started < 1.0


def test_feb_29_hundred_runs_reach_the_end_of_2199() -> None:
    result = CronExpression.parse("cron(0 0 29 2 ? *)").upcoming(utc(2024, 1, 1), "UTC", 100)
    assert result[0] == utc(2024, 2, 29) and result[-1] == utc(2196, 2, 29)
    assert utc(2100, 2, 28) not in result and len(result) == 43  # 2100 is not a leap year


# ---------------------------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(("expr", "fragment"), [
    ("cron(60 5 ? * * *)", "minutes 60 is out of range 0-59"),
    ("cron(-1 5 ? * * *)", "minutes"),
    ("cron(0/0 5 ? * * *)", "minutes increment 0"),
    ("cron(0/x 5 ? * * *)", "minutes increment"),
    ("cron(1,,2 5 ? * * *)", "minutes"),
    ("cron(0 24 ? * * *)", "hours 24 is out of range 0-23"),
    ("cron(0 5-25 ? * * *)", "hours 25"),
    ("cron(0 five ? * * *)", "hours value 'five'"),
    ("cron(0 ? * * ? *)", "hours"),
    ("cron(0 5 32 * ? *)", "day-of-month 32 is out of range 1-31"),
    ("cron(0 5 0 * ? *)", "day-of-month 0 is out of range 1-31"),
    ("cron(0 5 L-3 * ? *)", "day-of-month 'L-3'"),
    ("cron(0 5 1,L * ? *)", "day-of-month '1,L'"),
    ("cron(0 5 32W * ? *)", "day-of-month 32"),
    ("cron(0 5 1-15W * ? *)", "day-of-month"),
    ("cron(0 5 1 13 ? *)", "month 13 is out of range 1-12"),
    ("cron(0 5 1 FOO ? *)", "month value 'FOO'"),
    ("cron(0 5 1 0 ? *)", "month 0"),
    ("cron(0 5 ? * 8 *)", "day-of-week 8 is out of range 1-7"),
    ("cron(0 5 ? * 0 *)", "day-of-week 0"),
    ("cron(0 5 ? * 3#6 *)", "day-of-week '3#6'"),
    ("cron(0 5 ? * 3#1,6#3 *)", "only one '#'"),
    ("cron(0 5 ? * 3#1#2 *)", "only one '#'"),
    ("cron(0 5 ? * 1/2 *)", "day-of-week does not allow '/'"),
    ("cron(0 5 ? * 2-6L *)", "day-of-week '2-6L'"),
    ("cron(0 5 ? * 1,L *)", "day-of-week '1,L'"),
    ("cron(0 5 ? * MON,? *)", "day-of-week"),
    ("cron(0 5 ? * FUNDAY *)", "day-of-week value 'FUNDAY'"),
    ("cron(0 5 1 * ? 1969)", "year 1969 is out of range 1970-2199"),
    ("cron(0 5 1 * ? 2200)", "year 2200"),
    ("cron(0 5 1 * ? 2030-2025)", "year range '2030-2025' runs backwards"),
    ("cron(0 5 1 * ? L)", "year"),
    ("cron(0 5 * * * *)", "one of day-of-month ('*') and day-of-week ('*') must be '?'"),
    ("cron(0 5 1 * MON *)", "day-of-month ('1') and day-of-week ('MON')"),
    ("cron(0 5 ? * ? *)", "day-of-month and day-of-week cannot both be '?'"),
    ("cron(0 5 ? * *)", "expected 6 fields"),
    ("cron(0 5 ? * * * *)", "expected 6 fields"),
    ("cron()", "expected 6 fields"),
    ("0 5 ? * * *", "not a cron expression"),
    ("rate(1 hour)", "rate() expressions are not supported"),
    ("cron(0 5 ? * * *", "not a cron expression"),
    ("", "not a cron expression"),
    ("cron(99999999999999999999 5 ? * * *)", "minutes 99999999999999999999 is out of range"),
    ("cron(0 5 ? * * ２０２４)", "year value"),
])
def test_parse_errors_name_the_sub_field(expr: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        CronExpression.parse(expr, field="Rules[0].ScheduleExpression")
    assert caught.value.field == "Rules[0].ScheduleExpression"
    assert caught.value.message.startswith("Rules[0].ScheduleExpression: ")
    assert fragment in caught.value.message


def test_default_field_name_and_non_strings() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        CronExpression.parse("cron(0 5 32 * ? *)")
    assert caught.value.message == "ScheduleExpression: day-of-month 32 is out of range 1-31"
    assert caught.value.field == "ScheduleExpression"
    with pytest.raises(InvalidParameterValue):
        CronExpression.parse(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue):
        CronExpression("cron(0 5 ? * ? *)")


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "America", "UTC\n",
                                  "Europe/Berlin ", "a" * 300, "zone.tab"])
def test_unknown_time_zones(name: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        load_timezone(name, field="Rules[0].ScheduleExpressionTimezone")
    assert caught.value.field == "Rules[0].ScheduleExpressionTimezone"
    with pytest.raises(InvalidParameterValue):
        CronExpression.parse("cron(0 5 ? * * *)").next_after(utc(2024, 1, 1), name)


def test_known_time_zones() -> None:
    assert load_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert load_timezone("UTC") == ZoneInfo("UTC")
    assert load_timezone("Etc/GMT+5") == ZoneInfo("Etc/GMT+5")


_CRONISH = st.lists(st.sampled_from(
    ["0", "1", "5", "7", "12", "23", "31", "59", "60", "1970", "2199", "*", "?", ",", "-", "/", "L", "W", "#",
     "LW", "JAN", "mon", "FRI", "x", " ", "  ", "\t", "(", ")", "cron(", "٣"]), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), _CRONISH, _CRONISH.map(lambda s: f"cron({s})")))
def test_garbage_only_ever_gives_invalid_parameter_value(text: str) -> None:
    try:
        cron = CronExpression.parse(text)
    except InvalidParameterValue as exc:
        assert exc.field == "ScheduleExpression" and exc.message.startswith("ScheduleExpression: ")
        return
    cron.next_after(utc(2024, 1, 1), "America/New_York")
    assert CronExpression.parse(cron.text) == cron


# --------------------------------------------------------------------------------- properties vs brute force


@dataclass(frozen=True)
class Structured:
    """An expression built from parts, with an independent matcher for the reference."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    dom: str  # "?", "*", "L", "LW", "<n>W" or a list of days
    months: tuple[int, ...] | None  # None = "*"
    dow: str  # "?", "*", "<d>L", "<d>#<k>" or a list of days
    years: tuple[int, int]

    @property
    def text(self) -> str:
        def lst(values: tuple[int, ...]) -> str:
            return ",".join(map(str, values))
        month = "*" if self.months is None else lst(self.months)
        return (f"cron({lst(self.minutes)} {lst(self.hours)} {self.dom} {month} {self.dow} "
                f"{self.years[0]}-{self.years[1]})")

    def day_matches(self, d: date) -> bool:
        last = calendar.monthrange(d.year, d.month)[1]
        aws_dow = d.isoweekday() % 7 + 1
        dom, dow = self.dom, self.dow
        if dom == "*":
            return True
        if dom == "L":
            return d.day == last
        if dom == "LW":
            weekdays = [x for x in range(1, last + 1) if date(d.year, d.month, x).weekday() < 5]
            return d.day == weekdays[-1]
        if dom.endswith("W"):
            n = int(dom[:-1])
            if n > last:
                return False
            weekdays = [x for x in range(1, last + 1) if date(d.year, d.month, x).weekday() < 5]
            return d.day == min(weekdays, key=lambda x: abs(x - n))
        if dom != "?":
            return d.day in {int(x) for x in dom.split(",")}
        if dow == "*":
            return True
        if dow.endswith("L"):
            return aws_dow == int(dow[:-1]) and d.day + 7 > last
        if "#" in dow:
            wd, k = dow.split("#")
            return aws_dow == int(wd) and (d.day - 1) // 7 + 1 == int(k)
        return aws_dow in {int(x) for x in dow.split(",")}

    def matches(self, wall: datetime) -> bool:
        return (wall.minute in self.minutes and wall.hour in self.hours
                and (self.months is None or wall.month in self.months)
                and self.years[0] <= wall.year <= self.years[1] and self.day_matches(wall.date()))


def _values(lo: int, hi: int, max_size: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(lo, hi), min_size=1, max_size=max_size, unique=True).map(lambda v: tuple(sorted(v)))


_DOM = st.one_of(st.just("*"), st.just("L"), st.just("LW"), st.integers(1, 31).map(lambda n: f"{n}W"),
                 _values(1, 31, 4).map(lambda v: ",".join(map(str, v))))
_DOW = st.one_of(st.just("*"), st.integers(1, 7).map(lambda d: f"{d}L"),
                 st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
                 _values(1, 7, 3).map(lambda v: ",".join(map(str, v))))


@st.composite
def structured(draw: st.DrawFn, max_minutes: int = 3, max_hours: int = 4) -> Structured:
    day_of_month = draw(st.booleans())
    first = draw(st.integers(2018, 2028))
    years = draw(st.one_of(st.just((1970, 2199)), st.just((first, draw(st.integers(first, 2030))))))
    return Structured(
        minutes=draw(_values(0, 59, max_minutes)),
        hours=draw(st.one_of(_values(0, 23, max_hours), st.just(tuple(range(24))))),
        dom=draw(_DOM) if day_of_month else "?",
        months=draw(st.one_of(st.none(), _values(1, 12, 6))),
        dow="?" if day_of_month else draw(_DOW),
        years=years,
    )


_ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Kolkata"]
# Instants near DST changes in the zones above, so short intervals often straddle one.
_TRANSITIONS = [utc(2024, 3, 10, 7), utc(2024, 11, 3, 6), utc(2024, 3, 31, 1), utc(2024, 10, 27, 1),
                utc(2024, 4, 6, 15), utc(2024, 10, 5, 15, 30), utc(2019, 2, 17, 2), utc(2018, 11, 4, 3),
                utc(2023, 3, 12, 7), utc(2025, 11, 2, 6)]


def first_occurrence_runs(spec: Structured, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Brute force: every UTC minute in (start, end] whose wall-clock time matches and is that time's first
    occurrence (so skipped wall times never run and repeated ones run once)."""
    out = []
    t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= end:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if spec.matches(wall) and wall.replace(tzinfo=zone, fold=0).astimezone(UTC) == t:
            out.append(t)
        t += timedelta(minutes=1)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=structured(), daily=st.booleans(), zone=st.sampled_from(_ZONES), anchor=st.sampled_from(_TRANSITIONS),
       offset=st.integers(-36 * 60, 12 * 60), seconds=st.integers(0, 59))
def test_no_run_is_missed_against_minute_by_minute_brute_force(
        spec: Structured, daily: bool, zone: str, anchor: datetime, offset: int, seconds: int) -> None:
    if daily:  # every day, so the hours around the DST change are always in play
        spec = replace(spec, dom="*", dow="?", months=None, years=(1970, 2199))
    start = anchor + timedelta(minutes=offset, seconds=seconds)
    end = start + timedelta(hours=40)
    cron = CronExpression.parse(spec.text)
    assert list(cron.runs_between(start, end, zone)) == first_occurrence_runs(spec, start, end, ZoneInfo(zone))


def day_level_runs(spec: Structured, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Brute force over days (for sparse schedules over long spans): every matching wall time that exists."""
    out = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        for hour in spec.hours:
            for minute in spec.minutes:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                instant = wall.replace(tzinfo=zone).astimezone(UTC)
                exists = instant.astimezone(zone).replace(tzinfo=None) == wall
                if exists and spec.matches(wall) and start < instant <= end:
                    out.append(instant)
        day += timedelta(days=1)
    return sorted(out)


@settings(max_examples=40, deadline=None)
@given(spec=structured(max_minutes=2, max_hours=2), zone=st.sampled_from(_ZONES),
       start=st.datetimes(datetime(2019, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)))
def test_sparse_schedules_over_long_spans_against_day_brute_force(
        spec: Structured, zone: str, start: datetime) -> None:
    end = start + timedelta(days=500)
    cron = CronExpression.parse(spec.text)
    assert list(cron.runs_between(start, end, zone)) == day_level_runs(spec, start, end, ZoneInfo(zone))


@settings(max_examples=60, deadline=None)
@given(spec=structured(), zone=st.sampled_from(_ZONES),
       after=st.datetimes(datetime(2017, 1, 1), datetime(2029, 1, 1), timezones=st.just(UTC)))
def test_upcoming_runs_match_increase_and_are_found_again(spec: Structured, zone: str, after: datetime) -> None:
    cron = CronExpression.parse(spec.text)
    tz = ZoneInfo(zone)
    result = cron.upcoming(after, zone, 12)
    assert all(r.tzinfo is UTC for r in result)
    assert all(a < b for a, b in pairwise(result)), "strictly increasing"
    assert not result or result[0] > after
    for run in result:
        wall = run.astimezone(tz).replace(tzinfo=None)
        assert spec.matches(wall), f"{run} is {wall} local, which {spec.text} does not name"
        assert cron.matches(wall)
        assert cron.next_after(run - timedelta(seconds=1), zone) == run
    for previous, run in pairwise(result):
        assert cron.next_after(previous, zone) == run
