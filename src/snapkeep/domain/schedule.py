"""AWS cron expressions (EventBridge syntax, as AWS Backup uses them) evaluated in an IANA time zone.

A parser of our own because no standard-library tool knows AWS's dialect: six fields, `?` in exactly one day
field, `L`, `W`, `LW`, `nL`, `n#k`, years 1970-2199, 1 = Sunday. Evaluation walks year -> month -> day -> hour ->
minute over the values the expression allows, so a yearly or an impossible schedule costs a few hundred steps,
never a minute-by-minute scan.

Local time (EventBridge Scheduler's documented rules, which AWS Backup follows): a run whose wall-clock time does
not exist (spring-forward gap) is skipped; a run in the repeated fall-back hour happens once, at the first
occurrence (fold=0).

Choices where AWS documents nothing (Quartz, which EventBridge's syntax comes from, decided them):
- `LW` (last weekday of the month) is accepted: the EventBridge console accepts it.
- `L-n` (offset from the last day) is refused: AWS documents no such form.
- A range that wraps (`FRI-MON`, `22-2` in hours) runs over the end of the field, as in Quartz.
- `nW` for a day the month does not have (`31W` in April) gives no run that month, like plain `31`.
- `L`, `LW`, `nW`, `nL` and `n#k` must stand alone in their field; `L` alone in day-of-week means Saturday.
"""

from __future__ import annotations

import calendar
import dataclasses
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapkeep.domain.clock import ensure_utc
from snapkeep.domain.errors import InvalidParameterValue

MIN_YEAR = 1970
MAX_YEAR = 2199

_MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_FIELD_ORDER = "minutes hours day-of-month month day-of-week year"
_TZ_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


class _CronError(Exception):
    """A parse problem, without the field prefix; `parse` turns it into InvalidParameterValue."""


@dataclasses.dataclass(frozen=True)
class _FieldDef:
    name: str
    lo: int
    hi: int
    names: Mapping[str, int]
    steps: bool
    cyclic: bool
    hint: str


_MINUTES = _FieldDef("minutes", 0, 59, {}, steps=True, cyclic=True, hint="0-59")
_HOURS = _FieldDef("hours", 0, 23, {}, steps=True, cyclic=True, hint="0-23")
_DOM = _FieldDef("day-of-month", 1, 31, {}, steps=True, cyclic=True, hint="1-31, L, LW or nW")
_MONTH = _FieldDef("month", 1, 12, _MONTH_NAMES, steps=True, cyclic=True, hint="1-12 or JAN-DEC")
_DOW = _FieldDef("day-of-week", 1, 7, _DAY_NAMES, steps=False, cyclic=True, hint="1-7 or SUN-SAT, nL, n#k")
_YEAR = _FieldDef("year", MIN_YEAR, MAX_YEAR, {}, steps=True, cyclic=False, hint=f"{MIN_YEAR}-{MAX_YEAR}")


@dataclasses.dataclass(frozen=True)
class _DaySpec:
    """One day field. kind: any | set | last | last_weekday | nearest_weekday | last_of | nth."""

    kind: str
    values: frozenset[int] = frozenset()
    n: int = 0
    k: int = 0


@dataclasses.dataclass(frozen=True)
class _Spec:
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    dom: _DaySpec
    months: tuple[int, ...]
    dow: _DaySpec
    years: tuple[int, ...]


# ---------------------------------------------------------------------------------------------------- parsing


def _value(token: str, fd: _FieldDef, item: str) -> int:
    if not token:
        raise _CronError(f"{fd.name} item '{item}' is missing a value")
    upper = token.upper()
    if upper in fd.names:
        return fd.names[upper]
    if token.isascii() and token.isdigit():
        value = int(token) if len(token) <= 9 else fd.hi + 1
        if not fd.lo <= value <= fd.hi:
            raise _CronError(f"{fd.name} {token} is out of range {fd.lo}-{fd.hi}")
        return value
    raise _CronError(f"{fd.name} value '{token}' is not valid (expected {fd.hint})")


def _parse_item(item: str, fd: _FieldDef) -> set[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not fd.steps:
            raise _CronError(f"{fd.name} does not allow '/' increments ('{item}')")
        span = fd.hi - fd.lo + 1
        if not (step_text.isascii() and step_text.isdigit()):
            raise _CronError(f"{fd.name} increment '{step_text}' in '{item}' is not a number")
        step = int(step_text) if len(step_text) <= 9 else span + 1
        if not 1 <= step <= span:
            raise _CronError(f"{fd.name} increment {step_text} in '{item}' is out of range 1-{span}")
    if base == "*":
        start, end = fd.lo, fd.hi
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = _value(first, fd, item), _value(last, fd, item)
    else:
        start = _value(base, fd, item)
        end = fd.hi if slash else start
    if start <= end:
        seq = list(range(start, end + 1))
    elif fd.cyclic:
        seq = list(range(start, fd.hi + 1)) + list(range(fd.lo, end + 1))
    else:
        raise _CronError(f"{fd.name} range '{base}' runs backwards")
    return set(seq[::step])


def _parse_set(text: str, fd: _FieldDef) -> frozenset[int]:
    if "?" in text:
        allowed = "only day-of-month and day-of-week take '?'" if fd not in (_DOM, _DOW) else (
            "'?' must stand alone")
        raise _CronError(f"{fd.name} '{text}' is not valid: {allowed}")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _CronError(f"{fd.name} '{text}' has an empty list item")
        values |= _parse_item(item, fd)
    return frozenset(values)


def _parse_dom(text: str) -> _DaySpec:
    upper = text.upper()
    if upper == "?":
        return _DaySpec("any")
    if upper == "L":
        return _DaySpec("last")
    if upper == "LW":
        return _DaySpec("last_weekday")
    if upper.startswith("L-"):
        raise _CronError(f"day-of-month '{text}': offsets from the last day (L-n) are not supported")
    match = re.fullmatch(r"([0-9]+)W", upper)
    if match:
        return _DaySpec("nearest_weekday", n=_value(match.group(1), _DOM, text))
    if "L" in upper or "W" in upper:
        raise _CronError(f"day-of-month '{text}' is not valid: L, LW and nW must stand alone")
    return _DaySpec("set", _parse_set(text, _DOM))


def _parse_dow(text: str) -> _DaySpec:
    upper = text.upper()
    if upper == "?":
        return _DaySpec("any")
    if upper == "L":
        return _DaySpec("set", frozenset({7}))
    if "#" in upper:
        if upper.count("#") > 1 or "," in upper:
            raise _CronError(f"day-of-week '{text}': only one '#' expression is allowed")
        day, _, nth = upper.partition("#")
        if "-" in day or "/" in day or "*" in day:
            raise _CronError(f"day-of-week '{text}': '#' takes a single day, e.g. 3#2")
        weekday = _value(day, _DOW, text)
        if not re.fullmatch(r"[0-9]{1,2}", nth) or not 1 <= int(nth) <= 5:
            raise _CronError(f"day-of-week '{text}': the week number after '#' must be 1-5")
        return _DaySpec("nth", n=weekday, k=int(nth))
    if upper.endswith("L"):
        day = upper[:-1]
        if any(c in day for c in ",-/*L"):
            raise _CronError(f"day-of-week '{text}': nL takes a single day, e.g. 6L")
        return _DaySpec("last_of", n=_value(day, _DOW, text))
    if "L" in upper:  # no day name contains an L, so this one is misplaced
        raise _CronError(f"day-of-week '{text}' is not valid: L must stand alone or follow one day (6L)")
    return _DaySpec("set", _parse_set(text, _DOW))


def _parse(text: object) -> _Spec:
    if not isinstance(text, str):
        raise _CronError(f"must be a string like cron(0 5 ? * * *), got {type(text).__name__}")
    stripped = text.strip()
    if stripped[:5].lower() == "rate(":
        raise _CronError("rate() expressions are not supported; use a cron() expression")
    match = re.fullmatch(r"cron\((.*)\)", stripped, re.IGNORECASE | re.DOTALL)
    if not match:
        raise _CronError(f"'{text}' is not a cron expression; expected cron({_FIELD_ORDER})")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise _CronError(f"expected 6 fields ({_FIELD_ORDER}), got {len(fields)}")
    minute, hour, dom_text, month, dow_text, year = fields
    minutes = _parse_set(minute, _MINUTES)
    hours = _parse_set(hour, _HOURS)
    dom = _parse_dom(dom_text)
    months = _parse_set(month, _MONTH)
    dow = _parse_dow(dow_text)
    years = _parse_set(year, _YEAR)
    if dom.kind == "any" and dow.kind == "any":
        raise _CronError("day-of-month and day-of-week cannot both be '?'; use '?' in one of them only")
    if dom.kind != "any" and dow.kind != "any":
        raise _CronError(f"one of day-of-month ('{dom_text}') and day-of-week ('{dow_text}') must be '?'")
    return _Spec(
        text="cron(" + " ".join(f.upper() for f in fields) + ")",
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        dom=dom,
        months=tuple(sorted(months)),
        dow=dow,
        years=tuple(sorted(years)),
    )


# ------------------------------------------------------------------------------------------------- evaluation


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday, as AWS counts."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _days(spec: _Spec, year: int, month: int) -> list[int]:
    """The days of (year, month) the two day fields allow, ascending."""
    last = calendar.monthrange(year, month)[1]
    dom, dow = spec.dom, spec.dow
    if dom.kind == "set":
        return sorted(d for d in dom.values if d <= last)
    if dom.kind == "last":
        return [last]
    if dom.kind == "last_weekday":
        wd = _aws_weekday(year, month, last)
        return [last - 1 if wd == 7 else last - 2 if wd == 1 else last]
    if dom.kind == "nearest_weekday":
        n = dom.n
        if n > last:
            return []
        wd = _aws_weekday(year, month, n)
        if wd == 7:  # Saturday: the Friday before, unless that is in the previous month
            return [n - 1 if n > 1 else n + 2]
        if wd == 1:  # Sunday: the Monday after, unless that is in the next month
            return [n + 1 if n < last else n - 2]
        return [n]
    if dow.kind == "set":
        first = _aws_weekday(year, month, 1)
        return [d for d in range(1, last + 1) if (first + d - 2) % 7 + 1 in dow.values]
    if dow.kind == "last_of":
        wd = _aws_weekday(year, month, last)
        return [last - (wd - dow.n) % 7]
    if dow.kind == "nth":
        first = _aws_weekday(year, month, 1)
        day = 1 + (dow.n - first) % 7 + 7 * (dow.k - 1)
        return [day] if day <= last else []
    raise AssertionError(f"unhandled day spec {dom} / {dow}")  # pragma: no cover


def _walls(spec: _Spec, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times the expression matches, at or after `start` (naive), ascending."""
    for year in spec.years:
        if year < start.year:
            continue
        same_y = year == start.year
        for month in spec.months:
            if same_y and month < start.month:
                continue
            same_m = same_y and month == start.month
            for day in _days(spec, year, month):
                if same_m and day < start.day:
                    continue
                same_d = same_m and day == start.day
                for hour in spec.hours:
                    if same_d and hour < start.hour:
                        continue
                    same_h = same_d and hour == start.hour
                    for minute in spec.minutes:
                        if same_h and minute < start.minute:
                            continue
                        yield datetime(year, month, day, hour, minute)


def _to_utc(wall: datetime, zone: tzinfo) -> datetime | None:
    """The UTC instant of a wall-clock time (first occurrence if repeated), or None if the time is skipped."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def load_timezone(name: str, *, field: str = "ScheduleExpressionTimezone") -> ZoneInfo:
    """An IANA time zone; an unknown or malformed name is the user's error, so InvalidParameterValue."""
    if not isinstance(name, str) or not _TZ_NAME.fullmatch(name) or len(name) > 64:
        raise InvalidParameterValue(f"{field}: '{name}' is not an IANA time zone name", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError) as exc:
        raise InvalidParameterValue(f"{field}: unknown time zone '{name}'", field=field) from exc


def _zone(timezone: str | tzinfo) -> tzinfo:
    return timezone if isinstance(timezone, tzinfo) else load_timezone(timezone)


@dataclasses.dataclass(frozen=True)
class CronExpression:
    """A parsed AWS cron expression; `text` is normalised (single spaces, upper case)."""

    text: str
    _spec: _Spec = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            spec = _parse(self.text)
        except _CronError as exc:
            raise InvalidParameterValue(f"ScheduleExpression: {exc}", field="ScheduleExpression") from None
        object.__setattr__(self, "text", spec.text)
        object.__setattr__(self, "_spec", spec)

    @classmethod
    def parse(cls, text: str, *, field: str = "ScheduleExpression") -> CronExpression:
        """Parse `cron(m h dom mon dow year)`; every problem is an InvalidParameterValue naming the sub-field."""
        try:
            spec = _parse(text)
        except _CronError as exc:
            raise InvalidParameterValue(f"{field}: {exc}", field=field) from None
        return cls(spec.text)

    def __str__(self) -> str:
        return self.text

    def is_at_most_hourly(self) -> bool:
        """AWS Backup refuses schedules more frequent than hourly: one minute value means one run per hour."""
        return len(self._spec.minutes) == 1

    def matches(self, wall: datetime) -> bool:
        """Whether a wall-clock time (seconds ignored, tzinfo ignored) is one the expression names."""
        spec = self._spec
        return (wall.year in spec.years and wall.month in spec.months and wall.hour in spec.hours
                and wall.minute in spec.minutes and wall.day in _days(spec, wall.year, wall.month))

    def _runs(self, after: datetime, timezone: str | tzinfo) -> Iterator[datetime]:
        zone = _zone(timezone)
        after_utc = ensure_utc(after)
        local = after_utc.astimezone(zone)
        start = datetime(local.year, local.month, local.day, local.hour, local.minute)
        for wall in _walls(self._spec, start):
            instant = _to_utc(wall, zone)
            # Wall-clock order equals UTC order for existing times (fold=0), so only candidates inside a
            # repeated hour (after `after` in wall time, before it in UTC) are skipped here, never many.
            if instant is not None and instant > after_utc:
                yield instant

    def next_after(self, after: datetime, timezone: str | tzinfo = "UTC") -> datetime | None:
        """The first run strictly after `after`, in UTC; None when none is left before the end of 2199."""
        return next(self._runs(after, timezone), None)

    def runs_between(self, start: datetime, end: datetime, timezone: str | tzinfo = "UTC") -> Iterator[datetime]:
        """Runs with start < run <= end, in UTC, ascending."""
        end_utc = ensure_utc(end)
        for run in self._runs(start, timezone):
            if run > end_utc:
                return
            yield run

    def upcoming(self, after: datetime, timezone: str | tzinfo, count: int) -> list[datetime]:
        """The next `count` runs after `after` (fewer if the schedule ends), in UTC."""
        return list(islice(self._runs(after, timezone), max(count, 0)))
