"""EC2 snapshots in the lab: point in time, pending -> completed, encryption, copies and deletion."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from snapkeep.lab.blocks import BLOCK_SIZE
from snapkeep.lab.harness import LabHarnessError

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def test_create_snapshot_freezes_the_blocks_of_that_moment(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {0: b"version 1", 9: b"nine"})
    before = lab_kit.harness.volume_digest(volume)

    snapshot = lab_kit.ec2.create_snapshot(VolumeId=volume, Description="pit")
    lab_kit.write_blocks(volume, {0: b"version 2", 12: b"twelve"})

    assert snapshot["State"] == "completed" and snapshot["Progress"] == "100%"
    assert lab_kit.harness.snapshot_digest(snapshot["SnapshotId"]) == before
    assert lab_kit.harness.volume_digest(volume) != before
    tokens = lab_kit.block_tokens(snapshot["SnapshotId"])
    assert sorted(tokens) == [0, 9]
    assert lab_kit.read_block(snapshot["SnapshotId"], 0, tokens[0]).startswith(b"version 1\0")


def test_create_snapshots_freezes_every_volume_and_copies_volume_tags(lab_kit: LabKit) -> None:
    instance = lab_kit.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 1}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2}},
        ],
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "app", "Value": "db"}]}],
    )["Instances"][0]["InstanceId"]
    mappings = lab_kit.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "BlockDeviceMappings"
    ]
    volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in mappings}
    lab_kit.write_blocks(volumes["/dev/sda1"], {0: b"root"})
    lab_kit.write_blocks(volumes["/dev/sdf"], {1000: b"data"})
    before = {device: lab_kit.harness.volume_digest(v) for device, v in volumes.items()}

    answer = lab_kit.ec2.create_snapshots(
        InstanceSpecification={"InstanceId": instance},
        CopyTagsFromSource="volume",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "job", "Value": "j-1"}]}],
    )["Snapshots"]
    for volume in volumes.values():
        lab_kit.write_blocks(volume, {0: b"after"})

    by_volume = {s["VolumeId"]: s for s in answer}
    assert set(by_volume) == set(volumes.values())
    for device, volume in volumes.items():
        snapshot = by_volume[volume]
        assert snapshot["State"] == "completed"
        assert lab_kit.harness.snapshot_digest(snapshot["SnapshotId"]) == before[device]
        tags = {
            t["Key"]: t["Value"]
            for t in lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]["Tags"]
        }
        assert tags == {"app": "db", "job": "j-1"}

    data_only = lab_kit.ec2.create_snapshots(InstanceSpecification={"InstanceId": instance, "ExcludeBootVolume": True})[
        "Snapshots"
    ]
    assert [s["VolumeId"] for s in data_only] == [volumes["/dev/sdf"]]


def test_snapshots_go_pending_then_completed_over_the_configured_delay(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {0: b"slow"})
    lab_kit.harness.set_snapshot_seconds(1.0)
    started = time.monotonic()

    snapshot = lab_kit.ec2.create_snapshot(VolumeId=volume)
    assert snapshot["State"] == "pending"
    assert snapshot["Progress"].endswith("%") and int(snapshot["Progress"][:-1]) < 100
    pending = lab_kit.ec2.describe_snapshots(Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in pending] == [snapshot["SnapshotId"]]
    with pytest.raises(ClientError) as not_ready:
        lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot["SnapshotId"])
    assert not_ready.value.response["Error"]["Code"] == "ValidationException"

    seen = lab_kit.wait_completed(snapshot["SnapshotId"])
    assert seen == ["pending", "completed"]
    assert time.monotonic() - started >= 0.9
    done = lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert done["Progress"] == "100%"
    assert sorted(lab_kit.block_tokens(snapshot["SnapshotId"])) == [0]


def test_snapshot_of_an_encrypted_volume_keeps_its_kms_key(lab_kit: LabKit) -> None:
    key = lab_kit.clients("kms").create_key(Description="data")["KeyMetadata"]["Arn"]
    volume = lab_kit.volume(Encrypted=True, KmsKeyId=key)
    lab_kit.write_blocks(volume, {3: b"secret"})

    snapshot_id = lab_kit.snapshot(volume)
    snapshot = lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert (snapshot["Encrypted"], snapshot["KmsKeyId"]) == (True, key)
    restored = lab_kit.ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone="us-east-1b")
    assert (restored["Encrypted"], restored["KmsKeyId"], restored["Size"]) == (True, key, 1)
    by_key = lab_kit.ec2.describe_snapshots(Filters=[{"Name": "kms-key-id", "Values": [key]}])["Snapshots"]
    assert [s["SnapshotId"] for s in by_key] == [snapshot_id]


def test_copy_snapshot_to_another_region_carries_the_blocks(lab_kit: LabKit) -> None:
    volume = lab_kit.volume(size=1)
    lab_kit.write_blocks(volume, {0: b"header", 1000: b"middle", 2047: b"last"})
    source = lab_kit.snapshot(volume)
    europe = lab_kit.clients("ec2", "eu-west-1")
    europe_key = lab_kit.clients("kms", "eu-west-1").create_key()["KeyMetadata"]["Arn"]

    copy = europe.copy_snapshot(
        SourceSnapshotId=source, SourceRegion="us-east-1", Encrypted=True, KmsKeyId=europe_key, Description="DR"
    )["SnapshotId"]

    described = europe.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]
    assert (described["Encrypted"], described["KmsKeyId"], described["VolumeSize"]) == (True, europe_key, 1)
    assert described["VolumeId"] == "vol-ffffffff"
    assert lab_kit.harness.snapshot_digest(copy) == lab_kit.harness.snapshot_digest(source)
    europe_ebs = lab_kit.clients("ebs", "eu-west-1")
    tokens = lab_kit.block_tokens(copy, ebs=europe_ebs)
    assert sorted(tokens) == [0, 1000, 2047]
    assert lab_kit.read_block(copy, 2047, tokens[2047], ebs=europe_ebs).startswith(b"last")
    with pytest.raises(ClientError) as elsewhere:
        lab_kit.ebs.list_snapshot_blocks(SnapshotId=copy)
    assert elsewhere.value.response["Error"]["Code"] == "ResourceNotFoundException"

    plain_to_encrypted = europe.copy_snapshot(SourceSnapshotId=source, SourceRegion="us-east-1", Encrypted=True)
    described = europe.describe_snapshots(SnapshotIds=[plain_to_encrypted["SnapshotId"]])["Snapshots"][0]
    assert described["Encrypted"] is True and described["KmsKeyId"].startswith("arn:aws:kms:eu-west-1:")


def test_delete_snapshot_drops_its_blocks(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {1: b"x"})
    snapshot = lab_kit.snapshot(volume)
    lab_kit.ec2.delete_snapshot(SnapshotId=snapshot)

    with pytest.raises(ClientError) as gone:
        lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(LabHarnessError):
        lab_kit.harness.snapshot_digest(snapshot)
    with pytest.raises(ClientError) as twice:
        lab_kit.ec2.delete_snapshot(SnapshotId=snapshot)
    assert twice.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"


def test_unknown_snapshots_get_ec2_error_codes(lab_kit: LabKit) -> None:
    missing = "snap-0123456789abcdef0"
    calls = [
        lambda: lab_kit.ec2.create_volume(SnapshotId=missing, AvailabilityZone="us-east-1a"),
        lambda: lab_kit.ec2.copy_snapshot(SourceSnapshotId=missing, SourceRegion="us-east-1"),
        lambda: lab_kit.ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": missing}}],
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert lab_kit.ec2.describe_instances()["Reservations"] == [], "a refused launch leaves no instance"
    assert BLOCK_SIZE == 524288
