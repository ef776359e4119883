"""`snapkeep job ...`: on-demand backup jobs and waiting for them."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import RenderableType

from snapkeep.cli.backend import backend, call_all
from snapkeep.cli.inputs import JsonOpt, exit_unless_completed, parse_choice, parse_tags
from snapkeep.cli.output import console, emit, errors_to_exit, make_table
from snapkeep.cli.waiting import wait_for_backup
from snapkeep.domain.jobs import BackupJobState

job_app = typer.Typer(no_args_is_help=True, help="Backup jobs.")


def jobs_table(rows: list[dict[str, Any]]) -> RenderableType:
    return make_table(
        "Backup jobs",
        ["BackupJobId", "Resource", "State", "%", "Created", "Message"],
        [
            [
                r["BackupJobId"],
                str(r.get("ResourceArn", "")).rsplit("/", 1)[-1],
                r.get("State"),
                r.get("PercentDone"),
                r.get("CreationDate"),
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
    optional = {
        "IdempotencyToken": idempotency_token,
        "StartWindowMinutes": start_window_minutes,
        "CompleteWindowMinutes": complete_window_minutes,
        "Lifecycle": lifecycle or None,
    }
    params: dict[str, Any] = {"BackupVaultName": vault, "ResourceArn": resource_arn, "IamRoleArn": iam_role_arn}
    params.update({k: v for k, v in optional.items() if v is not None})
    with errors_to_exit():
        if tag:
            params["RecoveryPointTags"] = parse_tags(tag)
        api = backend()
        out = api.call("StartBackupJob", params)
        if wait:
            wait_for_backup(api, out["BackupJobId"], timeout)
            out = api.call("DescribeBackupJob", {"BackupJobId": out["BackupJobId"]})
    emit(out, as_json, lambda: make_table("Backup job", ["BackupJobId", "State"],
                                          [[out["BackupJobId"], out.get("State", "CREATED")]]))
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
        filters = {"ByState": parse_choice(state, BackupJobState, "--state"), "ByBackupVaultName": vault,
                   "ByResourceArn": resource_arn}
        rows = call_all(backend(), "ListBackupJobs", {k: v for k, v in filters.items() if v is not None},
                        "BackupJobs")
    emit(rows, as_json, lambda: jobs_table(rows))


@job_app.command("describe")
def job_describe(job_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("DescribeBackupJob", {"BackupJobId": job_id})
    emit(out, as_json, lambda: make_table(f"Backup job {job_id}", ["Field", "Value"], list(out.items())))


@job_app.command("stop")
def job_stop(job_id: str) -> None:
    with errors_to_exit():
        backend().call("StopBackupJob", {"BackupJobId": job_id})
    console.print(f"Stopping backup job {job_id}", markup=False, highlight=False)


@job_app.command("wait")
def job_wait(job_id: str, timeout: float = 600.0, as_json: JsonOpt = False) -> None:
    """Wait for a backup job to end, with a progress bar (the server's workers run it); exit 1 unless COMPLETED."""
    with errors_to_exit():
        api = backend()
        wait_for_backup(api, job_id, timeout)
        out = api.call("DescribeBackupJob", {"BackupJobId": job_id})
    emit(out, as_json, lambda: jobs_table([out]))
    exit_unless_completed("Backup job", job_id, out["State"], out.get("StatusMessage"))
