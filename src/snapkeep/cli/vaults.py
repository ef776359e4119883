"""`snapkeep vault ...`: backup vaults, their lock, access policy and notifications."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from snapkeep.cli.backend import backend, call_all
from snapkeep.cli.inputs import JsonOpt, parse_list, parse_tags
from snapkeep.cli.output import console, emit, errors_to_exit, make_table
from snapkeep.domain.errors import InvalidParameterValue

vault_app = typer.Typer(no_args_is_help=True, help="Backup vaults.")
lock_app = typer.Typer(no_args_is_help=True, help="Vault lock: retention bounds every recovery point must keep.")
policy_app = typer.Typer(no_args_is_help=True, help="Vault access policy (an IAM-style JSON document).")
notifications_app = typer.Typer(no_args_is_help=True, help="Vault notifications to an SNS topic.")
repository_app = typer.Typer(
    no_args_is_help=True,
    help="The vault's image repository: each new recovery point also gets an image-level backup there, kept until "
         "the rule's DeleteAfterDays while its snapshots go at MoveToColdStorageAfterDays.",
)
vault_app.add_typer(lock_app, name="lock")
vault_app.add_typer(policy_app, name="policy")
vault_app.add_typer(notifications_app, name="notifications")
vault_app.add_typer(repository_app, name="repository")


@vault_app.command("create")
def vault_create(
    name: str,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE")] = None,
    kms_key_arn: Annotated[str | None, typer.Option("--kms-key-arn")] = None,
    as_json: JsonOpt = False,
) -> None:
    params: dict[str, Any] = {"BackupVaultName": name}
    with errors_to_exit():
        if tag:
            params["BackupVaultTags"] = parse_tags(tag)
        if kms_key_arn is not None:
            params["EncryptionKeyArn"] = kms_key_arn
        out = backend().call("CreateBackupVault", params)
    emit(out, as_json, lambda: make_table("Backup vault created", ["Name", "ARN", "Created"],
                                          [[out["BackupVaultName"], out["BackupVaultArn"], out.get("CreationDate")]]))


@vault_app.command("list")
def vault_list(as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        rows = call_all(backend(), "ListBackupVaults", {}, "BackupVaultList")
    emit(rows, as_json, lambda: make_table(
        "Backup vaults",
        ["Name", "Recovery points", "Locked", "Created"],
        [[r["BackupVaultName"], r.get("NumberOfRecoveryPoints"), r.get("Locked"), r.get("CreationDate")]
         for r in rows]))


@vault_app.command("describe")
def vault_describe(name: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("DescribeBackupVault", {"BackupVaultName": name})
    emit(out, as_json, lambda: make_table(f"Backup vault {name}", ["Field", "Value"], list(out.items())))


@vault_app.command("delete")
def vault_delete(name: str) -> None:
    with errors_to_exit():
        backend().call("DeleteBackupVault", {"BackupVaultName": name})
    console.print(f"Deleted backup vault {name}", markup=False, highlight=False)


# -- lock ---------------------------------------------------------------------------------------------------
@lock_app.command("put")
def lock_put(
    name: str,
    min_days: Annotated[int, typer.Option("--min-days", help="Shortest retention a recovery point may have")],
    max_days: Annotated[int | None, typer.Option("--max-days", help="Longest retention allowed")] = None,
    changeable_for_days: Annotated[int | None, typer.Option(
        "--changeable-for-days",
        help="Compliance mode: after this many days the lock can no longer be changed or removed (AWS: at least 3)",
    )] = None,
) -> None:
    """Lock a vault (PutBackupVaultLockConfiguration): governance mode, or compliance mode with
    --changeable-for-days."""
    params: dict[str, Any] = {"BackupVaultName": name, "MinRetentionDays": min_days}
    if max_days is not None:
        params["MaxRetentionDays"] = max_days
    if changeable_for_days is not None:
        params["ChangeableForDays"] = changeable_for_days
    with errors_to_exit():
        backend().call("PutBackupVaultLockConfiguration", params)
    bounds = f"at least {min_days} days" + (f", at most {max_days} days" if max_days is not None else "")
    mode = (f"compliance mode: changeable for {changeable_for_days} more days" if changeable_for_days is not None
            else "governance mode")
    console.print(f"Locked backup vault {name}: retention {bounds} ({mode})", markup=False, highlight=False)


@lock_app.command("delete")
def lock_delete(name: str) -> None:
    """Remove a vault's lock (DeleteBackupVaultLockConfiguration; refused once a compliance lock is fixed)."""
    with errors_to_exit():
        backend().call("DeleteBackupVaultLockConfiguration", {"BackupVaultName": name})
    console.print(f"Removed the lock of backup vault {name}", markup=False, highlight=False)


# -- access policy ------------------------------------------------------------------------------------------
def read_policy(path: Path) -> str:
    """The policy file's text as written (the server keeps it verbatim), checked to be a JSON object first."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise InvalidParameterValue(f"--file: file '{path}' does not exist", field="--file") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidParameterValue(f"--file: '{path}' is not valid JSON: {exc}", field="--file") from exc
    if not isinstance(document, dict):
        raise InvalidParameterValue(
            f"--file: '{path}' must hold a JSON object (a policy with Version and Statement)", field="--file")
    return text


@policy_app.command("put")
def policy_put(name: str, file: Annotated[Path, typer.Option("--file", help="Policy JSON document")]) -> None:
    """Set a vault's access policy (PutBackupVaultAccessPolicy); it replaces any policy the vault has."""
    with errors_to_exit():
        backend().call("PutBackupVaultAccessPolicy", {"BackupVaultName": name, "Policy": read_policy(file)})
    console.print(f"Set the access policy of backup vault {name}", markup=False, highlight=False)


@policy_app.command("get")
def policy_get(name: str, as_json: JsonOpt = False) -> None:
    """Print a vault's access policy document (with --json: GetBackupVaultAccessPolicy's whole answer)."""
    with errors_to_exit():
        out = backend().call("GetBackupVaultAccessPolicy", {"BackupVaultName": name})
    if as_json:
        emit(out, True)
        return
    try:
        console.print_json(out.get("Policy") or "{}")
    except ValueError:  # a policy stored as something other than JSON: show it as it is
        console.print(out.get("Policy") or "", markup=False, highlight=False)


@policy_app.command("delete")
def policy_delete(name: str) -> None:
    with errors_to_exit():
        backend().call("DeleteBackupVaultAccessPolicy", {"BackupVaultName": name})
    console.print(f"Deleted the access policy of backup vault {name}", markup=False, highlight=False)


# -- notifications ------------------------------------------------------------------------------------------
@notifications_app.command("put")
def notifications_put(
    name: str,
    topic: Annotated[str, typer.Option("--topic", help="SNS topic ARN")],
    events: Annotated[list[str], typer.Option("--events", help="E1,E2 (e.g. BACKUP_JOB_COMPLETED,RESTORE_JOB_FAILED)")],
) -> None:
    """Send a vault's events to an SNS topic (PutBackupVaultNotifications); replaces the vault's settings."""
    with errors_to_exit():
        listed = parse_list(events, "--events")
        backend().call("PutBackupVaultNotifications",
                       {"BackupVaultName": name, "SNSTopicArn": topic, "BackupVaultEvents": listed})
    console.print(f"Backup vault {name} notifies {topic} of {', '.join(listed)}", markup=False, highlight=False)


@notifications_app.command("get")
def notifications_get(name: str, as_json: JsonOpt = False) -> None:
    with errors_to_exit():
        out = backend().call("GetBackupVaultNotifications", {"BackupVaultName": name})
    emit(out, as_json, lambda: make_table(f"Notifications of backup vault {name}", ["Field", "Value"], [
        ["SNSTopicArn", out.get("SNSTopicArn")], ["BackupVaultEvents", "\n".join(out.get("BackupVaultEvents") or [])],
        ["BackupVaultArn", out.get("BackupVaultArn")]]))


@notifications_app.command("delete")
def notifications_delete(name: str) -> None:
    with errors_to_exit():
        backend().call("DeleteBackupVaultNotifications", {"BackupVaultName": name})
    console.print(f"Backup vault {name} no longer sends notifications", markup=False, highlight=False)


# -- image repository ---------------------------------------------------------------------------------------
@repository_app.command("set")
def repository_set(
    name: str,
    repo: Annotated[str, typer.Option("--repo", help="A local directory or s3://bucket/prefix")],
    kms_key_id: Annotated[str | None, typer.Option(
        "--kms-key-id", help="KMS key wrapping the repository's master key (else SNAPKEEP_REPO_PASSWORD)")] = None,
    init: Annotated[bool, typer.Option("--init", help="Create the repository if there is none")] = False,
    storage_class: Annotated[str | None, typer.Option(
        "--storage-class", help="S3 storage class of the packs: STANDARD, STANDARD_IA, GLACIER_IR, ...")] = None,
    object_lock_mode: Annotated[str | None, typer.Option(
        "--object-lock-mode", help="With --init on an Object Lock bucket: GOVERNANCE or COMPLIANCE")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send image-level backups of the vault's new recovery points to a repository (this host's catalog only)."""
    from snapkeep.cli.backend import open_app, require_local
    from snapkeep.engine.repositories import set_vault_repository

    with errors_to_exit():
        require_local("vault repository set")
        app = open_app()
        mode = object_lock_mode.upper() if object_lock_mode else None
        out = set_vault_repository(app.context, name, repo, kms_key_id, init=init, storage_class=storage_class,
                                   object_lock_mode=mode)  # type: ignore[arg-type]  # checked there
    emit(out, as_json, lambda: make_table(f"Image repository of backup vault {name}", ["Field", "Value"],
                                          list(out.items())))


@repository_app.command("show")
def repository_show(name: str, as_json: JsonOpt = False) -> None:
    from snapkeep.cli.backend import open_app, require_local
    from snapkeep.engine.repositories import vault_repository

    with errors_to_exit():
        require_local("vault repository show")
        out = vault_repository(open_app().context, name)
    emit(out, as_json, lambda: make_table(f"Image repository of backup vault {name}", ["Field", "Value"],
                                          list((out or {"Url": "(none: snapshots only)"}).items())))


@repository_app.command("clear")
def repository_clear(name: str) -> None:
    """New recovery points of the vault are snapshots only; existing image backups are kept."""
    from snapkeep.cli.backend import open_app, require_local
    from snapkeep.engine.repositories import clear_vault_repository

    with errors_to_exit():
        require_local("vault repository clear")
        clear_vault_repository(open_app().context, name)
    console.print(f"Backup vault {name} has no image repository now", markup=False, highlight=False)
