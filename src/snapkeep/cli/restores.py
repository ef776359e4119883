"""`snapkeep restore ...`: restore jobs (always into a new instance or volume) and waiting for them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import RenderableType

from snapkeep.cli.backend import backend, call_all
from snapkeep.cli.inputs import JsonOpt, exit_unless_completed, parse_choice, read_metadata
from snapkeep.cli.output import emit, errors_to_exit, make_table
from snapkeep.cli.waiting import wait_for_restore
from snapkeep.domain.jobs import RestoreJobStatus

restore_app = typer.Typer(no_args_is_help=True, help="Restore jobs.")


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
        params: dict[str, Any] = {"RecoveryPointArn": recovery_point_arn,
                                  "Metadata": read_metadata(metadata_file, metadata),
                                  "CopySourceTagsToRestoredResource": copy_tags}
        if resource_type is not None:
            params["ResourceType"] = resource_type
        api = backend()
        out = api.call("StartRestoreJob", params)
        if wait:
            wait_for_restore(api, out["RestoreJobId"], timeout)
            out = api.call("DescribeRestoreJob", {"RestoreJobId": out["RestoreJobId"]})
    emit(out, as_json, lambda: _restore_table(out))
    if wait:
        exit_unless_completed("Restore job", out["RestoreJobId"], out["Status"], out.get("StatusMessage"))


@restore_app.command("wait")
def restore_wait(job_id: str, timeout: float = 600.0, as_json: JsonOpt = False) -> None:
    """Wait for a restore job to end, with a progress bar (the server's workers run it); exit 1 unless COMPLETED."""
    with errors_to_exit():
        api = backend()
        wait_for_restore(api, job_id, timeout)
        out = api.call("DescribeRestoreJob", {"RestoreJobId": job_id})
    emit(out, as_json, lambda: _restore_table(out))
    exit_unless_completed("Restore job", job_id, out["Status"], out.get("StatusMessage"))


@restore_app.command("describe")
def restore_describe(job_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("DescribeRestoreJob", {"RestoreJobId": job_id})
    emit(out, as_json, lambda: make_table(f"Restore job {job_id}", ["Field", "Value"], list(out.items())))


@restore_app.command("list")
def restore_list(status: Annotated[str | None, typer.Option("--status")] = None, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        by_status = parse_choice(status, RestoreJobStatus, "--status")
        rows = call_all(backend(), "ListRestoreJobs", {"ByStatus": by_status} if by_status else {}, "RestoreJobs")
    emit(rows, as_json, lambda: make_table(
        "Restore jobs",
        ["RestoreJobId", "Type", "Status", "Created resource"],
        [[r["RestoreJobId"], r.get("ResourceType"), r.get("Status"), r.get("CreatedResourceArn")] for r in rows],
    ))
