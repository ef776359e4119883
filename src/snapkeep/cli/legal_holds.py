"""`snapkeep legal-hold ...`: legal holds keep the recovery points they select from being deleted."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType

from snapkeep.cli.backend import backend, call_all
from snapkeep.cli.inputs import JsonOpt, parse_tags, parse_time
from snapkeep.cli.output import cell_text, console, emit, errors_to_exit, make_table
from snapkeep.domain.errors import MissingParameterValue

legal_hold_app = typer.Typer(no_args_is_help=True, help="Legal holds on recovery points.")


def recovery_point_selection(vaults: list[str] | None, resources: list[str] | None, from_: str | None,
                             to: str | None) -> dict[str, Any]:
    """CreateLegalHold's RecoveryPointSelection from the options; a date range needs both ends."""
    selection: dict[str, Any] = {}
    if vaults:
        selection["VaultNames"] = list(vaults)
    if resources:
        selection["ResourceIdentifiers"] = list(resources)
    if (from_ is None) != (to is None):
        given, missing = ("--from", "--to") if to is None else ("--to", "--from")
        raise MissingParameterValue(
            f"{missing}: is required with {given} (a legal hold's date range, "
            "RecoveryPointSelection.DateRange, has both FromDate and ToDate)", field=missing)
    if from_ is not None and to is not None:
        selection["DateRange"] = {"FromDate": parse_time(from_, "--from"), "ToDate": parse_time(to, "--to")}
    return selection


def _hold_view(out: dict[str, Any]) -> RenderableType:
    fields = [[key, out.get(key)] for key in (
        "LegalHoldId", "Title", "Status", "Description", "LegalHoldArn", "CreationDate", "CancelDescription",
        "CancellationDate", "RetainRecordUntil") if out.get(key) is not None]
    selection = out.get("RecoveryPointSelection") or {}
    dates = selection.get("DateRange") or {}
    picked = make_table("Recovery point selection", ["Field", "Value"], [
        ["VaultNames", "\n".join(selection.get("VaultNames") or []) or "(all)"],
        ["ResourceIdentifiers", "\n".join(selection.get("ResourceIdentifiers") or []) or "(all)"],
        ["DateRange", f"{cell_text(dates.get('FromDate'))} .. {cell_text(dates.get('ToDate'))}" if dates
         else "(any time)"],
    ])
    return Group(make_table(f"Legal hold {out.get('Title', '')}", ["Field", "Value"], fields), picked)


@legal_hold_app.command("create")
def legal_hold_create(
    title: Annotated[str, typer.Option("--title")],
    description: Annotated[str, typer.Option("--description")],
    vault: Annotated[list[str] | None, typer.Option("--vault", help="Hold points in this vault (repeatable)")] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="Hold points of this resource ARN (repeatable)")
    ] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Points created from this ISO-8601 time (with --to)")]
    = None,
    to: Annotated[str | None, typer.Option("--to", help="... up to this ISO-8601 time")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE")] = None,
    idempotency_token: Annotated[str | None, typer.Option("--idempotency-token")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hold the recovery points that match (CreateLegalHold): they cannot be deleted until the hold is canceled."""
    with errors_to_exit():
        params: dict[str, Any] = {"Title": title, "Description": description}
        selection = recovery_point_selection(vault, resource, from_, to)
        if selection:
            params["RecoveryPointSelection"] = selection
        if tag:
            params["Tags"] = parse_tags(tag)
        if idempotency_token is not None:
            params["IdempotencyToken"] = idempotency_token
        out = backend().call("CreateLegalHold", params)
    emit(out, as_json, lambda: _hold_view(out))


@legal_hold_app.command("list")
def legal_hold_list(as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = call_all(backend(), "ListLegalHolds", {}, "LegalHolds")
    emit(rows, as_json, lambda: make_table(
        "Legal holds", ["LegalHoldId", "Title", "Status", "Created", "Canceled"],
        [[r.get("LegalHoldId"), r.get("Title"), r.get("Status"), r.get("CreationDate"), r.get("CancellationDate")]
         for r in rows]))


@legal_hold_app.command("get")
def legal_hold_get(legal_hold_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("GetLegalHold", {"LegalHoldId": legal_hold_id})
    emit(out, as_json, lambda: _hold_view(out))


@legal_hold_app.command("cancel")
def legal_hold_cancel(
    legal_hold_id: str,
    description: Annotated[str, typer.Option("--description", help="Why the hold ends (CancelDescription)")],
    retain_record_days: Annotated[
        int | None, typer.Option("--retain-record-days", help="Keep the hold's record this many days")
    ] = None,
) -> None:
    """Cancel a legal hold (CancelLegalHold): its recovery points may be deleted again."""
    params: dict[str, Any] = {"LegalHoldId": legal_hold_id, "CancelDescription": description}
    if retain_record_days is not None:
        params["RetainRecordInDays"] = retain_record_days
    with errors_to_exit():
        backend().call("CancelLegalHold", params)
    console.print(f"Canceled legal hold {legal_hold_id}", markup=False, highlight=False)


@legal_hold_app.command("recovery-points")
def legal_hold_recovery_points(legal_hold_id: str, as_json: JsonOpt = False) -> None:
    """The recovery points a legal hold keeps (ListRecoveryPointsByLegalHold)."""
    with errors_to_exit():
        rows = call_all(backend(), "ListRecoveryPointsByLegalHold", {"LegalHoldId": legal_hold_id}, "RecoveryPoints")
    emit(rows, as_json, lambda: make_table(
        f"Recovery points held by {legal_hold_id}", ["RecoveryPointArn", "Resource", "Vault"],
        [[r.get("RecoveryPointArn"), r.get("ResourceArn"), r.get("BackupVaultName")] for r in rows]))
