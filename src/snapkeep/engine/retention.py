"""Retention: the pure plan (domain.retention) decides, this module carries it out.

A sweep marks recovery points past their DeleteAt as DELETING and queues an `expire` task for each; the task
deregisters the image and deletes the snapshots (both idempotent), then marks the point DELETED, which keeps its
record for history while hiding it from listings. A crash in between is resumed by the task like any other; a
point whose AWS resources cannot be removed after several tries ends EXPIRED with a message, as in AWS Backup.

A recovery point under an active legal hold is never expired (domain.retention plans it as kept); a vault lock
does not delay expiry.

An EBS recovery point is one snapshot and no image: its expiry deletes that snapshot.

Cold storage is the vault's image repository. A point with an image backup moves to COLD at MoveToColdStorageAt:
a `cold` task deregisters its image and deletes its snapshots, and from then on it is restored from the image
backup, which is kept until DeleteAt (snapshots for days, image backups for months). Expiring a point also forgets
its image backup in the repository (its packs are freed by the repository's gc). A point without an image backup
never moves: AWS Backup ignores MoveToColdStorageAfterDays for EC2, and Snapkeep has no EBS Snapshots Archive step,
so such a point keeps the setting in its Lifecycle, stays WARM and is deleted at DeleteAt.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from snapkeep.aws import ec2 as ec2api
from snapkeep.catalog import governance
from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.errors import SnapkeepError
from snapkeep.domain.retention import RecoveryPointAge, RetentionLifecycle, plan_retention
from snapkeep.engine.context import Done, EngineContext, Outcome, RetryAt
from snapkeep.engine.queue import TaskQueue
from snapkeep.engine.repositories import image_backup_repository, open_repository, repository_ref
from snapkeep.imagestore.errors import ImageNotFound, RepositoryLocked
from snapkeep.imagestore.gc import run_gc

MAX_EXPIRE_ATTEMPTS = 5
GC_RETRY = timedelta(minutes=15)
log = logging.getLogger("snapkeep.retention")


def sweep(store: CatalogStore, now: datetime) -> list[str]:
    """Queue the expiry of every recovery point whose time has come; return their ARNs.

    A point under an active legal hold is kept (and expired by the first sweep after its last hold is canceled).
    A vault lock does not stop the sweep: the lock keeps points from early deletion, the lifecycle still ends them.
    """
    with store.transaction() as conn:
        due = [r["recovery_point_arn"] for r in store.due_for_expiry(conn, now)]
        due += [r["recovery_point_arn"] for r in store.due_for_cold(conn, now) if r["recovery_point_arn"] not in due]
        # Lock the rows before reading the holds, so a hold created meanwhile is either seen here or sees DELETING.
        rows = [r for r in governance.lock_points(conn, due) if r["status"] in governance.LIVE_POINT_STATUSES]
        held = governance.held_points(conn, due)
        ages = [
            RecoveryPointAge(
                recovery_point_arn=r["recovery_point_arn"],
                creation_date=r["creation_date"],
                lifecycle=RetentionLifecycle(
                    (r["lifecycle"] or {}).get("MoveToColdStorageAfterDays") if r["image_backup"] else None,
                    (r["lifecycle"] or {}).get("DeleteAfterDays")),
                storage_class=r["storage_class"],
                legal_hold=r["recovery_point_arn"] in held,
            )
            for r in rows
        ]
        expired = []
        plan = plan_retention(ages, now)
        for decision in plan.to_move_to_cold:
            if not store.live_restores_of(conn, decision.recovery_point_arn):  # else: on a later sweep
                TaskQueue.enqueue(conn, "cold", decision.recovery_point_arn, now, rearm=False)
        for decision in plan.to_expire:
            arn = decision.recovery_point_arn
            if store.live_restores_of(conn, arn):
                continue  # a restore is reading it: expire it on a later sweep
            store.update_recovery_point(conn, arn, {"status": "DELETING", "status_message": decision.reason})
            TaskQueue.enqueue(conn, "expire", arn, now, rearm=False)
            expired.append(arn)
    return expired


def expire_recovery_point(ctx: EngineContext, arn: str) -> Outcome:
    with ctx.store.transaction() as conn:
        point = ctx.store.get_recovery_point_any(conn, arn)
    if point is None or point["status"] != "DELETING":
        return Done()
    try:
        _delete_snapshots(ctx, point)
        if point["image_backup"]:
            _forget_image_backup(ctx, point["image_backup"])
    except SnapkeepError as exc:
        attempts = ctx.task_attempts()
        transient = isinstance(exc, ec2api.TransientAwsError)
        if attempts >= (MAX_EXPIRE_ATTEMPTS if transient else 2):
            with ctx.store.transaction() as conn:
                ctx.store.update_recovery_point(
                    conn,
                    arn,
                    {"status": "EXPIRED", "status_message": f"Deleting the recovery point failed: {exc.message}"},
                )
            return Done()
        log.warning("expiring %s failed (%s); retrying", arn, exc.message)
        return _retry(ctx, attempts)
    with ctx.store.transaction() as conn:
        ctx.store.update_recovery_point(conn, arn, {"status": "DELETED"})
    return Done()


def _retry(ctx: EngineContext, attempts: int) -> RetryAt:
    """The next try of a failed task: ten polls later, more with every attempt."""
    return RetryAt(ctx.clock() + timedelta(seconds=max(1.0, ctx.settings.poll_seconds * 10 * attempts)))


def _delete_snapshots(ctx: EngineContext, point: dict[str, Any]) -> None:
    """Deregister the point's image and delete its snapshots (both idempotent: gone already is fine)."""
    client = ctx.ec2(point["account_id"], point["region"])
    if point["image_id"]:
        ec2api.deregister_image(client, point["image_id"])
    for volume in point["volumes"]:
        ec2api.delete_snapshot(client, volume["SnapshotId"])


def _forget_image_backup(ctx: EngineContext, image_backup: dict[str, Any]) -> None:
    """Forget the point's image backup, then have the repository's gc free the packs nothing uses any more."""
    config = image_backup_repository(image_backup)
    repo = open_repository(ctx, config)
    with contextlib.suppress(ImageNotFound):  # forgotten by an earlier attempt
        repo.forget(str(image_backup["ImageId"]))
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        TaskQueue.enqueue(conn, "repository_gc", repository_ref(config), now, rearm=False)


def repository_gc(ctx: EngineContext, ref: str) -> Outcome:
    """Delete the packs no image backup uses (with gc's safety margin against writers that have not yet written
    their index). A repository busy with backups (their shared locks exclude gc) is tried again later."""
    with ctx.store.transaction() as conn:
        config = next((c for c in ctx.store.image_repository_configs(conn) if repository_ref(c) == ref), None)
    if config is None:
        return Done()
    try:
        result = run_gc(open_repository(ctx, config))
    except RepositoryLocked:
        return RetryAt(ctx.clock() + GC_RETRY)
    except SnapkeepError as exc:
        if ctx.task_attempts() >= MAX_EXPIRE_ATTEMPTS:
            log.warning("gc of image repository %s failed: %s", config["Url"], exc.message)
            return Done()
        return RetryAt(ctx.clock() + GC_RETRY)
    log.info("gc of image repository %s: %d packs deleted, %d refused", config["Url"], len(result.deleted),
             len(result.refused))
    return Done()


def move_to_cold(ctx: EngineContext, arn: str) -> Outcome:
    """The point's snapshots go; its image backup stays, and the point is COLD (restored from the image backup)."""
    with ctx.store.transaction() as conn:
        point = ctx.store.get_recovery_point_any(conn, arn)
    if point is None or point["status"] not in governance.LIVE_POINT_STATUSES or point["storage_class"] != "WARM" \
            or not point["image_backup"]:
        return Done()
    with ctx.store.transaction() as conn:
        if ctx.store.live_restores_of(conn, arn):  # a restore reads the snapshots: move when it is done
            return _retry(ctx, 1)
        ctx.store.update_recovery_point(conn, arn, {"storage_class": "COLD"})
    try:
        _delete_snapshots(ctx, point)
    except SnapkeepError as exc:
        attempts = ctx.task_attempts()
        if attempts >= MAX_EXPIRE_ATTEMPTS:
            log.warning("moving %s to cold storage: its snapshots could not be deleted: %s", arn, exc.message)
            return Done()
        return _retry(ctx, attempts)
    return Done()


def extend_image_retention(ctx: EngineContext, arn: str) -> Outcome:
    """The point's DeleteAt was pushed out: retain its image backup's manifest and packs that long too (a repository
    with S3 Object Lock; without one there is nothing to do). Retried on failure: immutability must not lapse."""
    with ctx.store.transaction() as conn:
        point = ctx.store.get_recovery_point_any(conn, arn)
    if point is None or not point["image_backup"] or point["delete_at"] is None \
            or point["status"] not in governance.LIVE_POINT_STATUSES:
        return Done()
    backup = point["image_backup"]
    try:
        repo = open_repository(ctx, image_backup_repository(backup))
        extended = repo.extend_retention(str(backup["ImageId"]), point["delete_at"])
    except SnapkeepError as exc:  # a gc holding the repository, an unreachable store, a missing passphrase
        log.warning("extending the retention of %s's image backup failed (%s); retrying", arn, exc.message)
        return RetryAt(ctx.clock() + GC_RETRY)
    log.info("image backup of %s retained until %s (%d packs extended)", arn, point["delete_at"], extended)
    return Done()
