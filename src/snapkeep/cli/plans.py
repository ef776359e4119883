"""`snapkeep plan ...` and `snapkeep selection ...`: backup plans in AWS Backup JSON and their selections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType

from snapkeep.cli.backend import backend, call_all, current_target, load_settings, require_local
from snapkeep.cli.inputs import JsonOpt, lifecycle_text, parse_time, read_json_file, tags_text
from snapkeep.cli.output import console, emit, errors_to_exit, make_table

plan_app = typer.Typer(no_args_is_help=True, help="Backup plans (AWS Backup JSON).")
selection_app = typer.Typer(no_args_is_help=True, help="Resource selections of a plan.")


def _plan_row_table(title: str, out: dict[str, Any]) -> RenderableType:
    return make_table(title, ["BackupPlanId", "VersionId", "Created"],
                      [[out["BackupPlanId"], out.get("VersionId"), out.get("CreationDate")]])


@plan_app.command("create")
def plan_create(
    file: Annotated[Path, typer.Option("--file", help="AWS Backup plan JSON")], as_json: JsonOpt = False
) -> None:
    with errors_to_exit():
        out = backend().call("CreateBackupPlan", {"BackupPlan": read_json_file(file, "--file")})
    emit(out, as_json, lambda: _plan_row_table("Backup plan created", out))


@plan_app.command("update")
def plan_update(plan_id: str, file: Annotated[Path, typer.Option("--file")], as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        plan = read_json_file(file, "--file")
        out = backend().call("UpdateBackupPlan", {"BackupPlanId": plan_id, "BackupPlan": plan})
    emit(out, as_json, lambda: _plan_row_table("Backup plan updated", out))


def _plan_view(out: dict[str, Any]) -> RenderableType:
    plan = out["BackupPlan"]
    fields = [
        ["BackupPlanName", plan.get("BackupPlanName")],
        ["BackupPlanId", out["BackupPlanId"]],
        ["BackupPlanArn", out.get("BackupPlanArn")],
        ["VersionId", out.get("VersionId")],
        ["Created", out.get("CreationDate")],
        ["Last run", out.get("LastExecutionDate")],
    ]
    if out.get("DeletionDate"):
        fields.append(["Deleted", out["DeletionDate"]])
    rules = plan.get("Rules", [])
    with_tags = any(r.get("RecoveryPointTags") for r in rules)
    table = make_table(
        "Rules",
        ["Rule", "Vault", "Schedule", "Time zone", "Start (min)", "Complete (min)", "Lifecycle"]
        + (["Recovery point tags"] if with_tags else []),
        [
            [
                r.get("RuleName"),
                r.get("TargetBackupVaultName"),
                r.get("ScheduleExpression"),
                r.get("ScheduleExpressionTimezone", "UTC"),
                r.get("StartWindowMinutes"),
                r.get("CompletionWindowMinutes"),
                lifecycle_text(r.get("Lifecycle")),
            ]
            + ([tags_text(r.get("RecoveryPointTags"))] if with_tags else [])
            for r in rules
        ],
    )
    return Group(make_table(f"Backup plan {plan.get('BackupPlanName', '')}", ["Field", "Value"], fields), table)


@plan_app.command("get")
def plan_get(
    plan_id: str, version_id: Annotated[str | None, typer.Option("--version-id")] = None, as_json: JsonOpt = False
) -> None:
    params = {"BackupPlanId": plan_id} | ({"VersionId": version_id} if version_id is not None else {})
    with errors_to_exit():
        out = backend().call("GetBackupPlan", params)
    emit(out, as_json, lambda: _plan_view(out))


@plan_app.command("list")
def plan_list(as_json: JsonOpt = False, include_deleted: bool = False) -> None:
    with errors_to_exit():
        rows = call_all(backend(), "ListBackupPlans", {"IncludeDeleted": include_deleted}, "BackupPlansList")
    emit(rows, as_json, lambda: make_table(
        "Backup plans",
        ["Name", "BackupPlanId", "VersionId", "Last run"],
        [[r.get("BackupPlanName"), r["BackupPlanId"], r.get("VersionId"), r.get("LastExecutionDate")] for r in rows]))


@plan_app.command("versions")
def plan_versions(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = call_all(backend(), "ListBackupPlanVersions", {"BackupPlanId": plan_id}, "BackupPlanVersionsList")
    emit(rows, as_json, lambda: make_table(
        "Plan versions", ["VersionId", "Name", "Created"],
        [[r.get("VersionId"), r.get("BackupPlanName"), r.get("CreationDate")] for r in rows]))


@plan_app.command("delete")
def plan_delete(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("DeleteBackupPlan", {"BackupPlanId": plan_id})
    emit(out, as_json, lambda: make_table("Backup plan deleted", ["BackupPlanId", "Deleted"],
                                          [[out["BackupPlanId"], out.get("DeletionDate")]]))


@plan_app.command("preview")
def plan_preview(
    file: Annotated[Path, typer.Option("--file")],
    selection: Annotated[list[Path] | None, typer.Option("--selection")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="ISO-8601 start (default now)")] = None,
    count: Annotated[int, typer.Option("--count", min=1, max=1000)] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Next run times of each rule, and which resources each selection picks now (and why).

    The run times are computed here and work anywhere; --selection reads this host's inventory (the accounts
    protected in the local catalog), so it does not work with --endpoint.
    """
    from snapkeep.cli.preview import preview, render_preview

    with errors_to_exit():
        if selection and current_target().remote:
            require_local("plan preview --selection")
        start = parse_time(from_, "--from") if from_ else None
        plan_json = read_json_file(file, "--file")
        selections = [read_json_file(p, "--selection") for p in selection or []]
        result = preview(plan_json, selections, start, count, load_settings() if selections else None)
    if as_json:
        emit(result.to_json(), True)
    else:
        render_preview(result)


# -- selections ---------------------------------------------------------------------------------------------
@selection_app.command("create")
def selection_create(plan_id: str, file: Annotated[Path, typer.Option("--file")], as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("CreateBackupSelection",
                             {"BackupPlanId": plan_id, "BackupSelection": read_json_file(file, "--file")})
    emit(out, as_json, lambda: make_table("Selection created", ["SelectionId", "BackupPlanId"],
                                          [[out["SelectionId"], out.get("BackupPlanId")]]))


@selection_app.command("list")
def selection_list(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = call_all(backend(), "ListBackupSelections", {"BackupPlanId": plan_id}, "BackupSelectionsList")
    emit(rows, as_json, lambda: make_table(
        "Selections", ["SelectionId", "Name", "IamRoleArn"],
        [[r["SelectionId"], r.get("SelectionName"), r.get("IamRoleArn")] for r in rows]))


def _selection_view(out: dict[str, Any]) -> RenderableType:
    sel = out["BackupSelection"]
    rows: list[list[Any]] = [
        ["SelectionName", sel.get("SelectionName")],
        ["SelectionId", out["SelectionId"]],
        ["BackupPlanId", out["BackupPlanId"]],
        ["IamRoleArn", sel.get("IamRoleArn")],
        ["Created", out.get("CreationDate")],
        ["Resources", "\n".join(sel.get("Resources") or [])],
        ["NotResources", "\n".join(sel.get("NotResources") or [])],
        [
            "ListOfTags",
            "\n".join(
                f"{t['ConditionKey']}={t['ConditionValue']} ({t['ConditionType']})" for t in sel.get("ListOfTags") or []
            ),
        ],
        [
            "Conditions",
            "\n".join(
                f"{operator}: {c['ConditionKey']}={c['ConditionValue']}"
                for operator, conditions in (sel.get("Conditions") or {}).items()
                for c in conditions
            ),
        ],
    ]
    if out.get("CreatorRequestId"):
        rows.append(["CreatorRequestId", out["CreatorRequestId"]])
    shown = rows[:5] + [row for row in rows[5:] if row[1]]  # leave out the empty ways of picking
    return make_table(f"Selection {sel.get('SelectionName', '')}", ["Field", "Value"], shown)


@selection_app.command("get")
def selection_get(plan_id: str, selection_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("GetBackupSelection", {"BackupPlanId": plan_id, "SelectionId": selection_id})
    emit(out, as_json, lambda: _selection_view(out))


@selection_app.command("delete")
def selection_delete(plan_id: str, selection_id: str) -> None:
    with errors_to_exit():
        backend().call("DeleteBackupSelection", {"BackupPlanId": plan_id, "SelectionId": selection_id})
    console.print(f"Deleted selection {selection_id}", markup=False, highlight=False)
