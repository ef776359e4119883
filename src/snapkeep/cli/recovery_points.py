"""`snapkeep recovery-point ...`: list, describe, delete recovery points and change their lifecycle."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType

from snapkeep.cli.backend import Backend, backend, call_all
from snapkeep.cli.inputs import JsonOpt, lifecycle_text
from snapkeep.cli.output import console, emit, errors_to_exit, make_table

rp_app = typer.Typer(no_args_is_help=True, help="Recovery points.")


def list_points(api: Backend, vault: str | None, resource_arn: str | None) -> list[dict[str, Any]]:
    """Recovery points of one vault, or of every vault (newest first), optionally of one resource only.

    Always through ListRecoveryPointsByBackupVault, whose rows carry the resource and the lifecycle
    (ListRecoveryPointsByResource's rows do not).
    """
    by_resource = {"ByResourceArn": resource_arn} if resource_arn is not None else {}
    if vault is not None:
        return call_all(api, "ListRecoveryPointsByBackupVault", {"BackupVaultName": vault, **by_resource},
                        "RecoveryPoints")
    vaults = [v["BackupVaultName"] for v in call_all(api, "ListBackupVaults", {}, "BackupVaultList")]
    rows = [row for name in vaults for row in call_all(
        api, "ListRecoveryPointsByBackupVault", {"BackupVaultName": name, **by_resource}, "RecoveryPoints")]
    return sorted(rows, key=lambda r: r["CreationDate"], reverse=True)


@rp_app.command("list")
def rp_list(
    vault: Annotated[str | None, typer.Option("--vault")] = None,
    resource_arn: Annotated[str | None, typer.Option("--resource-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    with errors_to_exit():
        rows = list_points(backend(), vault, resource_arn)
    emit(rows, as_json, lambda: make_table(
        "Recovery points",
        ["RecoveryPointArn", "Resource", "Vault", "Created", "Delete at"],
        [
            [
                r["RecoveryPointArn"],
                r.get("ResourceName") or r.get("ResourceArn"),
                r.get("BackupVaultName"),
                r.get("CreationDate"),
                (r.get("CalculatedLifecycle") or {}).get("DeleteAt"),
            ]
            for r in rows
        ],
    ))


def _recovery_point_view(out: dict[str, Any]) -> RenderableType:
    calculated = out.get("CalculatedLifecycle") or {}
    created_by = out.get("CreatedBy")
    fields = [
        ["RecoveryPointArn", out["RecoveryPointArn"]],
        ["Vault", out.get("BackupVaultName")],
        ["Resource", out.get("ResourceArn")],
        ["ResourceName", out.get("ResourceName")],
        ["Status", out.get("Status")],
        ["StorageClass", out.get("StorageClass")],
        ["Created", out.get("CreationDate")],
        ["Completed", out.get("CompletionDate")],
        ["Size (bytes)", out.get("BackupSizeInBytes")],
        ["Encrypted", out.get("IsEncrypted")],
        ["Lifecycle", lifecycle_text(out.get("Lifecycle"))],
        ["Move to cold at", calculated.get("MoveToColdStorageAt")],
        ["Delete at", calculated.get("DeleteAt")],
        ["Created by", f"plan {created_by.get('BackupPlanId')}, rule {created_by.get('BackupRuleId')}" if created_by
         else "on-demand backup"],
    ]
    image = out.get("ImageBackup")
    if image:
        fields.append(["Image backup", f"{image['ImageId']} in {image['RepositoryUrl']} "
                                       f"({image.get('StoredBytes', 0)} bytes stored; kept until Delete at)"])
    summary = make_table("Recovery point", ["Field", "Value"], fields)
    if "Volumes" not in out:
        return summary
    volumes = make_table(
        "Volumes",
        ["Device", "VolumeId", "SnapshotId", "Size (GiB)", "Type", "Encrypted"],
        [
            [v.get("DeviceName"), v.get("VolumeId"), v.get("SnapshotId"), v.get("VolumeSize"), v.get("VolumeType"),
             v.get("Encrypted")]
            for v in out["Volumes"] or []
        ],
    )
    return Group(summary, volumes)


@rp_app.command("describe")
def rp_describe(vault: str, recovery_point_arn: str, as_json: JsonOpt = False) -> None:
    """DescribeRecoveryPoint. In local mode the volumes and snapshots from the catalog are added ("Volumes"), and
    the image backup ("ImageBackup") when the vault has an image repository: the AWS Backup API has no member
    for them, so they are not shown with --endpoint."""
    with errors_to_exit():
        api = backend()
        out = api.call("DescribeRecoveryPoint", {"BackupVaultName": vault, "RecoveryPointArn": recovery_point_arn})
        out.update(api.recovery_point_details(vault, recovery_point_arn) or {})
    emit(out, as_json, lambda: _recovery_point_view(out))


@rp_app.command("delete")
def rp_delete(vault: str, recovery_point_arn: str) -> None:
    """Delete a recovery point: its image and snapshots are removed by the workers."""
    with errors_to_exit():
        backend().call("DeleteRecoveryPoint", {"BackupVaultName": vault, "RecoveryPointArn": recovery_point_arn})
    console.print(f"Deleting {recovery_point_arn}", markup=False, highlight=False)


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
        out = backend().call("UpdateRecoveryPointLifecycle", {
            "BackupVaultName": vault, "RecoveryPointArn": recovery_point_arn, "Lifecycle": lifecycle})
    calculated = out.get("CalculatedLifecycle") or {}
    emit(out, as_json, lambda: make_table("Lifecycle updated", ["Field", "Value"], [
        ["Lifecycle", lifecycle_text(out.get("Lifecycle"))], ["DeleteAt", calculated.get("DeleteAt")],
        ["MoveToColdStorageAt", calculated.get("MoveToColdStorageAt")]]))
