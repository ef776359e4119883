"""Retention: the pure plan (domain.retention) decides, this module carries it out.

A sweep marks expired recovery points DELETING and queues an `expire` task for each; the task deregisters the
image and deletes the snapshots (both idempotent), then marks the point DELETED, which keeps its record for
history while hiding it from listings. A crash in between is resumed by the task like any other.
Points due for cold storage have their snapshots moved to the EBS Snapshots Archive tier.
"""

from __future__ import annotations

from datetime import datetime

from snapkeep.aws import ec2 as ec2api
from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.retention import RecoveryPointAge, RetentionLifecycle, plan_retention
from snapkeep.engine.context import Done, EngineContext, Outcome
from snapkeep.engine.queue import TaskQueue

LIVE = ("COMPLETED", "AVAILABLE")


def sweep(store: CatalogStore, now: datetime) -> list[str]:
    """Queue the expiry of every recovery point whose time has come; return their ARNs."""
    with store.transaction() as conn:
        rows = [r for r in store.list_recovery_points(conn) if r["status"] in LIVE]
        ages = [
            RecoveryPointAge(
                recovery_point_arn=r["recovery_point_arn"],
                creation_date=r["creation_date"],
                lifecycle=RetentionLifecycle(
                    (r["lifecycle"] or {}).get("MoveToColdStorageAfterDays"),
                    (r["lifecycle"] or {}).get("DeleteAfterDays"),
                ),
                storage_class=r["storage_class"],
            )
            for r in rows
        ]
        decision = plan_retention(ages, now)
        expired = [d.recovery_point_arn for d in decision.to_expire]
        for arn in expired:
            store.update_recovery_point(conn, arn, {"status": "DELETING"})
            TaskQueue.enqueue(conn, "expire", arn, now)
        for move in decision.to_move_to_cold:
            TaskQueue.enqueue(conn, "cold", move.recovery_point_arn, now)
    return expired


def expire_recovery_point(ctx: EngineContext, arn: str) -> Outcome:
    with ctx.store.transaction() as conn:
        point = ctx.store.get_recovery_point(conn, arn)
    client = ctx.ec2(point["account_id"], point["region"])
    if point["image_id"]:
        ec2api.deregister_image(client, point["image_id"])
    for volume in point["volumes"]:
        ec2api.delete_snapshot(client, volume["SnapshotId"])
    with ctx.store.transaction() as conn:
        ctx.store.update_recovery_point(conn, arn, {"status": "DELETED"})
    return Done()


def move_to_cold(ctx: EngineContext, arn: str) -> Outcome:
    """Archive the point's snapshots (EBS Snapshots Archive, AWS Backup's cold storage for EBS)."""
    with ctx.store.transaction() as conn:
        point = ctx.store.get_recovery_point(conn, arn)
    if point["storage_class"] != "WARM" or point["status"] not in LIVE:
        return Done()
    client = ctx.ec2(point["account_id"], point["region"])
    for volume in point["volumes"]:
        with ec2api.aws_errors("ModifySnapshotTier"):
            client.modify_snapshot_tier(SnapshotId=volume["SnapshotId"], StorageTier="archive")
    with ctx.store.transaction() as conn:
        ctx.store.update_recovery_point(conn, arn, {"storage_class": "COLD"})
    return Done()
