"""Printing: rich tables for people, `--json` for programs, one error format with the error's exit code."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from snapkeep.domain.clock import iso_z
from snapkeep.domain.errors import Conflict, InvalidParameterValue, ServiceUnavailable, SnapkeepError

if TYPE_CHECKING:  # typer and SQLAlchemy are imported where used: the image commands print tables without them
    from sqlalchemy import exc as sa_exc

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_default, sort_keys=False)


def emit(value: Any, as_json: bool, table: Callable[[], RenderableType] | None = None) -> None:
    if as_json or table is None:
        sys.stdout.write(to_json(value) + "\n")
    else:
        console.print(table())


def cell_text(value: Any) -> str:
    """A value as a table cell: times in UTC with Z, nested values as compact JSON (the same in both modes)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=_default, separators=(", ", ": "))
    return str(value)


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[Text(cell_text(c)) for c in row])  # literal text: values are not rich markup
    return table


def fail(error: SnapkeepError) -> NoReturn:
    import typer

    field = " " + escape(f"[{error.field}]") if error.field else ""
    err_console.print(f"[bold red]Error[/] ({error.code}){field}: {escape(error.message)}", highlight=False)
    raise typer.Exit(error.exit_code)


# The catalog URL this command opened, so a database failure can say which database it could not use.
_catalog_url: ContextVar[str | None] = ContextVar("catalog_url", default=None)


def note_catalog_url(url: str) -> None:
    _catalog_url.set(url)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, fit to print."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _password(url: str) -> str | None:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except (sa_exc.ArgumentError, ValueError):
        return None


def _db_reason(exc: sa_exc.DBAPIError) -> str:
    """The driver's own words, on one line, without the SQL statement or a password."""
    text = " ".join(str(exc.orig if exc.orig is not None else exc).split())
    url = _catalog_url.get()
    password = _password(url) if url else None
    return text.replace(password, "***") if password else text


def database_error(exc: sa_exc.DBAPIError) -> SnapkeepError:
    """A catalog failure as the error the user sees: a broken constraint is a conflict; anything else about
    reaching or using the database means the service is unavailable."""
    url = _catalog_url.get()
    where = f"the catalog database {redact_url(url)}" if url else "the catalog database"
    from sqlalchemy import exc as sa_exc

    reason = _db_reason(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict(
            f"the change conflicts with what {where} holds (another request may have changed it meanwhile; "
            f"try again): {reason}"
        )
    if "locked" in reason or "busy" in reason:
        hint = "another process holds it; try again"
    else:
        hint = "is it running and reachable? check SNAPKEEP_DATABASE_URL"
    return ServiceUnavailable(f"cannot use {where} ({hint}): {reason}")


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn what a user can cause (bad input, a database out of reach) into one error line and its exit code.

    Exits and interrupts pass through untouched; anything else is a bug and keeps its traceback.
    """
    import typer
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
        raise
    except SnapkeepError as exc:
        fail(exc)
    except (sa_exc.IntegrityError, sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        fail(database_error(exc))
    except (ValueError, TypeError) as exc:
        fail(InvalidParameterValue(f"invalid input: {exc}"))
