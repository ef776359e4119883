"""The backup job of an EC2 instance or an EBS volume, as resumable steps.

EC2: start → snapshot → wait → image → record; EBS: start → snapshot → wait → record (the recovery point is the
volume's snapshot, as in AWS Backup); both end in cleanup on failure or abort. In a vault with an image repository
an image_backup step before record reads the snapshots' blocks into it (EBS direct APIs, incremental by changed
blocks against the previous point's snapshots). Each step records in the job's
`step_data` the AWS ids it is about to create (and tags what it creates with the job id) before it waits, so a
process killed at any point and restarted finishes or fails the job and never leaves a snapshot untracked.

Every write is fenced by the job's version: a stop request or another writer makes this worker's next write
fail with StaleJob, and the job is reloaded instead of overwritten. Transient AWS failures (throttling, 5xx,
lost connections) are retried; the job's start and completion windows bound how long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from snapkeep.aws import ec2 as ec2api
from snapkeep.aws.ebs_blocks import EbsBlockSource
from snapkeep.catalog.governance import vault_lock
from snapkeep.domain.arn import Arn, image_arn, snapshot_arn
from snapkeep.domain.errors import AlreadyExists, InvalidRequest, ResourceNotFound, SnapkeepError
from snapkeep.domain.jobs import BackupJobState, JobWindows, window_verdict
from snapkeep.domain.plans import lifecycle_from_aws_json
from snapkeep.domain.retention import calculated_lifecycle
from snapkeep.domain.vaults import check_retention_against_lock
from snapkeep.engine.context import (
    Done,
    EngineContext,
    LeaseLost,
    Outcome,
    RetryAt,
    StaleJob,
    advance_with_reload,
    progress_saver,
)
from snapkeep.engine.repositories import open_repository
from snapkeep.imagestore.manifest import Manifest
from snapkeep.imagestore.repository import Repository

GIB = 1024**3
MAX_CLEANUP_ATTEMPTS = 5
log = logging.getLogger("snapkeep.backup")
Job = dict[str, Any]


class JobFailed(SnapkeepError):
    """The backup cannot succeed; the job is cleaned up and ends FAILED with this message."""


def run_backup_job(ctx: EngineContext, job_id: str) -> Outcome:
    """Advance one backup job as far as it can go now; return when to look at it again."""
    return advance_with_reload(ctx, lambda: _load(ctx, job_id), _advance)


def _load(ctx: EngineContext, job_id: str) -> Job:
    with ctx.store.transaction() as conn:
        return ctx.store.get_job(conn, job_id)


def _advance(ctx: EngineContext, job: Job) -> Outcome:
    state = BackupJobState(job["state"])
    if state.is_final:
        return Done()
    now = ctx.clock()
    if job["step"] != "cleanup":
        if state is BackupJobState.ABORTING:
            return _begin_cleanup(ctx, job, BackupJobState.ABORTED, "Backup job was stopped")
        verdict = window_verdict(state, JobWindows(job["start_by"], job["complete_by"]), now)
        if verdict is BackupJobState.EXPIRED:
            return _finish(ctx, job, BackupJobState.EXPIRED, "The start window closed before the job could start")
        if verdict is BackupJobState.ABORTED:
            return _begin_cleanup(
                ctx, job, BackupJobState.ABORTED, "The completion window closed before the backup finished"
            )
    steps = _EBS_STEPS if job["resource_type"] == "EBS" else _STEPS
    try:
        while True:
            outcome = steps[job["step"]](ctx, job)
            if outcome is not None:
                return outcome
    except (StaleJob, LeaseLost, SQLAlchemyError):
        raise  # the catalog is busy or the job moved on: the worker retries the task, the job is not failed
    except ec2api.TransientAwsError as exc:
        if job["step"] == "cleanup":
            return _cleanup_failed(ctx, job, exc)
        log.warning("backup job %s: %s; retrying", job["job_id"], exc.message)
        return RetryAt(ctx.clock() + timedelta(seconds=max(1.0, ctx.settings.poll_seconds * 5)))
    except SnapkeepError as exc:
        if job["step"] == "cleanup":
            return _cleanup_failed(ctx, job, exc)
        return _begin_cleanup(ctx, job, BackupJobState.FAILED, exc.message)
    except Exception as exc:  # a bug must end the job, not retry it for a week
        log.exception("backup job %s failed unexpectedly", job["job_id"])
        if job["step"] == "cleanup":
            return _cleanup_failed(ctx, job, exc)
        return _begin_cleanup(ctx, job, BackupJobState.FAILED, f"Internal error: {type(exc).__name__}: {exc}")


def _save(ctx: EngineContext, job: Job, **values: Any) -> None:
    """Write the job if nobody else did since it was read; keep the in-memory copy in step."""
    with ctx.store.transaction() as conn:
        if not ctx.store.update_job(conn, job["job_id"], values, expect_version=job["version"]):
            raise StaleJob(job["job_id"])
    job.update(values)
    job["version"] += 1


def _client(ctx: EngineContext, job: Job) -> Any:
    return ctx.ec2(job["account_id"], job["region"])


def _configuration(client: Any, instance_id: str) -> dict[str, Any]:
    inst = ec2api.describe_instance(client, instance_id)
    volume_ids = [b["Ebs"]["VolumeId"] for b in inst.get("BlockDeviceMappings", []) if b.get("Ebs")]
    if not volume_ids:
        raise JobFailed(f"instance {instance_id} has no EBS volumes to back up")
    return ec2api.instance_configuration(inst, ec2api.describe_volumes(client, volume_ids))


def _step_start(ctx: EngineContext, job: Job) -> Outcome | None:
    """For an instance or a volume alike: lock check, then the resource's configuration and provisioned size."""
    with ctx.store.transaction() as conn:
        vault = ctx.store.get_vault(conn, job["backup_vault_name"])
    _check_vault_lock(vault, job)
    client, resource_id = _client(ctx, job), Arn.parse(job["resource_arn"]).resource_id
    if job["resource_type"] == "EBS":
        config = _volume_configuration(client, resource_id)
        size = int(config["VolumeSize"] or 0) * GIB  # AWS reports the provisioned size
    else:
        config = _configuration(client, resource_id)
        size = sum(int(b["VolumeSize"] or 0) for b in config["BlockDeviceMappings"]) * GIB
    _save(
        ctx,
        job,
        state=BackupJobState.RUNNING.value,
        started_at=ctx.clock(),
        step="snapshot",
        step_data=dict(job["step_data"], config=config),
        percent_done=5.0,
        backup_size_bytes=size,
        resource_name=config["Tags"].get("Name"),
    )
    return None


def _check_vault_lock(vault: dict[str, Any], job: Job) -> None:
    """A locked vault fails a job whose retention is outside [MinRetentionDays, MaxRetentionDays], before any AWS
    call, so nothing is created; points already in the vault are not affected by the lock's bounds."""
    try:
        check_retention_against_lock(vault_lock(vault), (job["lifecycle"] or {}).get("DeleteAfterDays"))
    except InvalidRequest as exc:
        raise JobFailed(f"Backup vault '{vault['name']}' is locked: {exc.message}") from exc


def _step_snapshot(ctx: EngineContext, job: Job) -> Outcome | None:
    data = dict(job["step_data"])
    client = _client(ctx, job)
    instance_id = data["config"]["InstanceId"]
    if data.get("snapshot_requested"):
        # A previous attempt may have created snapshots and died before recording them: find them by tag.
        found = ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])
        config = _configuration(client, instance_id)
        wanted = {b["VolumeId"] for b in config["BlockDeviceMappings"]}
        if found and {s["VolumeId"] for s in found} == wanted and len(found) == len(wanted):
            return _record_snapshots(ctx, job, data, config, found)
        for snap in found:  # an incomplete set is not crash-consistent: drop it and take a new one
            ec2api.delete_snapshot(client, snap["SnapshotId"])
    _save(ctx, job, step_data=dict(data, snapshot_requested=True))
    ctx.check_lease()
    tags = {ec2api.TAG_BACKUP_JOB: job["job_id"], ec2api.TAG_SOURCE_RESOURCE: job["resource_arn"]}
    created = ec2api.create_instance_snapshots(client, instance_id, tags, f"Snapkeep backup job {job['job_id']}")
    _remember_snapshots(ctx, job, [s["SnapshotId"] for s in created])
    # Record the volumes as they were when the snapshots were taken, not when the job started.
    config = _configuration(client, instance_id)
    return _record_snapshots(ctx, job, job["step_data"], config, created)


def _remember_snapshots(ctx: EngineContext, job: Job, snapshot_ids: list[str]) -> None:
    """Write the new snapshot ids down at once, even if the job changed meanwhile (a stop): a cleanup must not
    depend on finding them by tag, which AWS answers with some delay."""
    for _ in range(10):
        ids = sorted(set(job["step_data"].get("snapshot_ids") or []) | set(snapshot_ids))
        try:
            _save(ctx, job, step_data=dict(job["step_data"], snapshot_ids=ids, snapshot_requested=True))
        except StaleJob:
            fresh = _load(ctx, job["job_id"])
            job.clear()
            job.update(fresh)
            continue
        if BackupJobState(job["state"]) is not BackupJobState.RUNNING or job["step"] != "snapshot":
            raise StaleJob(job["job_id"])  # the job moved on (a stop): let its new state take over
        return
    raise StaleJob(job["job_id"])


def _record_snapshots(
    ctx: EngineContext, job: Job, data: dict[str, Any], config: dict[str, Any], snapshots: list[dict[str, Any]]
) -> Outcome | None:
    device_of = {b["VolumeId"]: b["DeviceName"] for b in config["BlockDeviceMappings"]}
    taken = {s["VolumeId"]: s["SnapshotId"] for s in snapshots}
    # Keep every snapshot id before judging the set, so a cleanup finds them all.
    _save(ctx, job, step_data=dict(data, config=config, snapshot_ids=sorted(taken.values())))
    if set(taken) != set(device_of):
        raise JobFailed(
            "the instance's volumes changed while it was being backed up (snapshots of "
            f"{sorted(taken)}, attached {sorted(device_of)})"
        )
    snapshots_by_device = {device_of[v]: s for v, s in taken.items()}
    _save(ctx, job, step="wait", step_data=dict(job["step_data"], snapshots=snapshots_by_device), percent_done=10.0)
    return ctx.poll_later()


def _step_wait(ctx: EngineContext, job: Job) -> Outcome | None:
    data = job["step_data"]
    snaps = ec2api.describe_snapshots(_client(ctx, job), list(data["snapshots"].values()))
    failed = [s["SnapshotId"] for s in snaps if s["State"] == "error"]
    if failed:
        what = "volume" if job["resource_type"] == "EBS" else "instance"
        raise JobFailed(f"a snapshot of the {what} failed: " + ", ".join(failed))
    if len(snaps) == len(data["snapshots"]) and all(s["State"] == "completed" for s in snaps):
        # An EBS recovery point is the snapshot itself: no image to register.
        after = _after_snapshots(ctx, job) if job["resource_type"] == "EBS" else "image"
        _save(ctx, job, step=after, percent_done=90.0)
        return None
    progress = [float(str(s.get("Progress") or "0").rstrip("%") or 0) for s in snaps]
    percent = round(10.0 + 80.0 * (sum(progress) / (100.0 * max(len(progress), 1))), 1)
    if percent != job["percent_done"]:
        _save(ctx, job, percent_done=percent)
    return ctx.poll_later()


def _step_image(ctx: EngineContext, job: Job) -> Outcome | None:
    data = dict(job["step_data"])
    client = _client(ctx, job)
    keep = set(data["snapshots"].values())
    for snap in ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"]):
        if snap["SnapshotId"] not in keep:  # left by an earlier attempt whose set was replaced
            ec2api.delete_snapshot(client, snap["SnapshotId"])
    if not data.get("image_requested"):
        _save(ctx, job, step_data=dict(data, image_requested=True))
    found = ec2api.images_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])
    if found:
        image_id = found[0]["ImageId"]
    else:
        ctx.check_lease()
        tags = {ec2api.TAG_BACKUP_JOB: job["job_id"], ec2api.TAG_SOURCE_RESOURCE: job["resource_arn"]}
        name = f"snapkeep-{job['job_id'].lower()}"
        try:
            image_id = ec2api.register_image(client, name, data["config"], data["snapshots"], tags)
        except AlreadyExists:  # an earlier attempt registered it; its answer was lost and its tags not yet seen
            image_id = ec2api.image_named(client, name)
    _save(ctx, job, step=_after_snapshots(ctx, job), step_data=dict(job["step_data"], image_id=image_id),
          percent_done=95.0 if job["resource_type"] != "EBS" else 90.0)
    return None


def _vault_repository(ctx: EngineContext, job: Job) -> dict[str, Any] | None:
    with ctx.store.transaction() as conn:
        config = ctx.store.get_vault(conn, job["backup_vault_name"]).get("image_repository")
    return dict(config) if config else None


def _after_snapshots(ctx: EngineContext, job: Job) -> str:
    """The image-level backup when the vault has a repository, else straight to the record."""
    return "image_backup" if _vault_repository(ctx, job) else "record"


def _volumes_to_read(job: Job) -> list[dict[str, Any]]:
    """(VolumeId, SnapshotId, DeviceName) of every volume the job snapshotted."""
    data = job["step_data"]
    if job["resource_type"] == "EBS":
        volume_id = data["config"]["VolumeId"]
        device = ((data["config"].get("Attachments") or [{}])[0]).get("Device")
        return [{"VolumeId": volume_id, "SnapshotId": data["snapshots"][volume_id], "DeviceName": device,
                 "Size": int(data["config"]["VolumeSize"] or 0) * GIB}]
    return [{"VolumeId": b["VolumeId"], "SnapshotId": data["snapshots"][b["DeviceName"]],
             "DeviceName": b["DeviceName"], "Size": int(b["VolumeSize"] or 0) * GIB}
            for b in data["config"]["BlockDeviceMappings"]]


def _step_image_backup(ctx: EngineContext, job: Job) -> Outcome | None:
    """Read every snapshot's blocks through the EBS direct APIs into the vault's image repository.

    Incremental when the resource's previous point in this vault still has its snapshots: ListChangedBlocks against
    each volume's previous snapshot, the previous image backup as parent; otherwise every allocated block is read
    (and deduplicated against the repository). A rerun after a crash adopts an image backup this job already
    wrote (found by its BackupJobId tag) instead of writing a second one.
    """
    config = _vault_repository(ctx, job)
    if config is None:  # the vault's repository was removed meanwhile: the point is snapshot-only
        _save(ctx, job, step="record")
        return None
    repo = open_repository(ctx, config)
    volumes = _volumes_to_read(job)
    done = next((m for m in repo.images() if m.tags.get("BackupJobId") == job["job_id"]), None)
    if done is None:
        with ctx.store.transaction() as conn:
            previous = ctx.store.latest_image_backup(conn, job["backup_vault_name"], job["resource_arn"])
        parent = _usable_parent(previous, config, volumes)
        done = _write_image_backup(ctx, job, repo, config, volumes, parent)
    record = {
        "RepositoryUrl": config["Url"],
        "KmsKeyArn": config.get("KmsKeyArn"),
        "ImageId": done.image_id,
        "Disks": {v["VolumeId"]: {"SnapshotId": v["SnapshotId"], "Size": v["Size"], "DeviceName": v["DeviceName"]}
                  for v in volumes},
        "BackupSizeInBytes": int(done.stats.get("bytes_read", 0)),
        "StoredBytes": int(done.stats.get("bytes_stored", 0)),
        "Parent": done.parent,
        "CompletionDate": ctx.clock().isoformat(),
    }
    _save(ctx, job, step="record", step_data=dict(job["step_data"], image_backup=record), percent_done=99.0)
    return None


def _usable_parent(previous: dict[str, Any] | None, config: dict[str, Any], volumes: list[dict[str, Any]]
                   ) -> tuple[str, dict[str, str]] | None:
    """(parent image id, {VolumeId: previous snapshot id}) when the previous point's image backup is in the same
    repository and its snapshots still exist (WARM); volumes that are new or resized get a full read."""
    if previous is None or previous["storage_class"] != "WARM":
        return None
    backup = previous["image_backup"] or {}
    if backup.get("RepositoryUrl") != config["Url"]:
        return None
    disks = backup.get("Disks") or {}
    snapshots = {v["VolumeId"]: str(disks[v["VolumeId"]]["SnapshotId"]) for v in volumes
                 if v["VolumeId"] in disks and int(disks[v["VolumeId"]].get("Size", -1)) == v["Size"]
                 and disks[v["VolumeId"]]["SnapshotId"] != v["SnapshotId"]}
    return (str(backup["ImageId"]), snapshots) if snapshots else None


def _write_image_backup(ctx: EngineContext, job: Job, repo: Repository, config: dict[str, Any],
                        volumes: list[dict[str, Any]], parent: tuple[str, dict[str, str]] | None) -> Manifest:
    role = ctx.role_for(job["account_id"])
    previous = parent[1] if parent else {}
    sources = [EbsBlockSource(ctx.sessions, job["region"], v["SnapshotId"], role_arn=role, name=v["VolumeId"],
                              previous_snapshot_id=previous.get(v["VolumeId"])) for v in volumes]
    lifecycle = lifecycle_from_aws_json(job["lifecycle"]) if job["lifecycle"] else None
    _, delete_at = calculated_lifecycle(job["started_at"] or ctx.clock(), lifecycle) if lifecycle else (None, None)
    def save_percent(percent: float) -> None:
        _save(ctx, job, percent_done=percent)
        ctx.check_lease()

    if not job["step_data"].get("image_backup_started"):
        _save(ctx, job, step_data=dict(job["step_data"], image_backup_started=True))
    ctx.check_lease()
    try:
        return repo.backup(
            sources,
            source={"ResourceArn": job["resource_arn"], "ResourceType": job["resource_type"],
                    "Region": job["region"], "AccountId": job["account_id"],
                    "Configuration": job["step_data"]["config"]},
            parent=parent[0] if parent else None,
            changed_blocks={s.name: s.changed_blocks() for s in sources if s.previous_snapshot_id} or None,
            delete_after=delete_at,
            tags={"BackupJobId": job["job_id"], "BackupVaultName": job["backup_vault_name"]},
            progress=progress_saver(save_percent, 90.0, 99.0),
            lock_wait=timedelta(minutes=5),
        )
    finally:
        for src in sources:
            src.close()


def _step_record(ctx: EngineContext, job: Job) -> Outcome | None:
    data = job["step_data"]
    config = data["config"]
    rp_arn = image_arn(job["region"], data["image_id"])
    volumes = [
        {
            "DeviceName": bdm["DeviceName"],
            "VolumeId": bdm["VolumeId"],
            "SnapshotId": data["snapshots"][bdm["DeviceName"]],
            "SnapshotArn": snapshot_arn(job["region"], data["snapshots"][bdm["DeviceName"]]),
            "VolumeSize": bdm["VolumeSize"],
            "VolumeType": bdm["VolumeType"],
            "Encrypted": bdm["Encrypted"],
            "KmsKeyId": bdm["KmsKeyId"],
            "Iops": bdm["Iops"],
            "Throughput": bdm["Throughput"],
            "DeleteOnTermination": bdm["DeleteOnTermination"],
            "Tags": bdm["Tags"],
        }
        for bdm in config["BlockDeviceMappings"]
    ]
    return _insert_point(ctx, job, rp_arn, data["image_id"], config, volumes, data.get("image_backup"))


def _insert_point(
    ctx: EngineContext, job: Job, rp_arn: str, image_id: str | None, instance: dict[str, Any] | None,
    volumes: list[dict[str, Any]], image_backup: dict[str, Any] | None = None,
) -> Outcome:
    """The recovery point and the job's COMPLETED state, in one transaction fenced by the job's version.

    A point with an image backup moves to cold storage at MoveToColdStorageAt: its snapshots are deleted and it is
    restored from the image backup from then on (engine.retention). A point without one never moves:
    MoveToColdStorageAfterDays is kept as given, but AWS Backup has no cold tier for EC2 snapshots, and EBS points
    stay WARM (and restorable) until they expire.
    """
    now = ctx.clock()
    created = job["started_at"] or now  # AWS counts retention from the recovery point's creation
    lifecycle = lifecycle_from_aws_json(job["lifecycle"]) if job["lifecycle"] else None
    cold_at, delete_at = calculated_lifecycle(created, lifecycle) if lifecycle else (None, None)
    done = {
        "state": BackupJobState.COMPLETED.value,
        "step": "done",
        "percent_done": 100.0,
        "recovery_point_arn": rp_arn,
        "completion_date": now,
        "status_message": None,
    }
    with ctx.store.transaction() as conn:
        if ctx.store.find_recovery_point_of_job(conn, job["job_id"]) is None:
            ctx.store.insert_recovery_point(
                conn,
                {
                    "recovery_point_arn": rp_arn,
                    "backup_vault_name": job["backup_vault_name"],
                    "account_id": job["account_id"],
                    "region": job["region"],
                    "resource_arn": job["resource_arn"],
                    "resource_type": job["resource_type"],
                    "resource_name": job["resource_name"],
                    "backup_job_id": job["job_id"],
                    "plan_id": job["plan_id"],
                    "rule_name": job["rule_name"],
                    "iam_role_arn": job["iam_role_arn"],
                    "status": "COMPLETED",
                    "storage_class": "WARM",
                    "lifecycle": job["lifecycle"],
                    "move_to_cold_at": cold_at if image_backup else None,
                    "delete_at": delete_at,
                    "is_encrypted": any(v["Encrypted"] for v in volumes),
                    "backup_size_bytes": job["backup_size_bytes"] or 0,
                    "tags": job["recovery_point_tags"],
                    "image_id": image_id,
                    "instance": instance,
                    "volumes": volumes,
                    "image_backup": image_backup,
                    "completion_date": now,
                    "creation_date": created,
                },
            )
        if not ctx.store.update_job(conn, job["job_id"], done, expect_version=job["version"]):
            raise StaleJob(job["job_id"])  # rolls back the recovery point with it
    return Done()


def _begin_cleanup(ctx: EngineContext, job: Job, final: BackupJobState, message: str) -> Outcome:
    _save(ctx, job, step="cleanup", step_data=dict(job["step_data"], final_state=final.value, final_message=message))
    return _step_cleanup(ctx, job)


def _step_cleanup(ctx: EngineContext, job: Job) -> Outcome:
    """Remove every snapshot and image this job made (found by tag, not only by what was recorded)."""
    data = job["step_data"]
    with ctx.store.transaction() as conn:
        if ctx.store.find_recovery_point_of_job(conn, job["job_id"]) is not None:
            # The backup did complete (a race with a stop): never destroy a recovery point's data.
            return _finish(ctx, job, BackupJobState.COMPLETED, "")
    _forget_image_backup(ctx, job)
    if data.get("snapshot_requested") or data.get("image_requested"):
        ctx.check_lease()
        client = _client(ctx, job)
        if job["resource_type"] != "EBS":  # an EBS job registers no image
            for image in ec2api.images_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"]):
                ec2api.deregister_image(client, image["ImageId"])
        recorded = set(data.get("snapshot_ids") or []) | set((data.get("snapshots") or {}).values())
        tagged = {s["SnapshotId"] for s in ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])}
        for snapshot_id in sorted(recorded | tagged):
            ec2api.delete_snapshot(client, snapshot_id)
    return _finish(ctx, job, BackupJobState(data["final_state"]), data["final_message"])


def _forget_image_backup(ctx: EngineContext, job: Job) -> None:
    """A failed or stopped job leaves no image backup: forget the one it wrote (its packs go at the next gc)."""
    if job["step"] != "cleanup" or not any(k in job["step_data"] for k in ("image_backup", "image_backup_started")):
        return
    config = _vault_repository(ctx, job)
    if config is None:
        return
    repo = open_repository(ctx, config)
    for manifest in repo.images():
        if manifest.tags.get("BackupJobId") == job["job_id"]:
            repo.forget(manifest.image_id)


def _cleanup_failed(ctx: EngineContext, job: Job, exc: Exception) -> Outcome:
    """Cleanup is retried a few times; then the job ends anyway, naming what may be left behind."""
    data = job["step_data"]
    attempts = int(data.get("cleanup_attempts", 0)) + 1
    if attempts < MAX_CLEANUP_ATTEMPTS:
        _save(ctx, job, step_data=dict(data, cleanup_attempts=attempts))
        return RetryAt(ctx.clock() + timedelta(seconds=max(1.0, ctx.settings.poll_seconds * 5 * attempts)))
    left = sorted(set(data.get("snapshot_ids") or []) | set((data.get("snapshots") or {}).values()))
    message = f"{data['final_message']}; cleanup failed ({exc}); may be left behind: {', '.join(left) or 'none'}"
    return _finish(ctx, job, BackupJobState(data["final_state"]), message)


def _finish(ctx: EngineContext, job: Job, state: BackupJobState, message: str) -> Outcome:
    values: dict[str, Any] = {
        "state": state.value,
        "step": "done",
        "completion_date": ctx.clock(),
        "status_message": message or None,
    }
    if state is BackupJobState.COMPLETED:
        values["percent_done"] = 100.0
    _save(ctx, job, **values)
    return Done()


_STEPS: dict[str, Callable[[EngineContext, Job], Outcome | None]] = {
    "start": _step_start,
    "snapshot": _step_snapshot,
    "wait": _step_wait,
    "image": _step_image,
    "image_backup": _step_image_backup,
    "record": _step_record,
    "cleanup": _step_cleanup,
}


# -- EBS volume ---------------------------------------------------------------------------------------------


def _volume_configuration(client: Any, volume_id: str) -> dict[str, Any]:
    try:
        return ec2api.volume_configuration(ec2api.describe_volume(client, volume_id))
    except ResourceNotFound as exc:
        raise JobFailed(f"volume {volume_id} cannot be backed up: it no longer exists") from exc


def _step_snapshot_volume(ctx: EngineContext, job: Job) -> Outcome | None:
    data = dict(job["step_data"])
    client = _client(ctx, job)
    volume_id = data["config"]["VolumeId"]
    if data.get("snapshot_requested"):
        # A previous attempt may have created the snapshot and died before recording it: adopt it by its tag.
        found = ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])
        usable = sorted((s for s in found if s["State"] != "error"),
                        key=lambda s: (str(s.get("StartTime", "")), s["SnapshotId"]))
        for extra in [s for s in found if s not in usable[:1]]:  # failed ones, and any second one
            ec2api.delete_snapshot(client, extra["SnapshotId"])
        if usable:
            return _record_volume_snapshot(ctx, job, client, usable[0]["SnapshotId"])
    _save(ctx, job, step_data=dict(data, snapshot_requested=True))
    ctx.check_lease()
    tags = {**job["recovery_point_tags"], ec2api.TAG_BACKUP_JOB: job["job_id"],
            ec2api.TAG_SOURCE_RESOURCE: job["resource_arn"]}
    created = ec2api.create_volume_snapshot(client, volume_id, tags, f"Snapkeep backup job {job['job_id']}")
    _remember_snapshots(ctx, job, [created["SnapshotId"]])
    return _record_volume_snapshot(ctx, job, client, created["SnapshotId"])


def _record_volume_snapshot(ctx: EngineContext, job: Job, client: Any, snapshot_id: str) -> Outcome:
    # Keep the volume as it was when the snapshot was taken, not when the job started.
    config = _volume_configuration(client, job["step_data"]["config"]["VolumeId"])
    _save(ctx, job, step="wait", percent_done=10.0, step_data=dict(
        job["step_data"], config=config, snapshot_ids=[snapshot_id], snapshots={config["VolumeId"]: snapshot_id}))
    return ctx.poll_later()


def _step_record_volume(ctx: EngineContext, job: Job) -> Outcome | None:
    data = job["step_data"]
    config = data["config"]
    snapshot_id = data["snapshots"][config["VolumeId"]]
    attached = (config.get("Attachments") or [{}])[0]
    volume = {
        "DeviceName": attached.get("Device"),
        "VolumeId": config["VolumeId"],
        "SnapshotId": snapshot_id,
        "SnapshotArn": snapshot_arn(job["region"], snapshot_id),
        "VolumeSize": config["VolumeSize"],
        "VolumeType": config["VolumeType"],
        "Encrypted": config["Encrypted"],
        "KmsKeyId": config["KmsKeyId"],
        "Iops": config["Iops"],
        "Throughput": config["Throughput"],
        "AvailabilityZone": config["AvailabilityZone"],
        "DeleteOnTermination": bool(attached.get("DeleteOnTermination", False)),
        "Tags": config["Tags"],
    }
    return _insert_point(ctx, job, snapshot_arn(job["region"], snapshot_id), None, None, [volume],
                         data.get("image_backup"))


_EBS_STEPS: dict[str, Callable[[EngineContext, Job], Outcome | None]] = {
    "start": _step_start,
    "snapshot": _step_snapshot_volume,
    "wait": _step_wait,
    "image_backup": _step_image_backup,
    "record": _step_record_volume,
    "cleanup": _step_cleanup,
}
