"""A scheduled run of a rule: resolve the plan's selections against the live inventory, one job per resource."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from snapkeep.catalog.reports import region_settings
from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.domain.job_reports import assigned_explicitly, effective_region_settings, opted_out
from snapkeep.domain.jobs import BackupJobState, JobWindows
from snapkeep.domain.plans import BackupRule, lifecycle_to_aws_json, plan_from_aws_json
from snapkeep.domain.selection import evaluate, selection_from_aws_json
from snapkeep.engine.context import Done, EngineContext, Outcome, RetryAt
from snapkeep.engine.inventory import live_inventory
from snapkeep.engine.queue import TaskQueue


def new_job_id() -> str:
    return str(uuid.uuid4()).upper()


BACKUP_RESOURCE_TYPES = {"instance": "EC2", "volume": "EBS"}
"""EC2 resource kind in an ARN -> the AWS Backup resource type Snapkeep backs it up as."""


def backup_resource_type(resource_arn: str, *, field: str = "ResourceArn") -> str:
    """AWS Backup's resource type of an ARN Snapkeep can back up (EC2 or EBS); anything else is refused."""
    arn = Arn.parse(resource_arn, field=field)
    kind = BACKUP_RESOURCE_TYPES.get(arn.resource_type) if arn.service == "ec2" and arn.account else None
    if kind is None or not arn.resource_id or arn.resource_id == arn.resource:
        raise InvalidParameterValue(
            f"{field}: '{resource_arn}' is not an EC2 instance or EBS volume ARN "
            "(arn:aws:ec2:REGION:ACCOUNT:instance/i-... or arn:aws:ec2:REGION:ACCOUNT:volume/vol-...)",
            field=field,
        )
    return kind


def run_scheduled_rule(ctx: EngineContext, run_id: str) -> Outcome:
    with ctx.store.transaction() as conn:
        run = ctx.store.get_run(conn, run_id)
        if run["state"] != "CREATED":
            return Done()
        plan_row = ctx.store.get_plan(conn, run["plan_id"], include_deleted=True)
        selections = ctx.store.list_selections(conn, run["plan_id"])
        settings = effective_region_settings(region_settings(conn))
    plan = plan_from_aws_json(plan_row["plan"])
    rule = next((r for r in plan.rules if r.rule_name == run["rule_name"]), None)
    if rule is None or plan_row["deletion_date"] is not None:
        return _end_run(ctx, run_id, "FAILED", "the rule no longer exists")
    with ctx.store.transaction() as conn:
        due_together = {r["rule_name"] for r in ctx.store.runs_at(conn, run["plan_id"], run["scheduled_at"])}
    covering = covering_rule([r for r in plan.rules if r.rule_name in due_together], rule)
    if covering is not None:
        return _end_run(ctx, run_id, "RESOLVED", f"covered by rule '{covering.rule_name}' (due at the same time, "
                        "longer retention): one backup is taken for both, as AWS Backup does")
    start_by = JobWindows.from_minutes(
        run["scheduled_at"], rule.start_window_minutes, rule.completion_window_minutes
    ).start_by
    inventory = live_inventory(ctx)
    # Places that could not be listed are retried for a while (half the start window, at most 30 minutes), then
    # the run goes ahead with what answered, so one broken account does not hold back the others.
    retry_until = run["scheduled_at"] + min(timedelta(minutes=30), timedelta(minutes=rule.start_window_minutes) / 2)
    if inventory.failures and ctx.clock() < retry_until:
        return RetryAt(min(retry_until, ctx.clock() + timedelta(seconds=max(1.0, ctx.settings.poll_seconds * 10))))
    if inventory.failures and not inventory.resources and ctx.clock() >= start_by:
        return _end_run(ctx, run_id, "EXPIRED", "the start window closed before the inventory could be read: "
                        + "; ".join(inventory.failures))
    picked: dict[str, str] = {}
    explicit: set[str] = set()  # named in a selection's Resources: backed up whatever the service opt-in says
    for sel_row in selections:
        selection = selection_from_aws_json(sel_row["selection"])
        for match in evaluate(selection, inventory.resources):
            picked.setdefault(match.resource_arn, selection.iam_role_arn)
            if assigned_explicitly(selection.resources, match.resource_arn):
                explicit.add(match.resource_arn)
    kinds = {r.arn: r.resource_type for r in inventory.resources}
    skipped = opted_out({a: kinds[a] for a in picked}, explicit, settings)
    for resource_arn in skipped:
        del picked[resource_arn]
    message = f"{len(picked)} resources"
    if skipped:
        message += "; left out, resource type opted out in the region settings: " + ", ".join(skipped)
    if inventory.failures:
        message += "; not listed: " + "; ".join(inventory.failures)
    with ctx.store.transaction() as conn:
        for resource_arn, role in sorted(picked.items()):
            create_backup_job(
                ctx.store,
                conn,
                resource_arn=resource_arn,
                vault=rule.target_backup_vault_name,
                rule=rule,
                scheduled_at=run["scheduled_at"],
                iam_role_arn=role,
                idempotency_key=f"run:{run_id}:{resource_arn}",
                plan_id=run["plan_id"],
                plan_version_id=plan_row["version_id"],
                run_id=run_id,
                now=ctx.clock(),
            )
        ctx.store.update_run(conn, run_id, {"state": "RESOLVED", "message": message})
        ctx.store.update_plan(conn, run["plan_id"], {"last_execution_date": ctx.clock()})
    return Done()


def _end_run(ctx: EngineContext, run_id: str, state: str, message: str) -> Outcome:
    with ctx.store.transaction() as conn:
        ctx.store.update_run(conn, run_id, {"state": state, "message": message})
    return Done()


def _retention_days(rule: BackupRule) -> float:
    days = rule.lifecycle.delete_after_days if rule.lifecycle else None
    return float("inf") if days is None or days < 0 else float(days)


def covering_rule(rules: Sequence[BackupRule], rule: BackupRule) -> BackupRule | None:
    """The rule, among those with a run at this very time, that takes this run's backup instead, if any.

    AWS Backup: when two rules of a plan are due together it takes one backup, for the rule with the longer
    retention. Snapkeep applies this to runs due at the same instant (the daily and monthly rules on the 1st), so
    the choice is the same from every rule's side and no run is skipped for one that never happens. Ties go to
    the rule listed first.
    """
    best = max(rules, key=lambda r: (_retention_days(r), -rules.index(r)), default=None)
    return best if best is not None and best.rule_name != rule.rule_name else None


def create_backup_job(
    store: CatalogStore,
    conn: Connection,
    *,
    resource_arn: str,
    vault: str,
    rule: BackupRule | None,
    scheduled_at: datetime,
    iam_role_arn: str | None,
    idempotency_key: str,
    now: datetime,
    plan_id: str | None = None,
    plan_version_id: str | None = None,
    run_id: str | None = None,
    lifecycle: dict[str, Any] | None = None,
    start_window_minutes: int | None = None,
    completion_window_minutes: int | None = None,
    recovery_point_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Record a backup job and its task in the caller's transaction (idempotent by `idempotency_key`)."""
    arn = Arn.parse(resource_arn)
    resource_type = backup_resource_type(resource_arn)
    start_minutes = start_window_minutes or (rule.start_window_minutes if rule else 480)
    complete_minutes = completion_window_minutes or (rule.completion_window_minutes if rule else 10080)
    windows = JobWindows.from_minutes(scheduled_at, start_minutes, complete_minutes)
    if lifecycle is None and rule is not None and rule.lifecycle is not None:
        lifecycle = lifecycle_to_aws_json(rule.lifecycle)
    tags = recovery_point_tags if recovery_point_tags is not None else (dict(rule.recovery_point_tags) if rule else {})
    job = store.insert_job(
        conn,
        {
            "job_id": new_job_id(),
            "idempotency_key": idempotency_key,
            "account_id": arn.account,
            "region": arn.region,
            "backup_vault_name": vault,
            "resource_arn": resource_arn,
            "resource_type": resource_type,
            "plan_id": plan_id,
            "plan_version_id": plan_version_id,
            "rule_name": rule.rule_name if rule else None,
            "run_id": run_id,
            "iam_role_arn": iam_role_arn,
            "state": BackupJobState.CREATED.value,
            "percent_done": 0.0,
            "lifecycle": lifecycle,
            "recovery_point_tags": tags,
            "scheduled_at": scheduled_at,
            "start_by": windows.start_by,
            "complete_by": windows.complete_by,
            "step": "start",
            "step_data": {},
            "creation_date": now,
        },
    )
    TaskQueue.enqueue(conn, "backup", job["job_id"], now)
    return dict(job)
