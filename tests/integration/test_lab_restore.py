"""Restores in the lab: volumes and instances made from snapshots or AMIs carry the snapshots' blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def _volumes(lab_kit: LabKit, instance_id: str) -> dict[str, str]:
    described = lab_kit.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"]}


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(caught.value.response["Error"]["Code"])


def _snapshot_with_data(lab_kit: LabKit, contents: dict[int, bytes], size: int = 1) -> str:
    volume = lab_kit.volume(size=size)
    lab_kit.write_blocks(volume, contents)
    return lab_kit.snapshot(volume)


def test_create_volume_from_a_snapshot_carries_its_blocks(lab_kit: LabKit) -> None:
    snapshot = _snapshot_with_data(lab_kit, {0: b"mbr", 100: b"file"})
    restored = lab_kit.ec2.create_volume(SnapshotId=snapshot, AvailabilityZone="us-east-1c")
    assert (restored["Size"], restored["SnapshotId"]) == (1, snapshot)
    assert lab_kit.harness.volume_digest(restored["VolumeId"]) == lab_kit.harness.snapshot_digest(snapshot)

    lab_kit.harness.write_volume(restored["VolumeId"], 0, b"MBR")
    assert lab_kit.harness.read_volume(restored["VolumeId"], 0, 3) == b"MBR"
    again = lab_kit.ec2.create_volume(SnapshotId=snapshot, AvailabilityZone="us-east-1c", Size=2)
    assert lab_kit.harness.read_volume(again["VolumeId"], 0, 3) == b"mbr", "volumes are copies, not views"
    assert again["Size"] == 2

    bigger = _snapshot_with_data(lab_kit, {0: b"big"}, size=2)
    with pytest.raises(ClientError) as too_small:
        lab_kit.ec2.create_volume(SnapshotId=bigger, AvailabilityZone="us-east-1a", Size=1)
    error = too_small.value.response["Error"]
    assert error["Code"] == "InvalidParameterValue"
    assert "smaller than snapshot" in error["Message"]


def test_run_instances_with_snapshot_mappings_carries_the_blocks(lab_kit: LabKit) -> None:
    root = _snapshot_with_data(lab_kit, {0: b"root"})
    data = _snapshot_with_data(lab_kit, {7: b"data"})
    instance = lab_kit.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": root, "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": data, "VolumeSize": 2}},
        ],
    )["Instances"][0]["InstanceId"]

    volumes = _volumes(lab_kit, instance)
    assert lab_kit.harness.volume_digest(volumes["/dev/sda1"]) == lab_kit.harness.snapshot_digest(root)
    assert lab_kit.harness.read_volume(volumes["/dev/sdf"], 7 * 524288, 4) == b"data"
    sizes = {v["VolumeId"]: v["Size"] for v in lab_kit.ec2.describe_volumes()["Volumes"]}
    assert (sizes[volumes["/dev/sda1"]], sizes[volumes["/dev/sdf"]]) == (1, 2)

    bigger = _snapshot_with_data(lab_kit, {0: b"x"}, size=2)
    refused = _code(
        lambda: lab_kit.ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": bigger, "VolumeSize": 1}}],
        )
    )
    assert refused == "InvalidBlockDeviceMapping"
    assert len(lab_kit.ec2.describe_instances()["Reservations"]) == 1


def test_register_image_honours_mappings_and_makes_no_stray_snapshot(lab_kit: LabKit) -> None:
    key = lab_kit.clients("kms").create_key()["KeyMetadata"]["Arn"]
    root = _snapshot_with_data(lab_kit, {0: b"os"})
    data_volume = lab_kit.volume(Encrypted=True, KmsKeyId=key)
    lab_kit.write_blocks(data_volume, {3: b"rows"})
    data = lab_kit.snapshot(data_volume)
    before = {s["SnapshotId"] for s in lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}

    image = lab_kit.ec2.register_image(
        Name="recovery-point-1",
        RootDeviceName="/dev/xvda",
        Architecture="x86_64",
        VirtualizationType="hvm",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root, "VolumeType": "gp3"}},
            {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": data, "VolumeSize": 2, "DeleteOnTermination": False}},
        ],
    )["ImageId"]

    after = {s["SnapshotId"] for s in lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert after == before, "RegisterImage makes no snapshot of its own"
    described = lab_kit.ec2.describe_images(ImageIds=[image])["Images"][0]
    assert (described["RootDeviceName"], described["RootDeviceType"]) == ("/dev/xvda", "ebs")
    mappings = {m["DeviceName"]: m["Ebs"] for m in described["BlockDeviceMappings"]}
    assert mappings["/dev/xvda"]["SnapshotId"] == root and mappings["/dev/xvda"]["VolumeSize"] == 1
    assert (mappings["/dev/sdf"]["SnapshotId"], mappings["/dev/sdf"]["VolumeSize"]) == (data, 2)
    assert (mappings["/dev/sdf"]["Encrypted"], mappings["/dev/sdf"]["DeleteOnTermination"]) == (True, False)

    instance = lab_kit.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    assert instance["RootDeviceName"] == "/dev/xvda"
    volumes = _volumes(lab_kit, instance["InstanceId"])
    assert set(volumes) == {"/dev/xvda", "/dev/sdf"}
    assert lab_kit.harness.volume_digest(volumes["/dev/xvda"]) == lab_kit.harness.snapshot_digest(root)
    assert lab_kit.harness.read_volume(volumes["/dev/sdf"], 3 * 524288, 4) == b"rows"
    data_described = lab_kit.ec2.describe_volumes(VolumeIds=[volumes["/dev/sdf"]])["Volumes"][0]
    assert (data_described["Size"], data_described["Encrypted"], data_described["KmsKeyId"]) == (2, True, key)

    assert _code(lambda: lab_kit.ec2.delete_snapshot(SnapshotId=root)) == "InvalidSnapshot.InUse"
    lab_kit.ec2.deregister_image(ImageId=image)
    lab_kit.ec2.delete_snapshot(SnapshotId=root)


def test_explicit_mappings_override_the_image_per_device(lab_kit: LabKit) -> None:
    root = _snapshot_with_data(lab_kit, {0: b"image root"})
    replacement = _snapshot_with_data(lab_kit, {0: b"replacement"})
    image = lab_kit.ec2.register_image(
        Name="base",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}},
        ],
    )["ImageId"]

    instance = lab_kit.ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 2}},
            {"DeviceName": "/dev/sdf", "NoDevice": ""},
            {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": replacement}},
        ],
    )["Instances"][0]["InstanceId"]

    volumes = _volumes(lab_kit, instance)
    assert set(volumes) == {"/dev/xvda", "/dev/sdg"}
    assert lab_kit.harness.read_volume(volumes["/dev/xvda"], 0, 10) == b"image root"
    assert lab_kit.ec2.describe_volumes(VolumeIds=[volumes["/dev/xvda"]])["Volumes"][0]["Size"] == 2
    assert lab_kit.harness.read_volume(volumes["/dev/sdg"], 0, 11) == b"replacement"


def test_create_image_snapshots_the_instance_volumes(lab_kit: LabKit) -> None:
    instance = lab_kit.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 1}}],
    )["Instances"][0]["InstanceId"]
    root = _volumes(lab_kit, instance)["/dev/sda1"]
    lab_kit.write_blocks(root, {0: b"state at image time"})
    expected = lab_kit.harness.volume_digest(root)

    image = lab_kit.ec2.create_image(
        InstanceId=instance,
        Name="img",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "by", "Value": "create-image"}]}],
    )["ImageId"]
    lab_kit.write_blocks(root, {0: b"later"})

    mappings = lab_kit.ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mappings] == ["/dev/sda1"]
    snapshot = mappings[0]["Ebs"]["SnapshotId"]
    assert lab_kit.harness.snapshot_digest(snapshot) == expected
    tags = lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["Tags"]
    assert tags == [{"Key": "by", "Value": "create-image"}]
    assert len(lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1


def test_volumes_cannot_be_made_from_pending_snapshots(lab_kit: LabKit) -> None:
    lab_kit.harness.set_snapshot_seconds(30)
    pending = _snapshot_with_data(lab_kit, {0: b"x"})
    assert _code(lambda: lab_kit.ec2.create_volume(SnapshotId=pending, AvailabilityZone="us-east-1a")) == (
        "IncorrectState"
    )
    assert (
        _code(lambda: lab_kit.ec2.copy_snapshot(SourceSnapshotId=pending, SourceRegion="us-east-1")) == "IncorrectState"
    )
    assert lab_kit.ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [pending]}])["Volumes"] == []
