"""Restore jobs, as resumable steps: a whole EC2 instance, or a single EBS volume, always as a new resource.

A volume is created from one snapshot: the only one of an EBS recovery point (a volume's snapshot), or the one
chosen by DeviceName / volumeId of an EC2 recovery point.

start → launch/create → wait → done, or cleanup → done on failure. `launch_requested` / `create_requested` is
recorded before RunInstances / CreateVolume is asked (with the restore job id as ClientToken and as a tag), so a
restarted job adopts what an earlier attempt made instead of making it twice, and a failed job finds by tag
everything it made and removes it: a failed restore leaves nothing behind (or names what it could not remove).

From an image backup (a point in cold storage, or RestoreFrom ImageBackup) a `write` step comes first: each disk
needed is written from the repository into a new snapshot through the EBS direct APIs (StartSnapshot with a client
token derived from the job and the volume, so a retry after a crash continues the same snapshot), in the region of
the zone asked for, which may differ from the point's. An EC2 restore then registers a temporary AMI over those
snapshots and launches from it. The temporary AMI and snapshots carry the job's tag and are removed when the job
ends, COMPLETED or FAILED.

Every way a restore can go wrong ends the job: the recovery point deleted under it, an instance that stops or
terminates instead of running, a volume in `error`, six hours without completing, any error that is not a
transient AWS failure. Transient AWS failures (throttling, 5xx, lost connections) are retried with backoff, bounded
by the same deadline. Every write is fenced by the job's version (StaleJob: reload and carry on).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from snapkeep.aws import ec2 as ec2api
from snapkeep.aws.ebs_blocks import EbsBlockSink, complete_snapshot
from snapkeep.aws.ec2 import TransientAwsError
from snapkeep.catalog import tables
from snapkeep.domain.arn import instance_arn, volume_arn
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue, ResourceNotFound, SnapkeepError
from snapkeep.domain.jobs import RestoreJobStatus
from snapkeep.domain.restore_metadata import (
    FROM_IMAGE_BACKUP,
    IOPS_VOLUME_TYPES,
    NO_PROFILE,
    THROUGHPUT_VOLUME_TYPES,
    USE_BACKED_UP_VALUE,
    restore_region,
    restore_source,
)
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
from snapkeep.engine.repositories import image_backup_repository, open_repository

log = logging.getLogger("snapkeep.restore")

RESTORE_DEADLINE = timedelta(hours=6)
"""A restore not COMPLETED this long after its creation fails (and is cleaned up)."""
NOT_VISIBLE_GRACE = timedelta(minutes=2)
"""How long a just-created instance or volume may be missing from Describe* (EC2's eventual consistency)."""
MAX_CLEANUP_ATTEMPTS = 2
CLEANUP_RETRY_POLLS = 10
"""The second cleanup attempt comes this many poll intervals after the first."""
MAX_BACKOFF_SECONDS = 60.0
RESTORABLE_POINT_STATUSES = ("COMPLETED", "AVAILABLE")
FAILED_INSTANCE_STATES = ("stopping", "stopped", "shutting-down", "terminated")
WRITE_PERCENT = (10.0, 60.0)
"""percent_done while the image backup's disks are written into snapshots."""
REGION_BOUND_CONFIG = ("SubnetId", "SecurityGroupIds", "VpcId", "KeyName")
"""Backed-up instance settings that name resources of the point's region: not reused in another region."""

Job = dict[str, Any]


class RestoreFailed(SnapkeepError):
    """The restore cannot succeed; what it made is removed and the job ends FAILED with this message."""


def run_restore_job(ctx: EngineContext, job_id: str) -> Outcome:
    """Advance one restore job as far as it can go now; return when to look at it again."""
    return advance_with_reload(ctx, lambda: _load(ctx, job_id), _advance)


def _load(ctx: EngineContext, job_id: str) -> Job:
    with ctx.store.transaction() as conn:
        return ctx.store.get_restore_job(conn, job_id)


def _advance(ctx: EngineContext, job: Job) -> Outcome:
    if RestoreJobStatus(job["status"]).is_final:
        return Done()
    if job["step"] == "cleanup":
        return _step_cleanup(ctx, job)
    try:
        if ctx.clock() >= job["creation_date"] + RESTORE_DEADLINE:
            hours = RESTORE_DEADLINE.total_seconds() / 3600
            raise RestoreFailed(f"Restore job timed out: not completed within {hours:g} hours of its creation")
        if "source" not in job["step_data"]:
            _plan(ctx, job)
        if job["resource_type"] == "EBS":
            return _restore_volume(ctx, job)
        return _restore_instance(ctx, job)
    except (StaleJob, LeaseLost, OperationalError):
        raise  # another worker owns the job now, or the catalog is unreachable: nothing to record
    except TransientAwsError as exc:
        return _back_off(ctx, job, exc)
    except SnapkeepError as exc:
        return _fail(ctx, job, exc.message)
    except Exception as exc:  # a bug must end the job, not retry it forever
        log.exception("restore job %s failed unexpectedly", job["restore_job_id"])
        return _fail(ctx, job, f"Internal error: {type(exc).__name__}: {exc}")


def _save(ctx: EngineContext, job: Job, **values: Any) -> None:
    """Write the job if nobody else did since it was read; keep the in-memory copy in step."""
    with ctx.store.transaction() as conn:
        if not ctx.store.update_restore_job(conn, job["restore_job_id"], values, expect_version=job["version"]):
            raise StaleJob(job["restore_job_id"])
    job.update(values)
    job["version"] += 1


def _target_region(job: Job) -> str:
    """The region the restore writes into (recorded when the job starts; the point's region until then)."""
    return str(job["step_data"].get("target_region") or job["region"])


def _client(ctx: EngineContext, job: Job) -> Any:
    return ctx.ec2(job["account_id"], _target_region(job))


def _from_image(job: Job) -> bool:
    return bool(job["step_data"].get("source") == FROM_IMAGE_BACKUP)


def _plan(ctx: EngineContext, job: Job) -> None:
    """Decide once what the restore reads (snapshots or the image backup) and which region it writes into.

    Decided again here because the point may have moved to cold storage since StartRestoreJob checked it."""
    point = _point(ctx, job)
    meta: dict[str, str] = {str(k): str(v) for k, v in (job["metadata"] or {}).items()}
    target = restore_region(job["resource_type"], meta, point["region"])
    source = restore_source(job["resource_type"], meta, point_region=point["region"],
                            storage_class=point["storage_class"], has_image_backup=bool(point["image_backup"]))
    _save(ctx, job, step_data=dict(job["step_data"], source=source, target_region=target))


def _back_off(ctx: EngineContext, job: Job, exc: SnapkeepError) -> Outcome:
    """Retry a transient AWS failure after a few seconds, doubling up to a minute; the deadline bounds it."""
    errors = int(job["step_data"].get("transient_errors", 0)) + 1
    log.warning("restore job %s: %s; retry %d", job["restore_job_id"], exc.message, errors)
    _save(ctx, job, step_data=dict(job["step_data"], transient_errors=errors))
    delay = min(MAX_BACKOFF_SECONDS, max(1.0, ctx.settings.poll_seconds) * 2 ** min(errors - 1, 6))
    return RetryAt(ctx.clock() + timedelta(seconds=delay))


def _restorable_point(ctx: EngineContext, job: Job) -> dict[str, Any]:
    """The recovery point, checked still restorable (it may be deleted, or lose its snapshots to cold storage,
    after the job began)."""
    point = _point(ctx, job)
    arn = point["recovery_point_arn"]
    if point["storage_class"] == "COLD" and not _from_image(job):
        raise RestoreFailed(f"The recovery point {arn} moved to cold storage and cannot be restored from its "
                            "snapshots")
    if _from_image(job) and not point["image_backup"]:
        raise RestoreFailed(f"The recovery point {arn} has no image backup to restore from")
    return point


def _point(ctx: EngineContext, job: Job) -> dict[str, Any]:
    """The recovery point, whatever its storage class, checked not deleted."""
    arn = job["recovery_point_arn"]
    points = tables.recovery_points
    with ctx.store.transaction() as conn:
        row = conn.execute(sa.select(points).where(points.c.recovery_point_arn == arn)).mappings().first()
    if row is None:
        raise RestoreFailed(f"The recovery point {arn} no longer exists")
    point = dict(row)
    if point["status"] not in RESTORABLE_POINT_STATUSES:
        raise RestoreFailed(f"The recovery point {arn} is {point['status']} and can no longer be restored")
    return point


def _now_text(ctx: EngineContext) -> str:
    return ctx.clock().isoformat()


def _within_grace(ctx: EngineContext, data: dict[str, Any]) -> bool:
    created = data.get("created_at")
    return bool(created) and ctx.clock() < datetime.fromisoformat(str(created)) + NOT_VISIBLE_GRACE


def _complete(ctx: EngineContext, job: Job, arn: str) -> Outcome:
    """COMPLETED, once the temporary AMI and snapshots of a restore from an image backup are gone (a crash before
    this write finds them again by tag on the next pass)."""
    message = None
    if _from_image(job):
        left = _remove_temporaries(ctx, job)
        if left:  # the restored resource is fine: say what is left rather than fail it
            message = "Temporary resources left behind: " + "; ".join(f"{k}: {v}" for k, v in sorted(left.items()))
    _save(ctx, job, status=RestoreJobStatus.COMPLETED.value, step="done", percent_done=100.0,
          created_resource_arn=arn, status_message=message, completion_date=ctx.clock())
    return Done()


# -- EC2 instance ---------------------------------------------------------------------------------------------

def _restore_instance(ctx: EngineContext, job: Job) -> Outcome:
    client = _client(ctx, job)
    data = dict(job["step_data"])
    if not data.get("instance_id"):
        point = _restorable_point(ctx, job)
        found = _adopt(client, job, ec2api.instances_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"]))
        if found:
            data["instance_id"] = found
        else:
            if _from_image(job):
                snapshots = _write_disks(ctx, job, point, list(point["volumes"]))
                if snapshots is None:
                    return ctx.poll_later()  # a snapshot an earlier attempt sealed is still completing
                point = _image_backed_point(ctx, job, point, snapshots)
                data = dict(job["step_data"])
            data["launch_requested"] = True
            _save(ctx, job, status=RestoreJobStatus.RUNNING.value, step="launch", step_data=data,
                  percent_done=_launch_percent(job))
            ctx.check_lease()
            data["instance_id"] = _launch(client, job, point)
        data["created_at"] = _now_text(ctx)
        _save(ctx, job, status=RestoreJobStatus.RUNNING.value, step="wait", step_data=data,
              percent_done=_wait_percent(job))
        return ctx.poll_later()  # a new instance is pending: look again in a moment
    instance_id = str(data["instance_id"])
    inst: dict[str, Any] | None
    try:
        inst = ec2api.describe_instance(client, instance_id)
    except ResourceNotFound:
        inst = _instance_any_state(client, instance_id)  # terminated ones too
    if inst is None:
        if _within_grace(ctx, data):
            return ctx.poll_later()
        raise RestoreFailed(f"The restored instance {instance_id} cannot be found")
    state = str(inst["State"]["Name"])
    if state == "running":
        return _complete(ctx, job, instance_arn(_target_region(job), job["account_id"], instance_id))
    if state in FAILED_INSTANCE_STATES:
        reason = (inst.get("StateReason") or {}).get("Message") or inst.get("StateTransitionReason") or ""
        raise RestoreFailed(
            f"The restored instance {instance_id} is {state} instead of running" + (f": {reason}" if reason else "")
        )
    return ctx.poll_later()  # pending


def _adopt(client: Any, job: Job, found: list[dict[str, Any]]) -> str | None:
    """The instance an earlier attempt launched (found by tag); any extra one is terminated."""
    if not found:
        return None
    found = sorted(found, key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]))
    for extra in found[1:]:
        log.warning("restore job %s: terminating extra instance %s", job["restore_job_id"], extra["InstanceId"])
        try:
            _terminate(client, extra["InstanceId"])
        except SnapkeepError as exc:  # the restore goes on; a failed restore's cleanup finds it by tag again
            log.warning("restore job %s: %s", job["restore_job_id"], exc.message)
    return str(found[0]["InstanceId"])


def _instance_any_state(client: Any, instance_id: str) -> dict[str, Any] | None:
    """The instance even when terminated; None while EC2 does not list it yet (a filter never raises NotFound)."""
    answer = ec2api.call("DescribeInstances", client.describe_instances,
                         Filters=[{"Name": "instance-id", "Values": [instance_id]}])
    for reservation in answer["Reservations"]:
        for inst in reservation["Instances"]:
            return dict(inst)
    return None


def _flag(meta: dict[str, Any], key: str) -> bool | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    return str(value).lower() == "true"


def _json_object(meta: dict[str, Any], key: str) -> dict[str, Any]:
    value = meta.get(key)
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    parsed = json.loads(str(value))
    if not isinstance(parsed, dict):
        raise InvalidParameterValue(f"Metadata.{key}: must be a JSON object", field=f"Metadata.{key}")
    return parsed


def _launch(client: Any, job: Job, point: dict[str, Any]) -> str:
    """RunInstances from the recovery point's AMI with its snapshots; metadata overrides the backed-up config."""
    meta: dict[str, Any] = dict(job["metadata"] or {})
    config: dict[str, Any] = point["instance"] or {}
    tags = dict(config.get("Tags", {})) if job["copy_source_tags"] else {}
    tags = {k: v for k, v in tags.items() if not k.startswith("aws:")}
    tags[ec2api.TAG_RESTORE_JOB] = job["restore_job_id"]
    tags[ec2api.TAG_RECOVERY_POINT] = point["recovery_point_arn"]
    mappings = []
    for vol in point["volumes"]:
        ebs: dict[str, Any] = {"SnapshotId": vol["SnapshotId"], "DeleteOnTermination": vol["DeleteOnTermination"]}
        if vol.get("VolumeType"):
            ebs["VolumeType"] = vol["VolumeType"]
        if vol.get("VolumeType") in ("io1", "io2") and vol.get("Iops"):
            ebs["Iops"] = vol["Iops"]
        mappings.append({"DeviceName": vol["DeviceName"], "Ebs": ebs})
    kwargs: dict[str, Any] = {
        "ImageId": point["image_id"],
        "MinCount": 1,
        "MaxCount": 1,
        "BlockDeviceMappings": mappings,
        "ClientToken": job["restore_job_id"],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": ec2api.tag_list(tags)},
            {"ResourceType": "volume", "Tags": ec2api.tag_list({ec2api.TAG_RESTORE_JOB: job["restore_job_id"]})},
        ],
    }
    instance_type = meta.get("InstanceType") or config.get("InstanceType")
    if instance_type:
        kwargs["InstanceType"] = instance_type
    subnet = meta.get("SubnetId") or config.get("SubnetId")
    if subnet:
        kwargs["SubnetId"] = subnet
    groups = list_value(meta.get("SecurityGroupIds"), "SecurityGroupIds") or config.get("SecurityGroupIds") or []
    if groups:
        kwargs["SecurityGroupIds"] = groups
    key_name = meta.get("KeyName", config.get("KeyName"))
    if key_name:
        kwargs["KeyName"] = key_name
    profile = meta.get("IamInstanceProfileName")
    if profile == USE_BACKED_UP_VALUE:
        if config.get("IamInstanceProfileArn"):
            kwargs["IamInstanceProfile"] = {"Arn": config["IamInstanceProfileArn"]}
    elif profile and profile != NO_PROFILE:
        kwargs["IamInstanceProfile"] = {"Name": profile}
    placement = {k: v for k, v in _json_object(meta, "Placement").items()
                 if k in ("AvailabilityZone", "GroupName", "Tenancy") and v}
    if meta.get("AvailabilityZone"):
        placement["AvailabilityZone"] = meta["AvailabilityZone"]
    if placement:
        kwargs["Placement"] = placement
    for key in ("DisableApiTermination", "EbsOptimized"):
        flag = _flag(meta, key)
        if flag is not None:
            kwargs[key] = flag
    if meta.get("InstanceInitiatedShutdownBehavior"):
        kwargs["InstanceInitiatedShutdownBehavior"] = meta["InstanceInitiatedShutdownBehavior"]
    imds = _flag(meta, "RequireIMDSv2")
    if imds is not None:
        kwargs["MetadataOptions"] = {"HttpTokens": "required" if imds else "optional", "HttpEndpoint": "enabled"}
    monitoring = _json_object(meta, "Monitoring")
    if monitoring:
        enabled = monitoring.get("Enabled")
        kwargs["Monitoring"] = {"Enabled": bool(enabled) if enabled is not None
                                else monitoring.get("State") in ("enabled", "pending")}
    with ec2api.aws_errors("RunInstances"):
        answer = client.run_instances(**kwargs)
    return str(answer["Instances"][0]["InstanceId"])


def list_value(raw: Any, field: str) -> list[str]:
    """AWS restore metadata values are strings; lists come as JSON ('["sg-1"]') or comma-separated."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return [str(v) for v in raw]
    text = str(raw).strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list):
            raise InvalidParameterValue(f"Metadata.{field}: not a JSON list: {text}", field=f"Metadata.{field}")
        return [str(v) for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


# -- EBS volume -----------------------------------------------------------------------------------------------

def _restore_volume(ctx: EngineContext, job: Job) -> Outcome:
    client = _client(ctx, job)
    data = dict(job["step_data"])
    if not data.get("volume_id"):
        point = _restorable_point(ctx, job)
        found = ec2api.volumes_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"])
        if found:
            data["volume_id"] = _adopt_volume(client, job, found)
        else:
            kwargs = _volume_request(job, point)
            if _from_image(job):
                source = pick_volume(point, dict(job["metadata"] or {}))
                snapshots = _write_disks(ctx, job, point, [source])
                if snapshots is None:
                    return ctx.poll_later()  # a snapshot an earlier attempt sealed is still completing
                kwargs["SnapshotId"] = snapshots[source["VolumeId"]]
                data = dict(job["step_data"])
            data["create_requested"] = True
            _save(ctx, job, status=RestoreJobStatus.RUNNING.value, step="create", step_data=data,
                  percent_done=_launch_percent(job))
            ctx.check_lease()
            with ec2api.aws_errors("CreateVolume"):
                data["volume_id"] = str(client.create_volume(**kwargs)["VolumeId"])
        data["created_at"] = _now_text(ctx)
        _save(ctx, job, status=RestoreJobStatus.RUNNING.value, step="wait", step_data=data,
              percent_done=_wait_percent(job))
        return ctx.poll_later()
    volume_id = str(data["volume_id"])
    try:
        volume = ec2api.describe_volumes(client, [volume_id]).get(volume_id)
    except ResourceNotFound:
        volume = None
    if volume is None:
        if _within_grace(ctx, data):
            return ctx.poll_later()
        raise RestoreFailed(f"The restored volume {volume_id} cannot be found")
    state = str(volume["State"])
    if state == "creating":
        return ctx.poll_later()
    if state in ("available", "in-use"):
        return _complete(ctx, job, volume_arn(_target_region(job), job["account_id"], volume_id))
    raise RestoreFailed(f"The restored volume {volume_id} is in state {state} instead of available")


def _adopt_volume(client: Any, job: Job, found: list[dict[str, Any]]) -> str:
    """The volume an earlier attempt created (found by tag); any extra one is deleted."""
    found = sorted(found, key=lambda v: (str(v.get("CreateTime", "")), v["VolumeId"]))
    for extra in found[1:]:
        log.warning("restore job %s: deleting extra volume %s", job["restore_job_id"], extra["VolumeId"])
        try:
            _delete_volume(client, extra["VolumeId"])
        except SnapkeepError as exc:
            log.warning("restore job %s: %s", job["restore_job_id"], exc.message)
    return str(found[0]["VolumeId"])


def _volume_request(job: Job, point: dict[str, Any]) -> dict[str, Any]:
    """CreateVolume's arguments: the chosen snapshot of the point, the metadata over the backed-up volume."""
    meta: dict[str, Any] = dict(job["metadata"] or {})
    source = pick_volume(point, meta)
    tags = dict(source.get("Tags") or {}) if job["copy_source_tags"] else {}
    tags = {k: v for k, v in tags.items() if not k.startswith("aws:")}
    tags[ec2api.TAG_RESTORE_JOB] = job["restore_job_id"]
    tags[ec2api.TAG_RECOVERY_POINT] = point["recovery_point_arn"]
    zone = meta.get("availabilityZone") or meta.get("AvailabilityZone")
    if not zone:
        raise InvalidParameterValue("Metadata.availabilityZone is required to restore a volume",
                                    field="Metadata.availabilityZone")
    volume_type = str(meta.get("volumeType") or source.get("VolumeType") or "gp3")
    kwargs: dict[str, Any] = {
        "SnapshotId": source["SnapshotId"],
        "AvailabilityZone": zone,
        "VolumeType": volume_type,
        "ClientToken": job["restore_job_id"],
        "TagSpecifications": [{"ResourceType": "volume", "Tags": ec2api.tag_list(tags)}],
    }
    if meta.get("volumeSize"):
        kwargs["Size"] = int(meta["volumeSize"])
    same_type = volume_type == source.get("VolumeType")
    if meta.get("iops"):
        kwargs["Iops"] = int(meta["iops"])
    elif volume_type in ("io1", "io2") and same_type and source.get("Iops"):
        kwargs["Iops"] = int(source["Iops"])  # required for io1/io2: keep the backed-up value
    if meta.get("throughput"):
        kwargs["Throughput"] = int(meta["throughput"])
    if meta.get("kmsKeyId"):
        kwargs["Encrypted"] = True
        kwargs["KmsKeyId"] = meta["kmsKeyId"]
    elif _flag(meta, "encrypted"):
        kwargs["Encrypted"] = True
    return kwargs


def check_volume_request(source: dict[str, Any], meta: dict[str, Any]) -> None:
    """What CreateVolume would refuse, refused before a job is recorded: a size below the snapshot's, iops or
    throughput the resulting volume type does not take, an io1/io2 volume without iops."""
    size = source.get("VolumeSize")
    if meta.get("volumeSize") and size and int(meta["volumeSize"]) < int(size):
        raise InvalidParameterValue(
            f"Metadata.volumeSize: {meta['volumeSize']} GiB is smaller than the backed-up volume ({size} GiB); "
            f"give at least {size}", field="Metadata.volumeSize")
    volume_type = str(meta.get("volumeType") or source.get("VolumeType") or "gp3")
    if meta.get("iops") and volume_type not in IOPS_VOLUME_TYPES:
        raise InvalidParameterValue(
            f"Metadata.iops: can only be set for volume types {', '.join(IOPS_VOLUME_TYPES)}, not {volume_type}",
            field="Metadata.iops")
    if meta.get("throughput") and volume_type not in THROUGHPUT_VOLUME_TYPES:
        raise InvalidParameterValue(f"Metadata.throughput: can only be set for volume type gp3, not {volume_type}",
                                    field="Metadata.throughput")
    if volume_type in ("io1", "io2") and not meta.get("iops") and not (
            volume_type == source.get("VolumeType") and source.get("Iops")):
        raise MissingParameterValue(f"Metadata.iops is required for volume type {volume_type}",
                                    field="Metadata.iops")


def pick_volume(point: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Which volume of the recovery point to restore: by device name or source volume id; the only one else."""
    wanted = meta.get("DeviceName") or meta.get("volumeId") or meta.get("deviceName") or meta.get("VolumeId")
    volumes: list[dict[str, Any]] = point["volumes"]
    if wanted is None:
        if len(volumes) == 1:
            return volumes[0]
        raise InvalidParameterValue(
            "Metadata.DeviceName is required: the recovery point holds volumes "
            + ", ".join(f"{v['DeviceName']} ({v['VolumeId']})" for v in volumes),
            field="Metadata.DeviceName",
        )
    for vol in volumes:
        if wanted in (vol["DeviceName"], vol["VolumeId"], vol["SnapshotId"]):
            return vol
    raise InvalidParameterValue(f"Metadata.DeviceName: the recovery point has no volume '{wanted}'",
                                field="Metadata.DeviceName")


# -- from an image backup ------------------------------------------------------------------------------------

def _launch_percent(job: Job) -> float:
    return WRITE_PERCENT[1] if _from_image(job) else 10.0


def _wait_percent(job: Job) -> float:
    return 80.0 if _from_image(job) else 50.0


def _client_token(job: Job, volume_id: str, generation: int) -> str:
    """The same StartSnapshot request after a crash (so it continues the same snapshot); a new one only when an
    earlier snapshot of this volume had to be abandoned."""
    return hashlib.sha256(f"{job['restore_job_id']}/{volume_id}/{generation}".encode()).hexdigest()[:64]


def _write_disks(ctx: EngineContext, job: Job, point: dict[str, Any],
                 volumes: list[dict[str, Any]]) -> dict[str, str] | None:
    """Each volume's disk of the point's image backup written into a new snapshot in the target region:
    {source VolumeId: SnapshotId}, or None while a snapshot an earlier attempt sealed is still completing.

    Every snapshot id is recorded as soon as StartSnapshot returns it; a snapshot is recorded as written only once
    CompleteSnapshot has sealed it and EC2 reports it completed."""
    backup: dict[str, Any] = point["image_backup"]
    disks: dict[str, Any] = backup.get("Disks") or {}
    missing = [v["VolumeId"] for v in volumes if v["VolumeId"] not in disks]
    if missing:
        raise RestoreFailed(f"The image backup {backup['ImageId']} of {point['recovery_point_arn']} holds no disk "
                            f"of volume {', '.join(missing)}")
    client = _client(ctx, job)
    data = dict(job["step_data"])
    done: dict[str, str] = dict(data.get("restored_snapshots") or {})
    writing: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (data.get("writing") or {}).items()}
    for volume_id, record in sorted(writing.items()):  # what an earlier attempt left: adopt, wait, or abandon
        if volume_id in done or not record.get("SnapshotId"):
            continue  # written already, or to be started afresh (a new generation)
        state = _snapshot_state(client, str(record["SnapshotId"]))
        if state == "completed":
            done[volume_id] = str(record["SnapshotId"])
            writing.pop(volume_id)
        elif state == "pending" and record.get("sealing"):
            if "ChangedBlocksCount" in record and not record.get("sealed"):
                _seal_again(ctx, job, volume_id, record)
            return None
        elif state != "pending":  # error or gone: start over with a new snapshot
            with contextlib.suppress(ResourceNotFound):
                ec2api.delete_snapshot(client, str(record["SnapshotId"]))
            writing[volume_id] = {"Generation": int(record.get("Generation", 0)) + 1}
    todo = [v for v in volumes if v["VolumeId"] not in done]
    _save(ctx, job, status=RestoreJobStatus.RUNNING.value, step="write",
          percent_done=max(float(job["percent_done"] or 0.0), WRITE_PERCENT[0]),
          step_data=dict(data, write_started=True, restored_snapshots=done, writing=writing))
    if not todo:
        return {v["VolumeId"]: done[v["VolumeId"]] for v in volumes}
    try:
        repo = open_repository(ctx, image_backup_repository(backup))
    except TransientAwsError:
        raise
    except SnapkeepError as exc:
        raise RestoreFailed(f"Cannot open the image repository {backup['RepositoryUrl']}: {exc.message}") from exc
    sizes = {v["VolumeId"]: int(disks[v["VolumeId"]]["Size"]) for v in volumes}
    total = max(1, sum(sizes.values()))
    for vol in todo:
        finished = sum(sizes[k] for k in sizes if k in done)
        done[vol["VolumeId"]] = _write_disk(ctx, job, point, repo, vol, sizes[vol["VolumeId"]],
                                            (finished / total, sizes[vol["VolumeId"]] / total))
    return {v["VolumeId"]: done[v["VolumeId"]] for v in volumes}


def _seal_again(ctx: EngineContext, job: Job, volume_id: str, record: dict[str, Any]) -> None:
    """Send the CompleteSnapshot an earlier attempt recorded and may have died before sending (every block was
    written by then). EBS refuses it when that attempt did send it: either way the snapshot is sealed, and EC2's
    state says when it is completed (or that it failed, and the disk is written again)."""
    ebs = ctx.sessions.client("ebs", _target_region(job), ctx.role_for(job["account_id"]))
    try:
        complete_snapshot(ebs, str(record["SnapshotId"]), int(record["ChangedBlocksCount"]),
                          record.get("Checksum"))
    except TransientAwsError:
        raise
    except SnapkeepError as exc:
        log.info("restore job %s: %s was sealed already (%s)", job["restore_job_id"], record["SnapshotId"],
                 exc.message)
    data = dict(job["step_data"])
    writing = dict(data.get("writing") or {})
    writing[volume_id] = dict(record, sealed=True)
    _save(ctx, job, step_data=dict(data, writing=writing))


def _snapshot_state(client: Any, snapshot_id: str) -> str:
    try:
        found = ec2api.describe_snapshots(client, [snapshot_id])
    except ResourceNotFound:
        return "missing"
    return str(found[0]["State"]) if found else "missing"


def _write_disk(ctx: EngineContext, job: Job, point: dict[str, Any], repo: Any, vol: dict[str, Any], size: int,
                share: tuple[float, float]) -> str:
    """One disk into one new snapshot (StartSnapshot, PutSnapshotBlock per block holding data, CompleteSnapshot).

    Encrypted like the source volume: with its own KMS key in its region, with the target region's default EBS key
    in another (a KMS key belongs to its region)."""
    backup: dict[str, Any] = point["image_backup"]
    volume_id = str(vol["VolumeId"])
    region = _target_region(job)
    writing = dict(job["step_data"].get("writing") or {})
    generation = int((writing.get(volume_id) or {}).get("Generation", 0))
    encrypted: bool | None = None
    kms_key: str | None = None
    if vol.get("Encrypted"):
        encrypted = True
        if region == point["region"] and vol.get("KmsKeyId"):
            kms_key = str(vol["KmsKeyId"])
    ctx.check_lease()
    sink = EbsBlockSink(ctx.sessions, region, size, role_arn=ctx.role_for(job["account_id"]),
                        client_token=_client_token(job, volume_id, generation), encrypted=encrypted,
                        kms_key_arn=kms_key, tags={ec2api.TAG_RESTORE_JOB: job["restore_job_id"]},
                        description=f"Snapkeep restore job {job['restore_job_id']}: {volume_id}")
    try:
        record = {"SnapshotId": sink.snapshot_id, "Generation": generation}
        _save(ctx, job, step_data=dict(job["step_data"], writing=dict(writing, **{volume_id: record})))
        def save_percent(percent: float) -> None:
            _save(ctx, job, percent_done=percent)
            ctx.check_lease()

        progress = progress_saver(save_percent, *WRITE_PERCENT, start=share[0], span=share[1])

        try:
            repo.restore(str(backup["ImageId"]), sink, disk=volume_id, progress=progress,
                         lock_wait=timedelta(minutes=5))
            sink.flush()
        except TransientAwsError:
            raise
        except SnapkeepError as exc:
            raise RestoreFailed(f"Restoring volume {volume_id} from the image backup {backup['ImageId']} in "
                                f"{backup['RepositoryUrl']} failed: {exc.message}") from exc
        # Sealed from here on, recorded before CompleteSnapshot is sent: a retry must not write to this snapshot
        # again (EBS refuses blocks once it is sealed) but send the same CompleteSnapshot, in case this process
        # dies before it does. (A crash before this save leaves the snapshot open to the retry's writes, which
        # redo every block through the same StartSnapshot.)
        count, checksum = sink.aggregate_checksum()
        record.update(sealing=True, ChangedBlocksCount=count, Checksum=checksum)
        _save(ctx, job, step_data=dict(job["step_data"], writing=dict(writing, **{volume_id: record})))
        snapshot_id = sink.complete(wait=False)
        sink.wait_completed()
    finally:
        sink.close()
    data = dict(job["step_data"])
    written = dict(data.get("writing") or {})
    written.pop(volume_id, None)
    _save(ctx, job, step_data=dict(data, writing=written,
                                   restored_snapshots=dict(data.get("restored_snapshots") or {},
                                                           **{volume_id: snapshot_id})))
    return snapshot_id


def _image_backed_point(ctx: EngineContext, job: Job, point: dict[str, Any],
                        snapshots: dict[str, str]) -> dict[str, Any]:
    """The point as if its AMI and snapshots were the temporary ones in the target region: a temporary AMI over
    the new snapshots (adopted by tag after a crash), and in another region without the settings that name the
    point's region's resources (subnet, security groups, key pair) unless the metadata gives them."""
    client = _client(ctx, job)
    data = dict(job["step_data"])
    image_id = data.get("temporary_image_id")
    if not image_id:
        found = sorted(ec2api.images_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"]),
                       key=lambda i: (str(i.get("CreationDate", "")), i["ImageId"]))
        for extra in found[1:]:
            ec2api.deregister_image(client, extra["ImageId"])
        if found:
            image_id = str(found[0]["ImageId"])
        else:
            data["image_requested"] = True
            _save(ctx, job, step="launch", step_data=data)
            ctx.check_lease()
            by_device = {v["DeviceName"]: snapshots[v["VolumeId"]] for v in point["volumes"]}
            image_id = ec2api.register_image(client, f"snapkeep-restore-{job['restore_job_id']}",
                                             point["instance"] or {}, by_device,
                                             {ec2api.TAG_RESTORE_JOB: job["restore_job_id"]})
        _save(ctx, job, step_data=dict(job["step_data"], temporary_image_id=image_id))
    config = dict(point["instance"] or {})
    if _target_region(job) != point["region"]:
        for key in REGION_BOUND_CONFIG:
            config.pop(key, None)
    volumes = [dict(v, SnapshotId=snapshots[v["VolumeId"]]) for v in point["volumes"]]
    return dict(point, image_id=image_id, instance=config, volumes=volumes)


def _remove_temporaries(ctx: EngineContext, job: Job) -> dict[str, str]:
    """Deregister the temporary AMI and delete the snapshots a restore from an image backup made (by tag, and the
    ids it recorded); what could not be removed, why. Transient failures are raised, to be retried."""
    if not _from_image(job):
        return {}
    client = _client(ctx, job)
    data = job["step_data"]
    job_id = job["restore_job_id"]
    left: dict[str, str] = {}
    images = {str(i["ImageId"]) for i in ec2api.images_tagged(client, ec2api.TAG_RESTORE_JOB, job_id)}
    if data.get("temporary_image_id"):
        images.add(str(data["temporary_image_id"]))
    _remove_each(sorted(images), lambda image_id: ec2api.deregister_image(client, image_id), left)
    snapshots = {str(s["SnapshotId"]) for s in ec2api.snapshots_tagged(client, ec2api.TAG_RESTORE_JOB, job_id)}
    snapshots.update(str(v) for v in (data.get("restored_snapshots") or {}).values())
    snapshots.update(str(w["SnapshotId"]) for w in (data.get("writing") or {}).values() if w.get("SnapshotId"))
    _remove_each(sorted(snapshots), lambda snapshot_id: ec2api.delete_snapshot(client, snapshot_id), left)
    return left


def _remove_each(ids: list[str], remove: Callable[[str], None], left: dict[str, str]) -> None:
    """Remove each; what could not be is noted in `left` with why (a transient failure retries the whole step)."""
    for resource_id in ids:
        try:
            remove(resource_id)
        except TransientAwsError:
            raise
        except SnapkeepError as exc:
            left[resource_id] = exc.message


# -- failure and cleanup --------------------------------------------------------------------------------------

def _fail(ctx: EngineContext, job: Job, message: str) -> Outcome:
    """End the job FAILED; first remove what it may have made (anything tagged with its id)."""
    data = job["step_data"]
    made = data.get("launch_requested") or data.get("create_requested") or data.get("instance_id") \
        or data.get("volume_id") or data.get("write_started") or data.get("image_requested")
    if not made:
        return _finish(ctx, job, message)
    _save(ctx, job, step="cleanup", step_data=dict(data, final_message=message, cleanup_attempts=0))
    return _step_cleanup(ctx, job)


def _step_cleanup(ctx: EngineContext, job: Job) -> Outcome:
    """Terminate the instances and delete the volumes tagged with the job id; retried once, then reported."""
    data = dict(job["step_data"])
    attempt = int(data.get("cleanup_attempts", 0)) + 1
    data["cleanup_attempts"] = attempt
    _save(ctx, job, step_data=data)  # counted first: a cleanup that crashes the worker is still bounded
    message = str(data.get("final_message") or "Restore job failed")
    try:
        left = _remove_created(ctx, job)
    except (StaleJob, LeaseLost, OperationalError):
        raise
    except Exception as exc:  # cleanup must end, whatever goes wrong
        log.warning("restore job %s: cleanup attempt %d failed: %s", job["restore_job_id"], attempt, exc)
        left = {"(unknown)": exc.message if isinstance(exc, SnapkeepError) else f"{type(exc).__name__}: {exc}"}
    if not left:
        return _finish(ctx, job, message)
    if attempt < MAX_CLEANUP_ATTEMPTS:  # give terminating instances time to let go of their volumes
        return RetryAt(ctx.clock() + timedelta(seconds=max(1.0, ctx.settings.poll_seconds * CLEANUP_RETRY_POLLS)))
    recorded = [str(data[k]) for k in ("instance_id", "volume_id") if data.get(k)]
    names = [n for n in left if n != "(unknown)"] or recorded or list(left)
    reasons = "; ".join(f"{name}: {why}" for name, why in left.items())
    return _finish(ctx, job, f"{message}. Cleanup incomplete, left behind: {', '.join(names)} ({reasons})")


def _remove_created(ctx: EngineContext, job: Job) -> dict[str, str]:
    """Remove every instance, volume, temporary AMI and snapshot this job made (by tag, and the ids it recorded);
    what could not be, why."""
    client = _client(ctx, job)
    data = job["step_data"]
    left: dict[str, str] = {}
    instance_ids = {i["InstanceId"] for i in ec2api.instances_tagged(client, ec2api.TAG_RESTORE_JOB,
                                                                      job["restore_job_id"])}
    if data.get("instance_id"):
        instance_ids.add(str(data["instance_id"]))  # even if EC2 does not list it (yet): terminate by id
    for instance_id in sorted(instance_ids):
        try:
            _terminate(client, instance_id)
        except SnapkeepError as exc:
            left[instance_id] = exc.message
    volumes = {v["VolumeId"]: v for v in ec2api.volumes_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"])}
    if data.get("volume_id") and data["volume_id"] not in volumes:
        with contextlib.suppress(ResourceNotFound):
            volumes.update(ec2api.describe_volumes(client, [str(data["volume_id"])]))
    for volume_id, volume in sorted(volumes.items()):
        attachments = volume.get("Attachments") or []
        if volume.get("State") in ("deleting", "deleted"):
            continue
        if volume.get("State") == "in-use" and all(a.get("InstanceId") in instance_ids for a in attachments):
            if all(a.get("DeleteOnTermination") for a in attachments):
                continue  # goes with its instance, which is terminating
            owners = ", ".join(sorted(str(a.get("InstanceId")) for a in attachments))
            left[volume_id] = f"still attached to {owners}, which is shutting down"
            continue
        try:
            _delete_volume(client, volume_id)
        except SnapkeepError as exc:
            left[volume_id] = exc.message
    left.update(_remove_temporaries(ctx, job))
    return left


def _terminate(client: Any, instance_id: str) -> None:
    """Terminate an instance together with all its volumes, termination protection or not."""
    inst = _instance_any_state(client, instance_id)
    if inst is not None and inst["State"]["Name"] in ("shutting-down", "terminated"):
        return  # already on its way out
    devices = [b["DeviceName"] for b in (inst or {}).get("BlockDeviceMappings") or [] if b.get("Ebs")]
    if devices:
        ec2api.call("ModifyInstanceAttribute", client.modify_instance_attribute, InstanceId=instance_id,
                    BlockDeviceMappings=[{"DeviceName": d, "Ebs": {"DeleteOnTermination": True}} for d in devices])
    try:
        ec2api.call("ModifyInstanceAttribute", client.modify_instance_attribute, InstanceId=instance_id,
                    DisableApiTermination={"Value": False})
        ec2api.call("TerminateInstances", client.terminate_instances, InstanceIds=[instance_id])
    except ResourceNotFound:
        return  # never made, or already gone


def _delete_volume(client: Any, volume_id: str) -> None:
    try:
        ec2api.call("DeleteVolume", client.delete_volume, VolumeId=volume_id)
    except ResourceNotFound:
        return


def _finish(ctx: EngineContext, job: Job, message: str) -> Outcome:
    _save(ctx, job, status=RestoreJobStatus.FAILED.value, status_message=message, step="done",
          completion_date=ctx.clock())
    return Done()
