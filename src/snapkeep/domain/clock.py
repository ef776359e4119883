"""Time helpers: every datetime in Snapkeep is timezone-aware and stored in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def ensure_utc(value: datetime) -> datetime:
    """Return `value` in UTC; naive datetimes are refused so local time never leaks in silently."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: every time in Snapkeep must carry a time zone")
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """ISO-8601 in UTC with a trailing Z, to the second (the form the CLI and JSON outputs use)."""
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601; a value without an offset is taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
