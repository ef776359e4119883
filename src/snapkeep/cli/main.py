"""`snapkeep <noun> <verb>`: every command works in local mode on the catalog under SNAPKEEP_HOME."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from snapkeep.app import Snapkeep
from snapkeep.cli.output import console, emit, errors_to_exit, make_table
from snapkeep.config import Settings
from snapkeep.domain.clock import parse_iso
from snapkeep.domain.errors import InvalidParameterValue, SnapkeepError

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


def open_app() -> Snapkeep:
    return Snapkeep.open(Settings.from_env())


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidParameterValue(f"{what}: file '{path}' does not exist") from exc
    except ValueError as exc:
        raise InvalidParameterValue(f"{what}: '{path}' is not valid JSON: {exc}") from exc


def parse_tags(tags: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterValue(f"--tag '{item}': expected KEY=VALUE")
        out[key] = value
    return out


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


@plan_app.command("get")
def plan_get(plan_id: str, version_id: Annotated[str | None, typer.Option("--version-id")] = None) -> None:
    with errors_to_exit():
        out = open_app().service.get_backup_plan(plan_id, version_id)
    emit(out, True)


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
        start = parse_iso(from_) if from_ else None
        plan_json = read_json_file(file, "--file")
        selections = [read_json_file(p, "--selection") for p in selection or []]
        result = preview(plan_json, selections, start, count, Settings.from_env() if selections else None)
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


@selection_app.command("get")
def selection_get(plan_id: str, selection_id: str) -> None:
    with errors_to_exit():
        emit(open_app().service.get_backup_selection(plan_id, selection_id), True)


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
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job (needs a running server)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an on-demand backup job of an EC2 instance."""
    with errors_to_exit():
        sk = open_app()
        lifecycle = {"DeleteAfterDays": delete_after_days} if delete_after_days else None
        out = sk.service.start_backup_job(vault, resource_arn, iam_role_arn, lifecycle=lifecycle)
        if wait:
            wait_for_backup(sk, out["BackupJobId"])
            out = sk.service.describe_backup_job(out["BackupJobId"])
    emit(
        out,
        as_json,
        lambda: make_table("Backup job", ["BackupJobId", "State"], [[out["BackupJobId"], out.get("State", "CREATED")]]),
    )


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option("--state")] = None,
    vault: Annotated[str | None, typer.Option("--vault")] = None,
    resource_arn: Annotated[str | None, typer.Option("--resource-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    with errors_to_exit():
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
    """Wait for a backup job to end, with a progress bar (the server's workers run it)."""
    with errors_to_exit():
        sk = open_app()
        wait_for_backup(sk, job_id, timeout)
        out = sk.service.describe_backup_job(job_id)
    emit(out, as_json, lambda: _jobs_table([out]))
    if out["State"] != "COMPLETED":
        raise typer.Exit(1)


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


@rp_app.command("describe")
def rp_describe(vault: str, recovery_point_arn: str) -> None:
    with errors_to_exit():
        emit(open_app().service.describe_recovery_point(vault, recovery_point_arn), True)


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
@restore_app.command("start")
def restore_start(
    recovery_point_arn: str,
    metadata: Annotated[list[str] | None, typer.Option("--metadata", help="KEY=VALUE")] = None,
    resource_type: Annotated[str | None, typer.Option("--resource-type", help="EC2 or EBS")] = None,
    copy_tags: Annotated[bool, typer.Option("--copy-tags/--no-copy-tags")] = True,
    wait: bool = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a whole instance (EC2) or a single volume (EBS, with availabilityZone and DeviceName)."""
    with errors_to_exit():
        sk = open_app()
        out = sk.service.start_restore_job(
            recovery_point_arn, parse_tags(metadata), resource_type=resource_type, copy_source_tags=copy_tags
        )
        if wait:
            wait_for_restore(sk, out["RestoreJobId"])
            out = sk.service.describe_restore_job(out["RestoreJobId"])
    emit(
        out,
        as_json,
        lambda: make_table(
            "Restore job",
            ["RestoreJobId", "Status", "Created resource"],
            [[out["RestoreJobId"], out.get("Status", "PENDING"), out.get("CreatedResourceArn")]],
        ),
    )


@restore_app.command("describe")
def restore_describe(job_id: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = open_app().service.describe_restore_job(job_id)
    emit(out, as_json, lambda: make_table(f"Restore job {job_id}", ["Field", "Value"], list(out.items())))


@restore_app.command("list")
def restore_list(status: Annotated[str | None, typer.Option("--status")] = None, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = open_app().service.list_restore_jobs(status)
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
    threads: Annotated[int | None, typer.Option("--threads")] = None,
) -> None:
    """Run the scheduler and the workers until interrupted."""
    from snapkeep.cli.processes import run_server

    with errors_to_exit():
        run_server(Settings.from_env(), lab=lab, lab_port=lab_port, workers=workers, threads=threads)


@app.command("lab")
def lab_cmd(
    port: Annotated[int, typer.Option("--port")] = 0,
    seed: Annotated[bool, typer.Option("--seed/--no-seed")] = True,
    snapshot_seconds: Annotated[float, typer.Option("--snapshot-seconds")] = 2.0,
) -> None:
    """Run the offline AWS lab (moto on 127.0.0.1 with EBS data) in the foreground."""
    from snapkeep.cli.processes import run_lab

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
