"""EC2 and EBS calls the engine needs, with AWS errors turned into Snapkeep's errors.

Everything Snapkeep creates carries the tags below, so a restarted job finds its own snapshots, images,
instances and volumes, and the catalog can be rebuilt from AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from snapkeep.aws.errors import TransientAwsError as TransientAwsError
from snapkeep.aws.errors import aws_errors as aws_errors
from snapkeep.domain.errors import ResourceNotFound

TAG_BACKUP_JOB = "snapkeep:backup-job-id"
TAG_RESTORE_JOB = "snapkeep:restore-job-id"
TAG_RECOVERY_POINT = "snapkeep:recovery-point"
TAG_SOURCE_RESOURCE = "snapkeep:source-resource"

T = TypeVar("T")


def call(action: str, fn: Callable[..., T], **kwargs: Any) -> T:
    with aws_errors(action):
        return fn(**kwargs)


@dataclass(frozen=True)
class Ec2Instance:
    instance_id: str
    account_id: str
    region: str
    state: str
    tags: dict[str, str]
    raw: dict[str, Any]

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def list_instances(ec2: Any, account_id: str, region: str) -> list[Ec2Instance]:
    """Every instance that is not terminated, as the live inventory selections are evaluated against."""
    found: list[Ec2Instance] = []
    with aws_errors("DescribeInstances"):
        for page in ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    state = inst["State"]["Name"]
                    if state in ("terminated", "shutting-down"):
                        continue
                    found.append(
                        Ec2Instance(inst["InstanceId"], account_id, region, state, tag_dict(inst.get("Tags")), inst)
                    )
    return found


def describe_instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    with aws_errors("DescribeInstances"):
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    for reservation in reservations:
        for inst in reservation["Instances"]:
            if inst["State"]["Name"] == "terminated":
                raise ResourceNotFound(f"instance {instance_id} is terminated")
            return dict(inst)
    raise ResourceNotFound(f"instance {instance_id} not found")


def instance_configuration(inst: dict[str, Any], volumes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a recovery point keeps of an instance to launch it again (AWS Backup's EC2 restore metadata)."""
    mappings = []
    for bdm in inst.get("BlockDeviceMappings", []):
        ebs = bdm.get("Ebs") or {}
        vol = volumes.get(ebs.get("VolumeId", ""), {})
        mappings.append(
            {
                "DeviceName": bdm["DeviceName"],
                "VolumeId": ebs.get("VolumeId"),
                "DeleteOnTermination": bool(ebs.get("DeleteOnTermination", True)),
                "VolumeSize": vol.get("Size"),
                "VolumeType": vol.get("VolumeType"),
                "Iops": vol.get("Iops"),
                "Throughput": vol.get("Throughput"),
                "Encrypted": bool(vol.get("Encrypted", False)),
                "KmsKeyId": vol.get("KmsKeyId"),
                "Tags": tag_dict(vol.get("Tags")),
            }
        )
    profile = inst.get("IamInstanceProfile") or {}
    return {
        "InstanceId": inst["InstanceId"],
        "ImageId": inst.get("ImageId"),
        "InstanceType": inst.get("InstanceType"),
        "KeyName": inst.get("KeyName"),
        "SubnetId": inst.get("SubnetId"),
        "VpcId": inst.get("VpcId"),
        "AvailabilityZone": (inst.get("Placement") or {}).get("AvailabilityZone"),
        "Tenancy": (inst.get("Placement") or {}).get("Tenancy"),
        "SecurityGroupIds": [g["GroupId"] for g in inst.get("SecurityGroups", [])],
        "IamInstanceProfileArn": profile.get("Arn"),
        "EbsOptimized": bool(inst.get("EbsOptimized", False)),
        "RootDeviceName": inst.get("RootDeviceName"),
        "Architecture": inst.get("Architecture"),
        "Tags": tag_dict(inst.get("Tags")),
        "BlockDeviceMappings": mappings,
    }


def describe_volumes(ec2: Any, volume_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not volume_ids:
        return {}
    with aws_errors("DescribeVolumes"):
        vols = ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]
    return {v["VolumeId"]: dict(v) for v in vols}


def create_instance_snapshots(
    ec2: Any, instance_id: str, tags: dict[str, str], description: str
) -> list[dict[str, Any]]:
    """One crash-consistent set: every EBS volume of the instance at the same instant."""
    with aws_errors("CreateSnapshots"):
        answer = ec2.create_snapshots(
            InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": False},
            Description=description,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            CopyTagsFromSource="volume",
        )
    return list(answer["Snapshots"])


def snapshots_tagged(ec2: Any, key: str, value: str) -> list[dict[str, Any]]:
    with aws_errors("DescribeSnapshots"):
        pages = ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{key}", "Values": [value]}]
        )
        return [s for page in pages for s in page["Snapshots"]]


def describe_snapshots(ec2: Any, snapshot_ids: list[str]) -> list[dict[str, Any]]:
    with aws_errors("DescribeSnapshots"):
        return list(ec2.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"])


def delete_snapshot(ec2: Any, snapshot_id: str) -> None:
    """Delete a snapshot; one already gone is fine (deletion is retried after crashes)."""
    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidSnapshot.NotFound":
            with aws_errors("DeleteSnapshot"):
                raise


def images_tagged(ec2: Any, key: str, value: str) -> list[dict[str, Any]]:
    with aws_errors("DescribeImages"):
        return list(ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{key}", "Values": [value]}])["Images"])


def image_named(ec2: Any, name: str) -> str:
    with aws_errors("DescribeImages"):
        images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    if not images:
        raise ResourceNotFound(f"no image named {name}")
    return str(images[0]["ImageId"])


def register_image(ec2: Any, name: str, config: dict[str, Any], snapshots: dict[str, str], tags: dict[str, str]) -> str:
    """An AMI over the recovery point's snapshots: EC2 recovery points are images, as in AWS Backup."""
    mappings = []
    for bdm in config["BlockDeviceMappings"]:
        ebs: dict[str, Any] = {
            "SnapshotId": snapshots[bdm["DeviceName"]],
            "DeleteOnTermination": bdm["DeleteOnTermination"],
        }
        if bdm.get("VolumeType"):
            ebs["VolumeType"] = bdm["VolumeType"]
        if bdm.get("VolumeSize"):
            ebs["VolumeSize"] = bdm["VolumeSize"]
        mappings.append({"DeviceName": bdm["DeviceName"], "Ebs": ebs})
    kwargs: dict[str, Any] = {
        "Name": name,
        "Description": f"Snapkeep recovery point of {config['InstanceId']}",
        "BlockDeviceMappings": mappings,
        "RootDeviceName": config.get("RootDeviceName") or mappings[0]["DeviceName"],
        "VirtualizationType": "hvm",
        "TagSpecifications": [{"ResourceType": "image", "Tags": tag_list(tags)}],
    }
    if config.get("Architecture"):
        kwargs["Architecture"] = config["Architecture"]
    with aws_errors("RegisterImage"):
        return str(ec2.register_image(**kwargs)["ImageId"])


def deregister_image(ec2: Any, image_id: str) -> None:
    try:
        ec2.deregister_image(ImageId=image_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            with aws_errors("DeregisterImage"):
                raise


def instances_tagged(ec2: Any, key: str, value: str) -> list[dict[str, Any]]:
    with aws_errors("DescribeInstances"):
        reservations = ec2.describe_instances(Filters=[{"Name": f"tag:{key}", "Values": [value]}])
    return [i for r in reservations["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def volumes_tagged(ec2: Any, key: str, value: str) -> list[dict[str, Any]]:
    with aws_errors("DescribeVolumes"):
        return list(ec2.describe_volumes(Filters=[{"Name": f"tag:{key}", "Values": [value]}])["Volumes"])


BACKED_UP_VOLUME_STATES = ("available", "in-use")
"""Volumes AWS Backup protects: not those still being created, being deleted or in error."""


def list_volumes(ec2: Any) -> list[dict[str, Any]]:
    """Every volume that can be backed up, as the live inventory selections are evaluated against."""
    with aws_errors("DescribeVolumes"):
        pages = ec2.get_paginator("describe_volumes").paginate()
        return [dict(v) for page in pages for v in page["Volumes"] if v.get("State") in BACKED_UP_VOLUME_STATES]


def describe_volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    volume = describe_volumes(ec2, [volume_id]).get(volume_id)
    if volume is None or volume.get("State") in ("deleting", "deleted"):
        raise ResourceNotFound(f"volume {volume_id} not found")
    return volume


def volume_configuration(vol: dict[str, Any]) -> dict[str, Any]:
    """What a recovery point keeps of a volume to create it again (AWS Backup's EBS restore metadata)."""
    attachments = [
        {"InstanceId": a.get("InstanceId"), "Device": a.get("Device"),
         "DeleteOnTermination": bool(a.get("DeleteOnTermination", False))}
        for a in vol.get("Attachments") or []
    ]
    return {
        "VolumeId": vol["VolumeId"],
        "VolumeSize": vol.get("Size"),
        "VolumeType": vol.get("VolumeType"),
        "Iops": vol.get("Iops"),
        "Throughput": vol.get("Throughput"),
        "AvailabilityZone": vol.get("AvailabilityZone"),
        "Encrypted": bool(vol.get("Encrypted", False)),
        "KmsKeyId": vol.get("KmsKeyId"),
        "Tags": tag_dict(vol.get("Tags")),
        "Attachments": attachments,
    }


def create_volume_snapshot(ec2: Any, volume_id: str, tags: dict[str, str], description: str) -> dict[str, Any]:
    """One snapshot of one volume (an EBS recovery point), tagged so a restarted job finds it."""
    with aws_errors("CreateSnapshot"):
        answer = ec2.create_snapshot(
            VolumeId=volume_id,
            Description=description,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
        )
    return dict(answer)
