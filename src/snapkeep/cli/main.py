"""`snapkeep <noun> <verb>`: every command works in local mode on the catalog under SNAPKEEP_HOME."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from snapkeep.app import Snapkeep
from snapkeep.cli.output import (
    console,
    emit,
    err_console,
    errors_to_exit,
    make_table,
    note_catalog_url,
    redact_url,
)
from snapkeep.config import Settings
from snapkeep.domain.clock import parse_iso
from snapkeep.domain.errors import InvalidParameterValue, SnapkeepError
from snapkeep.domain.jobs import BackupJobState, RestoreJobStatus

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Snapkeep: backup and recovery for AWS EC2.")
vault_app = typer.Typer(no_args_is_help=True, help="Backup vaults.")
plan_app = typer.Typer(no_args_is_help=True, help="Backup plans (AWS Backup JSON).")
selection_app = typer.Typer(no_args_is_help=True, help="Resource selections of a plan.")
job_app = typer.Typer(no_args_is_help=True, help="Backup jobs.")
rp_app = typer.Typer(no_args_is_help=True, help="Recovery points.")
restore_app = typer.Typer(no_args_is_help=True, help="Restore jobs.")
account_app = typer.Typer(no_args_is_help=True, help="AWS accounts and regions Snapkeep protects.")
for sub, name in (
    (vault_app, "vault"),
    (plan_app, "plan"),
    (selection_app, "selection"),
    (job_app, "job"),
    (rp_app, "recovery-point"),
    (restore_app, "restore"),
    (account_app, "account"),
):
    app.add_typer(sub, name=name)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def load_settings() -> Settings:
    """Settings from the environment, the catalog URL checked and noted so database errors can name it."""
    settings = Settings.from_env()
    try:
        make_url(settings.database_url).get_dialect()
    except sa_exc.ArgumentError as exc:  # unparsable, or a database SQLAlchemy has no dialect for
        raise InvalidParameterValue(
            f"SNAPKEEP_DATABASE_URL: '{redact_url(settings.database_url)}' is not a database URL Snapkeep can use "
            "(expected sqlite:///PATH or postgresql://USER@HOST/DB)",
            field="SNAPKEEP_DATABASE_URL",
        ) from exc
    note_catalog_url(settings.database_url)
    return settings


def open_app() -> Snapkeep:
    return Snapkeep.open(load_settings())


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidParameterValue(f"{what}: file '{path}' does not exist") from exc
    except ValueError as exc:
        raise InvalidParameterValue(f"{what}: '{path}' is not valid JSON: {exc}") from exc


def parse_tags(tags: list[str] | None, option: str = "--tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterValue(f"{option} '{item}': expected KEY=VALUE", field=option)
        out[key] = value
    return out


def parse_time(text: str, option: str) -> datetime:
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise InvalidParameterValue(
            f"{option}: '{text}' is not an ISO-8601 time (e.g. 2026-03-07T12:00:00Z or 2026-03-07T07:00:00-05:00)",
            field=option,
        ) from exc


def parse_choice(value: str | None, choices: type[BackupJobState] | type[RestoreJobStatus], option: str) -> str | None:
    """A job state filter, checked: an unknown state would silently match nothing."""
    if value is None:
        return None
    names = [c.value for c in choices]
    if value.upper() not in names:
        raise InvalidParameterValue(f"{option}: '{value}' is not one of {', '.join(names)}", field=option)
    return value.upper()


def exit_unless_completed(what: str, job_id: str, state: str, message: str | None) -> None:
    """A job that ended any other way than COMPLETED fails the command, after its result was printed."""
    if state == "COMPLETED":
        return
    err_console.print(f"{what} {job_id} ended {state}" + (f": {message}" if message else ""), markup=False,
                      highlight=False)
    raise typer.Exit(1)


def _lifecycle_text(lifecycle: Mapping[str, Any] | None) -> str:
    if not lifecycle:
        return "keep forever"
    parts = []
    if lifecycle.get("MoveToColdStorageAfterDays") is not None:
        parts.append(f"cold after {lifecycle['MoveToColdStorageAfterDays']} d")
    if lifecycle.get("DeleteAfterDays") is not None:
        parts.append(f"delete after {lifecycle['DeleteAfterDays']} d")
    return ", ".join(parts) or "keep forever"


def _tags_text(tags: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (tags or {}).items())


# -- accounts -----------------------------------------------------------------------------------------------
@account_app.command("add")
def account_add(
    account_id: str,
    region: Annotated[list[str], typer.Option("--region")],
    role_arn: Annotated[str | None, typer.Option("--role-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Protect an AWS account in these regions (reached through ROLE_ARN, or Snapkeep's own credentials)."""
    with errors_to_exit():
        out = open_app().service.put_protected_account(account_id, region, role_arn)
    emit(
        out,
        as_json,
        lambda: make_table(
            "Protected account",
            ["AccountId", "Regions", "RoleArn"],
            [[out["AccountId"], ", ".join(out["Regions"]), out["RoleArn"]]],
        ),
    )


@account_app.command("list")
def account_list(as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_protected_accounts()
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Protected accounts",
            ["AccountId", "Regions", "RoleArn"],
            [[r["AccountId"], ", ".join(r["Regions"]), r["RoleArn"]] for r in rows],
        ),
    )


# -- vaults -------------------------------------------------------------------------------------------------
@vault_app.command("create")
def vault_create(
    name: str,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE")] = None,
    kms_key_arn: Annotated[str | None, typer.Option("--kms-key-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    with errors_to_exit():
        out = open_app().service.create_backup_vault(name, parse_tags(tag), kms_key_arn)
    emit(
        out,
        as_json,
        lambda: make_table(
            "Backup vault created",
            ["Name", "ARN", "Created"],
            [[out["BackupVaultName"], out["BackupVaultArn"], out["CreationDate"]]],
        ),
    )


@vault_app.command("list")
def vault_list(as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_backup_vaults()
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Backup vaults",
            ["Name", "Recovery points", "Locked", "Created"],
            [[r["BackupVaultName"], r["NumberOfRecoveryPoints"], r["Locked"], r["CreationDate"]] for r in rows],
        ),
    )


@vault_app.command("describe")
def vault_describe(name: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.describe_backup_vault(name)
    emit(out, as_json, lambda: make_table(f"Backup vault {name}", ["Field", "Value"], list(out.items())))


@vault_app.command("delete")
def vault_delete(name: str) -> None:
    with errors_to_exit():
        open_app().service.delete_backup_vault(name)
    console.print(f"Deleted backup vault {name}")


# -- plans --------------------------------------------------------------------------------------------------
def _plan_row_table(title: str, out: dict[str, Any]) -> Any:
    return make_table(
        title, ["BackupPlanId", "VersionId", "Created"], [[out["BackupPlanId"], out["VersionId"], out["CreationDate"]]]
    )


@plan_app.command("create")
def plan_create(
    file: Annotated[Path, typer.Option("--file", help="AWS Backup plan JSON")], as_json: JsonOpt = False
) -> None:
    with errors_to_exit():
        out = open_app().service.create_backup_plan(read_json_file(file, "--file"))
    emit(out, as_json, lambda: _plan_row_table("Backup plan created", out))


@plan_app.command("update")
def plan_update(plan_id: str, file: Annotated[Path, typer.Option("--file")], as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.update_backup_plan(plan_id, read_json_file(file, "--file"))
    emit(out, as_json, lambda: _plan_row_table("Backup plan updated", out))


def _plan_view(out: dict[str, Any]) -> RenderableType:
    plan = out["BackupPlan"]
    fields = [
        ["BackupPlanName", plan.get("BackupPlanName")],
        ["BackupPlanId", out["BackupPlanId"]],
        ["BackupPlanArn", out["BackupPlanArn"]],
        ["VersionId", out["VersionId"]],
        ["Created", out["CreationDate"]],
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
                _lifecycle_text(r.get("Lifecycle")),
            ]
            + ([_tags_text(r.get("RecoveryPointTags"))] if with_tags else [])
            for r in rules
        ],
    )
    return Group(make_table(f"Backup plan {plan.get('BackupPlanName', '')}", ["Field", "Value"], fields), table)


@plan_app.command("get")
def plan_get(
    plan_id: str, version_id: Annotated[str | None, typer.Option("--version-id")] = None, as_json: JsonOpt = False
) -> None:
    with errors_to_exit():
        out = open_app().service.get_backup_plan(plan_id, version_id)
    emit(out, as_json, lambda: _plan_view(out))


@plan_app.command("list")
def plan_list(as_json: JsonOpt = False, include_deleted: bool = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_backup_plans(include_deleted)
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Backup plans",
            ["Name", "BackupPlanId", "VersionId", "Last run"],
            [[r["BackupPlanName"], r["BackupPlanId"], r["VersionId"], r["LastExecutionDate"]] for r in rows],
        ),
    )


@plan_app.command("versions")
def plan_versions(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_backup_plan_versions(plan_id)
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Plan versions",
            ["VersionId", "Name", "Created"],
            [[r["VersionId"], r["BackupPlanName"], r["CreationDate"]] for r in rows],
        ),
    )


@plan_app.command("delete")
def plan_delete(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.delete_backup_plan(plan_id)
    emit(
        out,
        as_json,
        lambda: make_table(
            "Backup plan deleted", ["BackupPlanId", "Deleted"], [[out["BackupPlanId"], out["DeletionDate"]]]
        ),
    )


@plan_app.command("preview")
def plan_preview(
    file: Annotated[Path, typer.Option("--file")],
    selection: Annotated[list[Path] | None, typer.Option("--selection")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="ISO-8601 start (default now)")] = None,
    count: Annotated[int, typer.Option("--count", min=1, max=1000)] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Next run times of each rule, and which resources each selection picks now (and why)."""
    from snapkeep.cli.preview import preview, render_preview

    with errors_to_exit():
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
        out = open_app().service.create_backup_selection(plan_id, read_json_file(file, "--file"))
    emit(
        out,
        as_json,
        lambda: make_table(
            "Selection created", ["SelectionId", "BackupPlanId"], [[out["SelectionId"], out["BackupPlanId"]]]
        ),
    )


@selection_app.command("list")
def selection_list(plan_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_backup_selections(plan_id)
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Selections",
            ["SelectionId", "Name", "IamRoleArn"],
            [[r["SelectionId"], r["SelectionName"], r["IamRoleArn"]] for r in rows],
        ),
    )


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
        out = open_app().service.get_backup_selection(plan_id, selection_id)
    emit(out, as_json, lambda: _selection_view(out))


@selection_app.command("delete")
def selection_delete(plan_id: str, selection_id: str) -> None:
    with errors_to_exit():
        open_app().service.delete_backup_selection(plan_id, selection_id)
    console.print(f"Deleted selection {selection_id}")


# -- jobs ---------------------------------------------------------------------------------------------------
def _jobs_table(rows: list[dict[str, Any]]) -> Any:
    return make_table(
        "Backup jobs",
        ["BackupJobId", "Resource", "State", "%", "Created", "Message"],
        [
            [
                r["BackupJobId"],
                r["ResourceArn"].rsplit("/", 1)[-1],
                r["State"],
                r["PercentDone"],
                r["CreationDate"],
                r.get("StatusMessage"),
            ]
            for r in rows
        ],
    )


@job_app.command("start")
def job_start(
    resource_arn: str,
    vault: Annotated[str, typer.Option("--vault")],
    iam_role_arn: Annotated[str, typer.Option("--iam-role-arn")] = "arn:aws:iam::123456789012:role/snapkeep",
    delete_after_days: Annotated[int | None, typer.Option("--delete-after-days")] = None,
    cold_after_days: Annotated[int | None, typer.Option("--move-to-cold-storage-after-days")] = None,
    start_window_minutes: Annotated[
        int | None, typer.Option("--start-window-minutes", help="The job must start within this (at least 60)")
    ] = None,
    complete_window_minutes: Annotated[
        int | None, typer.Option("--complete-window-minutes", help="The job must finish within this of starting")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Recovery point tag KEY=VALUE")] = None,
    idempotency_token: Annotated[
        str | None, typer.Option("--idempotency-token", help="The same token again returns the same job")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job (needs a running server)")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most")] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Start an on-demand backup job of an EC2 instance (with --wait, exit 1 unless it ends COMPLETED)."""
    lifecycle = {
        key: value
        for key, value in (("MoveToColdStorageAfterDays", cold_after_days), ("DeleteAfterDays", delete_after_days))
        if value is not None
    }
    with errors_to_exit():
        sk = open_app()
        out = sk.service.start_backup_job(
            vault,
            resource_arn,
            iam_role_arn,
            idempotency_token=idempotency_token,
            start_window_minutes=start_window_minutes,
            complete_window_minutes=complete_window_minutes,
            lifecycle=lifecycle or None,
            recovery_point_tags=parse_tags(tag),
        )
        if wait:
            wait_for_backup(sk, out["BackupJobId"], timeout)
            out = sk.service.describe_backup_job(out["BackupJobId"])
    emit(
        out,
        as_json,
        lambda: make_table("Backup job", ["BackupJobId", "State"], [[out["BackupJobId"], out.get("State", "CREATED")]]),
    )
    if wait:
        exit_unless_completed("Backup job", out["BackupJobId"], out["State"], out.get("StatusMessage"))


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option("--state")] = None,
    vault: Annotated[str | None, typer.Option("--vault")] = None,
    resource_arn: Annotated[str | None, typer.Option("--resource-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    with errors_to_exit():
        state = parse_choice(state, BackupJobState, "--state")
        rows = open_app().service.list_backup_jobs(state=state, vault=vault, resource_arn=resource_arn)
    emit(rows, as_json, lambda: _jobs_table(rows))


@job_app.command("describe")
def job_describe(job_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.describe_backup_job(job_id)
    emit(out, as_json, lambda: make_table(f"Backup job {job_id}", ["Field", "Value"], list(out.items())))


@job_app.command("stop")
def job_stop(job_id: str) -> None:
    with errors_to_exit():
        open_app().service.stop_backup_job(job_id)
    console.print(f"Stopping backup job {job_id}")


@job_app.command("wait")
def job_wait(job_id: str, timeout: float = 600.0, as_json: JsonOpt = False) -> None:
    """Wait for a backup job to end, with a progress bar (the server's workers run it); exit 1 unless COMPLETED."""
    with errors_to_exit():
        sk = open_app()
        wait_for_backup(sk, job_id, timeout)
        out = sk.service.describe_backup_job(job_id)
    emit(out, as_json, lambda: _jobs_table([out]))
    exit_unless_completed("Backup job", job_id, out["State"], out.get("StatusMessage"))


def wait_for_backup(sk: Snapkeep, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    return _wait(
        lambda: sk.service.describe_backup_job(job_id),
        "State",
        f"backup {job_id[:8]}",
        timeout,
        {"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"},
    )


def wait_for_restore(sk: Snapkeep, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    return _wait(
        lambda: sk.service.describe_restore_job(job_id),
        "Status",
        f"restore {job_id[:8]}",
        timeout,
        {"COMPLETED", "FAILED", "ABORTED"},
    )


def _wait(describe: Any, key: str, label: str, timeout: float, final: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=100, state="")
        while True:
            out: dict[str, Any] = describe()
            bar.update(task, completed=float(out["PercentDone"]), state=out[key])
            if out[key] in final:
                return out
            if time.monotonic() > deadline:
                raise SnapkeepError(f"{label}: still {out[key]} after {timeout:.0f}s (is `snapkeep server` running?)")
            time.sleep(0.25)


# -- recovery points ----------------------------------------------------------------------------------------
@rp_app.command("list")
def rp_list(
    vault: Annotated[str | None, typer.Option("--vault")] = None,
    resource_arn: Annotated[str | None, typer.Option("--resource-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    with errors_to_exit():
        rows = open_app().service.list_recovery_points(vault, resource_arn)
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Recovery points",
            ["RecoveryPointArn", "Resource", "Vault", "Created", "Delete at"],
            [
                [
                    r["RecoveryPointArn"],
                    r.get("ResourceName") or r["ResourceArn"],
                    r["BackupVaultName"],
                    r["CreationDate"],
                    r.get("CalculatedLifecycle", {}).get("DeleteAt"),
                ]
                for r in rows
            ],
        ),
    )


def _recovery_point_view(out: dict[str, Any]) -> RenderableType:
    calculated = out.get("CalculatedLifecycle") or {}
    created_by = out.get("CreatedBy")
    fields = [
        ["RecoveryPointArn", out["RecoveryPointArn"]],
        ["Vault", out["BackupVaultName"]],
        ["Resource", out["ResourceArn"]],
        ["ResourceName", out.get("ResourceName")],
        ["Status", out["Status"]],
        ["StorageClass", out.get("StorageClass")],
        ["Created", out.get("CreationDate")],
        ["Completed", out.get("CompletionDate")],
        ["Size (bytes)", out.get("BackupSizeInBytes")],
        ["Encrypted", out.get("IsEncrypted")],
        ["Lifecycle", _lifecycle_text(out.get("Lifecycle"))],
        ["Move to cold at", calculated.get("MoveToColdStorageAt")],
        ["Delete at", calculated.get("DeleteAt")],
        ["Created by", f"plan {created_by['BackupPlanId']}, rule {created_by['BackupRuleId']}" if created_by
         else "on-demand backup"],
    ]
    volumes = make_table(
        "Volumes",
        ["Device", "VolumeId", "SnapshotId", "Size (GiB)", "Type", "Encrypted"],
        [
            [v.get("DeviceName"), v.get("VolumeId"), v.get("SnapshotId"), v.get("VolumeSize"), v.get("VolumeType"),
             v.get("Encrypted")]
            for v in out.get("Volumes") or []
        ],
    )
    return Group(make_table("Recovery point", ["Field", "Value"], fields), volumes)


@rp_app.command("describe")
def rp_describe(vault: str, recovery_point_arn: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.describe_recovery_point(vault, recovery_point_arn)
    emit(out, as_json, lambda: _recovery_point_view(out))


@rp_app.command("delete")
def rp_delete(vault: str, recovery_point_arn: str) -> None:
    """Delete a recovery point: its image and snapshots are removed by the workers."""
    with errors_to_exit():
        open_app().service.delete_recovery_point(vault, recovery_point_arn)
    console.print(f"Deleting {recovery_point_arn}")


@rp_app.command("update-lifecycle")
def rp_update_lifecycle(
    vault: str,
    recovery_point_arn: str,
    delete_after_days: Annotated[int | None, typer.Option("--delete-after-days")] = None,
    cold_after_days: Annotated[int | None, typer.Option("--move-to-cold-storage-after-days")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a recovery point's lifecycle (options left out are cleared, as in AWS Backup)."""
    lifecycle = {k: v for k, v in (("DeleteAfterDays", delete_after_days),
                                   ("MoveToColdStorageAfterDays", cold_after_days)) if v is not None}
    with errors_to_exit():
        out = open_app().service.update_recovery_point_lifecycle(vault, recovery_point_arn, lifecycle)
    emit(out, as_json, lambda: make_table("Lifecycle updated", ["Field", "Value"], [
        ["Lifecycle", out["Lifecycle"]], ["DeleteAt", out["CalculatedLifecycle"]["DeleteAt"]],
        ["MoveToColdStorageAt", out["CalculatedLifecycle"]["MoveToColdStorageAt"]]]))


# -- restores -----------------------------------------------------------------------------------------------
def read_metadata(metadata_file: Path | None, metadata: list[str] | None) -> dict[str, Any]:
    """Restore metadata from an AWS-style JSON object, then KEY=VALUE options (which win over the file).

    The file's values are passed on as they are (strings, or the JSON numbers and lists AWS users write); the
    service checks them.
    """
    out: dict[str, Any] = {}
    if metadata_file is not None:
        data = read_json_file(metadata_file, "--metadata-file")
        if not isinstance(data, dict):
            raise InvalidParameterValue(
                f"--metadata-file: '{metadata_file}' must hold a JSON object, e.g. {{\"InstanceType\": \"t3.micro\"}}",
                field="--metadata-file",
            )
        out.update(data)
    out.update(parse_tags(metadata, "--metadata"))
    return out


def _restore_table(out: dict[str, Any]) -> RenderableType:
    return make_table(
        "Restore job",
        ["RestoreJobId", "Status", "Created resource", "Message"],
        [[out["RestoreJobId"], out.get("Status", "PENDING"), out.get("CreatedResourceArn"), out.get("StatusMessage")]],
    )


@restore_app.command("start")
def restore_start(
    recovery_point_arn: str,
    metadata: Annotated[list[str] | None, typer.Option("--metadata", help="KEY=VALUE")] = None,
    metadata_file: Annotated[
        Path | None, typer.Option("--metadata-file", help="JSON object of restore metadata, as AWS takes it")
    ] = None,
    resource_type: Annotated[str | None, typer.Option("--resource-type", help="EC2 or EBS")] = None,
    copy_tags: Annotated[
        bool, typer.Option("--copy-tags/--no-copy-tags", help="Copy the source's tags (AWS's default: no)")
    ] = False,
    wait: bool = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most")] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Restore a whole instance (EC2) or a single volume (EBS, with availabilityZone and DeviceName).

    With --wait, exit 1 unless the restore ends COMPLETED.
    """
    with errors_to_exit():
        meta = read_metadata(metadata_file, metadata)
        sk = open_app()
        out = sk.service.start_restore_job(
            recovery_point_arn, meta, resource_type=resource_type, copy_source_tags=copy_tags
        )
        if wait:
            wait_for_restore(sk, out["RestoreJobId"], timeout)
            out = sk.service.describe_restore_job(out["RestoreJobId"])
    emit(out, as_json, lambda: _restore_table(out))
    if wait:
        exit_unless_completed("Restore job", out["RestoreJobId"], out["Status"], out.get("StatusMessage"))


@restore_app.command("wait")
def restore_wait(job_id: str, timeout: float = 600.0, as_json: JsonOpt = False) -> None:
    """Wait for a restore job to end, with a progress bar (the server's workers run it); exit 1 unless COMPLETED."""
    with errors_to_exit():
        sk = open_app()
        wait_for_restore(sk, job_id, timeout)
        out = sk.service.describe_restore_job(job_id)
    emit(out, as_json, lambda: _restore_table(out))
    exit_unless_completed("Restore job", job_id, out["Status"], out.get("StatusMessage"))


@restore_app.command("describe")
def restore_describe(job_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.describe_restore_job(job_id)
    emit(out, as_json, lambda: make_table(f"Restore job {job_id}", ["Field", "Value"], list(out.items())))


@restore_app.command("list")
def restore_list(status: Annotated[str | None, typer.Option("--status")] = None, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_restore_jobs(parse_choice(status, RestoreJobStatus, "--status"))
    emit(
        rows,
        as_json,
        lambda: make_table(
            "Restore jobs",
            ["RestoreJobId", "Type", "Status", "Created resource"],
            [[r["RestoreJobId"], r["ResourceType"], r["Status"], r.get("CreatedResourceArn")] for r in rows],
        ),
    )


# -- processes ----------------------------------------------------------------------------------------------
@app.command("server")
def server(
    lab: Annotated[bool, typer.Option("--lab", help="Also run the embedded offline AWS lab")] = False,
    lab_port: Annotated[int, typer.Option("--lab-port")] = 0,
    workers: Annotated[bool, typer.Option("--workers/--no-workers")] = True,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    host: Annotated[str, typer.Option("--host", help="Address the AWS Backup API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 picks a free port")] = 8480,
) -> None:
    """Serve the AWS Backup API and run the scheduler and the workers until interrupted."""
    from snapkeep.cli.processes import run_server

    with errors_to_exit():
        run_server(load_settings(), lab=lab, lab_port=lab_port, workers=workers, threads=threads, host=host,
                   port=port)


user_app = typer.Typer(no_args_is_help=True, help="API users and their access keys.")
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    name: str,
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer")] = "viewer",
    as_json: JsonOpt = False,
) -> None:
    """Create an access key pair for NAME; the secret is shown this once."""
    from datetime import UTC, datetime

    from snapkeep.api.roles import parse_role

    with errors_to_exit():
        key_id, secret = open_app().keys().create_key(name, parse_role(role), datetime.now(UTC))
    out = {"UserName": name, "Role": role, "AccessKeyId": key_id, "SecretAccessKey": secret}
    emit(out, as_json, lambda: make_table("Access key created (the secret is not shown again)",
                                          ["UserName", "Role", "AccessKeyId", "SecretAccessKey"],
                                          [[name, role, key_id, secret]]))


@app.command("lab")
def lab_cmd(
    port: Annotated[int, typer.Option("--port")] = 0,
    seed: Annotated[bool, typer.Option("--seed/--no-seed")] = True,
    snapshot_seconds: Annotated[float, typer.Option("--snapshot-seconds")] = 2.0,
) -> None:
    """Run the offline AWS lab (moto on 127.0.0.1 with EBS data) in the foreground."""
    from snapkeep.cli.processes import run_lab

    with errors_to_exit():
        run_lab(port, seed, snapshot_seconds)


@app.command("demo")
def demo_cmd(keep: Annotated[bool, typer.Option(help="Keep the demo's SNAPKEEP_HOME afterwards")] = False) -> None:
    """The whole story on the embedded lab: plan, backup, change, backup, restore, verify."""
    from snapkeep.cli.demo import run_demo

    with errors_to_exit():
        ok = run_demo(keep=keep)
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    app()
