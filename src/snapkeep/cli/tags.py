"""`snapkeep tag ...`: tags of backup vaults, plans, recovery points and legal holds, by ARN."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli.backend import backend, pages
from snapkeep.cli.inputs import JsonOpt, parse_tags
from snapkeep.cli.output import console, emit, errors_to_exit, make_table

tag_app = typer.Typer(no_args_is_help=True, help="Tags of Snapkeep's resources (by ARN).")


@tag_app.command("add")
def tag_add(
    resource_arn: str,
    tags: Annotated[list[str], typer.Argument(help="KEY=VALUE ...", show_default=False)],
) -> None:
    """Add or change tags (TagResource)."""
    with errors_to_exit():
        pairs = parse_tags(tags, "TAG")
        backend().call("TagResource", {"ResourceArn": resource_arn, "Tags": pairs})
    console.print(f"Tagged {resource_arn} with {', '.join(pairs)}", markup=False, highlight=False)


@tag_app.command("remove")
def tag_remove(
    resource_arn: str,
    keys: Annotated[list[str], typer.Argument(help="KEY ...", show_default=False)],
) -> None:
    """Remove tags by key (UntagResource); keys the resource does not have are ignored, as in AWS."""
    with errors_to_exit():
        backend().call("UntagResource", {"ResourceArn": resource_arn, "TagKeyList": list(keys)})
    console.print(f"Removed {', '.join(keys)} from {resource_arn}", markup=False, highlight=False)


@tag_app.command("list")
def tag_list(resource_arn: str, as_json: JsonOpt = False) -> None:
    """A resource's tags (ListTags, every page)."""
    with errors_to_exit():
        found: dict[str, str] = {}
        for page in pages(backend(), "ListTags", {"ResourceArn": resource_arn}):
            found.update(page.get("Tags") or {})
    emit(found, as_json, lambda: make_table("Tags", ["Key", "Value"], sorted(found.items())))
