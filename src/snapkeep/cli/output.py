"""Printing: rich tables for people, `--json` for programs, one error format with the error's exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from snapkeep.domain.clock import iso_z
from snapkeep.domain.errors import SnapkeepError

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_default, sort_keys=False)


def emit(value: Any, as_json: bool, table: Callable[[], Table] | None = None) -> None:
    if as_json or table is None:
        sys.stdout.write(to_json(value) + "\n")
    else:
        console.print(table())


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[iso_z(c) if isinstance(c, datetime) else ("" if c is None else str(c)) for c in row])
    return table


def fail(error: SnapkeepError) -> NoReturn:
    field = f" [{error.field}]" if error.field else ""
    err_console.print(f"[bold red]Error[/] ({error.code}){field}: {error.message}", highlight=False)
    raise typer.Exit(error.exit_code)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    try:
        yield
    except SnapkeepError as exc:
        fail(exc)
