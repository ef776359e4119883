"""Command-line values turned into AWS Backup input: files, KEY=VALUE pairs, times, job states."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from snapkeep.cli.output import err_console
from snapkeep.domain.clock import parse_iso
from snapkeep.domain.errors import InvalidParameterValue

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidParameterValue(f"{what}: file '{path}' does not exist", field=what) from exc
    except ValueError as exc:
        raise InvalidParameterValue(f"{what}: '{path}' is not valid JSON: {exc}", field=what) from exc


def parse_tags(tags: list[str] | None, option: str = "--tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterValue(f"{option} '{item}': expected KEY=VALUE", field=option)
        out[key] = value
    return out


def parse_list(values: list[str] | None, option: str) -> list[str]:
    """Items given as E1,E2 and/or by repeating the option; empty items are refused rather than dropped."""
    items: list[str] = []
    for value in values or []:
        for part in value.split(","):
            if not part.strip():
                raise InvalidParameterValue(f"{option} '{value}': empty item (expected e.g. A,B or A)",
                                            field=option)
            items.append(part.strip())
    return items


def parse_time(text: str, option: str) -> datetime:
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise InvalidParameterValue(
            f"{option}: '{text}' is not an ISO-8601 time (e.g. 2026-03-07T12:00:00Z or 2026-03-07T07:00:00-05:00)",
            field=option,
        ) from exc


def parse_choice(value: str | None, choices: type[Enum], option: str) -> str | None:
    """A state filter, checked: an unknown state would silently match nothing."""
    if value is None:
        return None
    names = [str(c.value) for c in choices]
    if value.upper() not in names:
        raise InvalidParameterValue(f"{option}: '{value}' is not one of {', '.join(names)}", field=option)
    return value.upper()


def metadata_text(value: Any) -> str:
    """A restore metadata value as the string AWS's map of strings carries (JSON for numbers, booleans, lists)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def read_metadata(metadata_file: Path | None, metadata: list[str] | None) -> dict[str, str]:
    """Restore metadata from an AWS-style JSON object, then KEY=VALUE options (which win over the file).

    The API takes a map of strings: JSON numbers, booleans and lists in the file are sent as their JSON text
    (`2`, `true`, `["sg-1"]`), the forms AWS users write; the service checks them.
    """
    out: dict[str, str] = {}
    if metadata_file is not None:
        data = read_json_file(metadata_file, "--metadata-file")
        if not isinstance(data, dict):
            raise InvalidParameterValue(
                f"--metadata-file: '{metadata_file}' must hold a JSON object, e.g. {{\"InstanceType\": \"t3.micro\"}}",
                field="--metadata-file",
            )
        out.update({str(k): metadata_text(v) for k, v in data.items() if v is not None})
    out.update(parse_tags(metadata, "--metadata"))
    return out


def exit_unless_completed(what: str, job_id: str, state: str, message: str | None) -> None:
    """A job that ended any other way than COMPLETED fails the command, after its result was printed."""
    if state == "COMPLETED":
        return
    err_console.print(f"{what} {job_id} ended {state}" + (f": {message}" if message else ""), markup=False,
                      highlight=False)
    raise typer.Exit(1)


def lifecycle_text(lifecycle: Mapping[str, Any] | None) -> str:
    if not lifecycle:
        return "keep forever"
    parts = []
    if lifecycle.get("MoveToColdStorageAfterDays") is not None:
        parts.append(f"cold after {lifecycle['MoveToColdStorageAfterDays']} d")
    if lifecycle.get("DeleteAfterDays") is not None:
        parts.append(f"delete after {lifecycle['DeleteAfterDays']} d")
    return ", ".join(parts) or "keep forever"


def tags_text(tags: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (tags or {}).items())
