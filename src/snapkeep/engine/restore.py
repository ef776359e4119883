"""Restore jobs, as resumable steps: a whole EC2 instance, or a single EBS volume, always as a new resource.

launch/create → wait. Everything created is tagged with the restore job id before Snapkeep waits on it, so a
restarted job adopts what it made instead of making it twice.
"""

from __future__ import annotations

import json
from typing import Any

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import instance_arn, volume_arn
from snapkeep.domain.errors import InvalidParameterValue, SnapkeepError
from snapkeep.domain.jobs import RestoreJobStatus
from snapkeep.engine.context import Done, EngineContext, Outcome


def run_restore_job(ctx: EngineContext, job_id: str) -> Outcome:
    with ctx.store.transaction() as conn:
        job = ctx.store.get_restore_job(conn, job_id)
        point = ctx.store.get_recovery_point(conn, job["recovery_point_arn"])
    if RestoreJobStatus(job["status"]).is_final:
        return Done()
    try:
        if job["resource_type"] == "EBS":
            return _restore_volume(ctx, job, point)
        return _restore_instance(ctx, job, point)
    except SnapkeepError as exc:
        _save(
            ctx,
            job_id,
            status=RestoreJobStatus.FAILED.value,
            status_message=exc.message,
            step="done",
            completion_date=ctx.clock(),
        )
        return Done()


def _save(ctx: EngineContext, job_id: str, **values: Any) -> None:
    with ctx.store.transaction() as conn:
        ctx.store.update_restore_job(conn, job_id, values)


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
        except ValueError as exc:
            raise InvalidParameterValue(f"Metadata.{field}: not a JSON list: {text}", field=field) from exc
        return [str(v) for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


def _restore_instance(ctx: EngineContext, job: dict[str, Any], point: dict[str, Any]) -> Outcome:
    meta: dict[str, Any] = job["metadata"]
    config = point["instance"] or {}
    client = ctx.ec2(job["account_id"], job["region"])
    data = dict(job["step_data"])
    if not data.get("instance_id"):
        found = ec2api.instances_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"])
        if found:
            data["instance_id"] = found[0]["InstanceId"]
        else:
            _save(ctx, job["restore_job_id"], status=RestoreJobStatus.RUNNING.value, percent_done=10.0)
            data["instance_id"] = _launch(client, job, point, meta, config)
        _save(ctx, job["restore_job_id"], step="wait", step_data=data, percent_done=50.0)
    inst = ec2api.describe_instance(client, data["instance_id"])
    if inst["State"]["Name"] != "running":
        return ctx.poll_later()
    _save(
        ctx,
        job["restore_job_id"],
        status=RestoreJobStatus.COMPLETED.value,
        step="done",
        percent_done=100.0,
        created_resource_arn=instance_arn(job["region"], job["account_id"], data["instance_id"]),
        completion_date=ctx.clock(),
    )
    return Done()


def _launch(
    client: Any, job: dict[str, Any], point: dict[str, Any], meta: dict[str, Any], config: dict[str, Any]
) -> str:
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
        "InstanceType": meta.get("InstanceType") or config.get("InstanceType"),
        "BlockDeviceMappings": mappings,
        "ClientToken": job["restore_job_id"],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": ec2api.tag_list(tags)},
            {"ResourceType": "volume", "Tags": ec2api.tag_list({ec2api.TAG_RESTORE_JOB: job["restore_job_id"]})},
        ],
    }
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
    if profile and profile != "UseBackedUpValue":
        kwargs["IamInstanceProfile"] = {"Name": profile}
    elif config.get("IamInstanceProfileArn") and profile == "UseBackedUpValue":
        kwargs["IamInstanceProfile"] = {"Arn": config["IamInstanceProfileArn"]}
    with ec2api.aws_errors("RunInstances"):
        answer = client.run_instances(**kwargs)
    return str(answer["Instances"][0]["InstanceId"])


def _restore_volume(ctx: EngineContext, job: dict[str, Any], point: dict[str, Any]) -> Outcome:
    meta: dict[str, Any] = job["metadata"]
    client = ctx.ec2(job["account_id"], job["region"])
    data = dict(job["step_data"])
    if not data.get("volume_id"):
        found = ec2api.volumes_tagged(client, ec2api.TAG_RESTORE_JOB, job["restore_job_id"])
        if found:
            data["volume_id"] = found[0]["VolumeId"]
        else:
            source = pick_volume(point, meta)
            tags = dict(source.get("Tags") or {}) if job["copy_source_tags"] else {}
            tags = {k: v for k, v in tags.items() if not k.startswith("aws:")}
            tags[ec2api.TAG_RESTORE_JOB] = job["restore_job_id"]
            tags[ec2api.TAG_RECOVERY_POINT] = point["recovery_point_arn"]
            kwargs: dict[str, Any] = {
                "SnapshotId": source["SnapshotId"],
                "AvailabilityZone": meta.get("availabilityZone") or meta.get("AvailabilityZone"),
                "VolumeType": meta.get("volumeType") or source.get("VolumeType") or "gp3",
                "TagSpecifications": [{"ResourceType": "volume", "Tags": ec2api.tag_list(tags)}],
            }
            if not kwargs["AvailabilityZone"]:
                raise InvalidParameterValue(
                    "Metadata.availabilityZone is required to restore a volume", field="availabilityZone"
                )
            if meta.get("volumeSize"):
                kwargs["Size"] = int(meta["volumeSize"])
            if meta.get("kmsKeyId"):
                kwargs["Encrypted"] = True
                kwargs["KmsKeyId"] = meta["kmsKeyId"]
            with ec2api.aws_errors("CreateVolume"):
                data["volume_id"] = client.create_volume(**kwargs)["VolumeId"]
        _save(
            ctx,
            job["restore_job_id"],
            status=RestoreJobStatus.RUNNING.value,
            step="wait",
            step_data=data,
            percent_done=50.0,
        )
    volume = ec2api.describe_volumes(client, [data["volume_id"]])[data["volume_id"]]
    if volume["State"] == "creating":
        return ctx.poll_later()
    if volume["State"] == "error":
        raise SnapkeepError(f"volume {data['volume_id']} failed to create")
    _save(
        ctx,
        job["restore_job_id"],
        status=RestoreJobStatus.COMPLETED.value,
        step="done",
        percent_done=100.0,
        created_resource_arn=volume_arn(job["region"], job["account_id"], data["volume_id"]),
        completion_date=ctx.clock(),
    )
    return Done()


def pick_volume(point: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Which volume of the recovery point to restore: by device name or source volume id; the only one else."""
    wanted = meta.get("DeviceName") or meta.get("deviceName") or meta.get("volumeId") or meta.get("VolumeId")
    volumes: list[dict[str, Any]] = point["volumes"]
    if wanted is None:
        if len(volumes) == 1:
            return volumes[0]
        raise InvalidParameterValue(
            "Metadata.DeviceName is required: the recovery point holds volumes "
            + ", ".join(f"{v['DeviceName']} ({v['VolumeId']})" for v in volumes),
            field="DeviceName",
        )
    for vol in volumes:
        if wanted in (vol["DeviceName"], vol["VolumeId"], vol["SnapshotId"]):
            return vol
    raise InvalidParameterValue(f"Metadata.DeviceName: the recovery point has no volume '{wanted}'", field="DeviceName")
