"""The EC2 backup job, as resumable steps.

start → snapshot → wait → image → record, and cleanup on failure or abort. Each step records in the job's
`step_data` the AWS ids it is about to create (and tags what it creates with the job id) before it waits, so a
process killed at any point and restarted finishes or fails the job and never leaves a snapshot untracked.
"""

from __future__ import annotations

from typing import Any

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn, image_arn, snapshot_arn
from snapkeep.domain.errors import SnapkeepError
from snapkeep.domain.jobs import BackupJobState, JobWindows, window_verdict
from snapkeep.domain.plans import lifecycle_from_aws_json
from snapkeep.domain.retention import calculated_lifecycle
from snapkeep.engine.context import Done, EngineContext, Outcome

GIB = 1024**3


def run_backup_job(ctx: EngineContext, job_id: str) -> Outcome:
    """Advance one backup job as far as it can go now; return when to look at it again."""
    with ctx.store.transaction() as conn:
        job = ctx.store.get_job(conn, job_id)
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
    try:
        step = _STEPS[job["step"]]
        return step(ctx, job)
    except SnapkeepError as exc:
        if job["step"] == "cleanup":
            raise
        return _begin_cleanup(ctx, job, BackupJobState.FAILED, exc.message)


def _save(ctx: EngineContext, job_id: str, **values: Any) -> None:
    with ctx.store.transaction() as conn:
        ctx.store.update_job(conn, job_id, values)


def _step_start(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    arn = Arn.parse(job["resource_arn"])
    client = ctx.ec2(job["account_id"], job["region"])
    with ctx.store.transaction() as conn:
        ctx.store.get_vault(conn, job["backup_vault_name"])
    inst = ec2api.describe_instance(client, arn.resource_id)
    volume_ids = [b["Ebs"]["VolumeId"] for b in inst.get("BlockDeviceMappings", []) if b.get("Ebs")]
    if not volume_ids:
        raise _fail("the instance has no EBS volumes to back up")
    volumes = ec2api.describe_volumes(client, volume_ids)
    config = ec2api.instance_configuration(inst, volumes)
    data = dict(job["step_data"], config=config)
    size = sum(int(v.get("Size", 0)) for v in volumes.values()) * GIB
    _save(
        ctx,
        job["job_id"],
        state=BackupJobState.RUNNING.value,
        started_at=ctx.clock(),
        step="snapshot",
        step_data=data,
        percent_done=5.0,
        backup_size_bytes=size,
        resource_name=config["Tags"].get("Name"),
    )
    return run_backup_job(ctx, job["job_id"])


def _step_snapshot(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    data = dict(job["step_data"])
    config = data["config"]
    client = ctx.ec2(job["account_id"], job["region"])
    device_of = {b["VolumeId"]: b["DeviceName"] for b in config["BlockDeviceMappings"]}
    if data.get("snapshot_requested"):
        # A previous attempt may have created snapshots and died before recording them: find them by tag.
        found = ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])
        if {s["VolumeId"] for s in found} == set(device_of):
            data["snapshots"] = {device_of[s["VolumeId"]]: s["SnapshotId"] for s in found}
            _save(ctx, job["job_id"], step="wait", step_data=data)
            return ctx.poll_later()
        for snap in found:  # an incomplete set is not crash-consistent: drop it and take a new one
            ec2api.delete_snapshot(client, snap["SnapshotId"])
    data["snapshot_requested"] = True
    _save(ctx, job["job_id"], step_data=data)
    tags = {ec2api.TAG_BACKUP_JOB: job["job_id"], ec2api.TAG_SOURCE_RESOURCE: job["resource_arn"]}
    created = ec2api.create_instance_snapshots(
        client, config["InstanceId"], tags, f"Snapkeep backup job {job['job_id']}"
    )
    data["snapshots"] = {device_of.get(s["VolumeId"], s["VolumeId"]): s["SnapshotId"] for s in created}
    _save(ctx, job["job_id"], step="wait", step_data=data, percent_done=10.0)
    return ctx.poll_later()


def _step_wait(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    data = job["step_data"]
    client = ctx.ec2(job["account_id"], job["region"])
    snaps = ec2api.describe_snapshots(client, list(data["snapshots"].values()))
    if any(s["State"] == "error" for s in snaps):
        raise _fail(
            "a snapshot of the instance failed: " + ", ".join(s["SnapshotId"] for s in snaps if s["State"] == "error")
        )
    if len(snaps) == len(data["snapshots"]) and all(s["State"] == "completed" for s in snaps):
        _save(ctx, job["job_id"], step="image", percent_done=90.0)
        return run_backup_job(ctx, job["job_id"])
    progress = [float(str(s.get("Progress") or "0").rstrip("%") or 0) for s in snaps]
    percent = 10.0 + 80.0 * (sum(progress) / (100.0 * max(len(progress), 1)))
    _save(ctx, job["job_id"], percent_done=round(percent, 1))
    return ctx.poll_later()


def _step_image(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    data = dict(job["step_data"])
    client = ctx.ec2(job["account_id"], job["region"])
    if not data.get("image_id"):
        found = ec2api.images_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])
        if found:
            data["image_id"] = found[0]["ImageId"]
        else:
            tags = {ec2api.TAG_BACKUP_JOB: job["job_id"], ec2api.TAG_SOURCE_RESOURCE: job["resource_arn"]}
            data["image_id"] = ec2api.register_image(
                client, f"snapkeep-{job['job_id'].lower()}", data["config"], data["snapshots"], tags
            )
        _save(ctx, job["job_id"], step="record", step_data=data, percent_done=95.0)
    return _step_record(ctx, dict(job, step_data=data))


def _step_record(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    data = job["step_data"]
    config = data["config"]
    now = ctx.clock()
    rp_arn = image_arn(job["region"], data["image_id"])
    lifecycle = lifecycle_from_aws_json(job["lifecycle"]) if job["lifecycle"] else None
    created = job["started_at"] or now  # AWS counts retention from the recovery point's creation
    move_at, delete_at = calculated_lifecycle(created, lifecycle) if lifecycle else (None, None)
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
    with ctx.store.transaction() as conn:
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
                "move_to_cold_at": move_at,
                "delete_at": delete_at,
                "is_encrypted": any(v["Encrypted"] for v in volumes),
                "backup_size_bytes": job["backup_size_bytes"] or 0,
                "tags": job["recovery_point_tags"],
                "image_id": data["image_id"],
                "instance": config,
                "volumes": volumes,
                "completion_date": now,
                "creation_date": created,
            },
        )
        ctx.store.update_job(
            conn,
            job["job_id"],
            {
                "state": BackupJobState.COMPLETED.value,
                "step": "done",
                "percent_done": 100.0,
                "recovery_point_arn": rp_arn,
                "completion_date": now,
                "status_message": None,
            },
        )
    return Done()


def _begin_cleanup(ctx: EngineContext, job: dict[str, Any], final: BackupJobState, message: str) -> Outcome:
    data = dict(job["step_data"], final_state=final.value, final_message=message)
    _save(ctx, job["job_id"], step="cleanup", step_data=data)
    return _step_cleanup(ctx, dict(job, step="cleanup", step_data=data))


def _step_cleanup(ctx: EngineContext, job: dict[str, Any]) -> Outcome:
    """Remove every snapshot and image this job made (found by tag, not only by what was recorded)."""
    data = job["step_data"]
    if data.get("snapshot_requested") or data.get("image_id"):
        client = ctx.ec2(job["account_id"], job["region"])
        for image in ec2api.images_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"]):
            ec2api.deregister_image(client, image["ImageId"])
        recorded = set((data.get("snapshots") or {}).values())
        tagged = {s["SnapshotId"] for s in ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["job_id"])}
        for snapshot_id in sorted(recorded | tagged):
            ec2api.delete_snapshot(client, snapshot_id)
    return _finish(ctx, job, BackupJobState(data["final_state"]), data["final_message"])


def _finish(ctx: EngineContext, job: dict[str, Any], state: BackupJobState, message: str) -> Outcome:
    _save(ctx, job["job_id"], state=state.value, status_message=message, step="done", completion_date=ctx.clock())
    return Done()


def _fail(message: str) -> SnapkeepError:
    return SnapkeepError(message)


_STEPS = {
    "start": _step_start,
    "snapshot": _step_snapshot,
    "wait": _step_wait,
    "image": _step_image,
    "record": _step_record,
    "cleanup": _step_cleanup,
}
