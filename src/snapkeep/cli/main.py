"""`snapkeep [--endpoint URL] <noun> <verb>`: the root options, the command groups, and the local-only commands.

Without --endpoint every command works on the catalog under SNAPKEEP_HOME; with it, the commands that map onto
AWS Backup operations (vault, plan, selection, job, recovery-point, restore, legal-hold, tag) talk to that
Snapkeep server over the AWS Backup API, with the same output and exit codes. Commands that need this host's
catalog, inventory or processes (account, user, server) refuse --endpoint; `lab`, `demo` and `plan preview`
without --selection touch no Snapkeep state and run the same either way.
"""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli.backend import (
    DEFAULT_REGION,
    ENDPOINT_ENV,
    KEY_ID_ENV,
    REGION_ENV,
    SECRET_ENV,
    Target,
    load_settings,
    open_app,
    require_local,
    target_from_options,
    use_target,
)
from snapkeep.cli.inputs import JsonOpt
from snapkeep.cli.jobs import job_app
from snapkeep.cli.legal_holds import legal_hold_app
from snapkeep.cli.output import emit, errors_to_exit, make_table
from snapkeep.cli.plans import plan_app, selection_app
from snapkeep.cli.recovery_points import rp_app
from snapkeep.cli.repos import add_to_app as add_image_repository_commands
from snapkeep.cli.restores import restore_app
from snapkeep.cli.tags import tag_app
from snapkeep.cli.vaults import vault_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Snapkeep: backup and recovery for AWS EC2.")
account_app = typer.Typer(no_args_is_help=True, help="AWS accounts and regions Snapkeep protects (local only).")
user_app = typer.Typer(no_args_is_help=True, help="API users and their access keys (local only).")
for sub, name in (
    (vault_app, "vault"),
    (plan_app, "plan"),
    (selection_app, "selection"),
    (job_app, "job"),
    (rp_app, "recovery-point"),
    (restore_app, "restore"),
    (legal_hold_app, "legal-hold"),
    (tag_app, "tag"),
    (account_app, "account"),
    (user_app, "user"),
):
    app.add_typer(sub, name=name)
add_image_repository_commands(app)  # `repo`, `image`: run by the lean parser in snapkeep.cli.__main__


@app.callback()
def root(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", envvar=ENDPOINT_ENV, metavar="URL",
        help="A Snapkeep server's AWS Backup API (e.g. http://127.0.0.1:8480); without it, the local catalog. "
             f"The API key is read from {KEY_ID_ENV} / {SECRET_ENV} (else AWS_ACCESS_KEY_ID / "
             "AWS_SECRET_ACCESS_KEY).",
    )] = None,
    access_key_id: Annotated[str | None, typer.Option(
        "--access-key-id", envvar=KEY_ID_ENV, help="API key id for --endpoint (its secret only from the environment)",
    )] = None,
    region: Annotated[str, typer.Option(
        "--region", envvar=REGION_ENV, help="Region the server signs requests for (with --endpoint)",
    )] = DEFAULT_REGION,
) -> None:
    if not isinstance(ctx.obj, Target):  # tests may hand in a target with a backend of their own
        ctx.obj = target_from_options(endpoint, access_key_id, region)
        ctx.call_on_close(ctx.obj.close)
    use_target(ctx.obj)


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
        require_local("account add")
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
        require_local("account list")
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


# -- users --------------------------------------------------------------------------------------------------
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
        require_local("user create")
        key_id, secret = open_app().keys().create_key(name, parse_role(role), datetime.now(UTC))
    out = {"UserName": name, "Role": role, "AccessKeyId": key_id, "SecretAccessKey": secret}
    emit(out, as_json, lambda: make_table("Access key created (the secret is not shown again)",
                                          ["UserName", "Role", "AccessKeyId", "SecretAccessKey"],
                                          [[name, role, key_id, secret]]))


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
    """Serve the AWS Backup API and run the scheduler and the workers until interrupted (local only)."""
    from snapkeep.cli.processes import run_server

    with errors_to_exit():
        require_local("server")
        run_server(load_settings(), lab=lab, lab_port=lab_port, workers=workers, threads=threads, host=host,
                   port=port)


@app.command("lab")
def lab_cmd(
    port: Annotated[int, typer.Option("--port")] = 0,
    seed: Annotated[bool, typer.Option("--seed/--no-seed")] = True,
    snapshot_seconds: Annotated[float, typer.Option("--snapshot-seconds")] = 2.0,
) -> None:
    """Run the offline AWS lab (moto on 127.0.0.1 with EBS data) in the foreground (--endpoint plays no part)."""
    from snapkeep.cli.processes import run_lab

    with errors_to_exit():
        run_lab(port, seed, snapshot_seconds)


@app.command("demo")
def demo_cmd(keep: Annotated[bool, typer.Option(help="Keep the demo's SNAPKEEP_HOME afterwards")] = False) -> None:
    """The whole story on the embedded lab: plan, backup, change, backup, restore, verify (in a catalog and lab
    of its own, so --endpoint plays no part)."""
    from snapkeep.cli.demo import run_demo

    with errors_to_exit():
        ok = run_demo(keep=keep)
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    app()
