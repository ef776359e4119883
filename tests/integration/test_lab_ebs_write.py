"""The EBS direct write APIs: StartSnapshot, PutSnapshotBlock, CompleteSnapshot, with AWS's checks."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from snapkeep.lab import records
from snapkeep.lab.blocks import BLOCK_SIZE

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def _block(fill: bytes) -> bytes:
    return (fill * (BLOCK_SIZE // len(fill) + 1))[:BLOCK_SIZE]


def _checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _put(lab_kit: LabKit, snapshot: str, index: int, data: bytes, **override: Any) -> Any:
    params: dict[str, Any] = {
        "SnapshotId": snapshot,
        "BlockIndex": index,
        "BlockData": data,
        "DataLength": len(data),
        "Checksum": _checksum(data),
        "ChecksumAlgorithm": "SHA256",
    }
    params.update(override)
    return lab_kit.ebs.put_snapshot_block(**params)


def _error(call: Any) -> tuple[str, int, str | None, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response.get("Reason"),
        response["Error"]["Message"],
    )


def test_start_put_complete_makes_a_snapshot_without_a_phantom_volume(lab_kit: LabKit) -> None:
    started = lab_kit.ebs.start_snapshot(VolumeSize=1, Description="restore", Tags=[{"Key": "k", "Value": "v"}])
    snapshot = started["SnapshotId"]
    assert (started["Status"], started["BlockSize"], started["VolumeSize"]) == ("pending", BLOCK_SIZE, 1)
    assert started["Tags"] == [{"Key": "k", "Value": "v"}]
    assert lab_kit.ec2.describe_volumes()["Volumes"] == []

    described = lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert (described["State"], described["VolumeId"], described["VolumeSize"]) == ("pending", "vol-ffffffff", 1)
    assert described["Description"] == "restore"

    answer = _put(lab_kit, snapshot, 4, _block(b"four"))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert answer["Checksum"] == _checksum(_block(b"four"))
    assert answer["ChecksumAlgorithm"] == "SHA256"
    _put(lab_kit, snapshot, 2047, _block(b"last"))
    assert lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=2)["Status"] == "completed"

    assert lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "completed"
    tokens = lab_kit.block_tokens(snapshot)
    assert sorted(tokens) == [4, 2047]
    assert lab_kit.read_block(snapshot, 2047, tokens[2047]) == _block(b"last")
    assert lab_kit.ec2.describe_volumes()["Volumes"] == []


def test_a_parent_snapshot_blocks_are_inherited_and_only_puts_are_changes(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {0: b"zero", 1: b"one", 9: b"nine"})
    parent = lab_kit.snapshot(volume)

    child = lab_kit.ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent)
    assert child["ParentSnapshotId"] == parent
    _put(lab_kit, child["SnapshotId"], 1, _block(b"ONE"))
    _put(lab_kit, child["SnapshotId"], 5, _block(b"five"))
    lab_kit.ebs.complete_snapshot(SnapshotId=child["SnapshotId"], ChangedBlocksCount=2)

    assert sorted(lab_kit.block_tokens(child["SnapshotId"])) == [0, 1, 5, 9]
    changed = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=parent, SecondSnapshotId=child["SnapshotId"])
    assert [b["BlockIndex"] for b in changed["ChangedBlocks"]] == [1, 5]

    restored = lab_kit.ec2.create_volume(SnapshotId=child["SnapshotId"], AvailabilityZone="us-east-1a")
    assert lab_kit.harness.read_volume(restored["VolumeId"], 0, 4) == b"zero"
    assert lab_kit.harness.read_volume(restored["VolumeId"], BLOCK_SIZE, 3) == b"ONE"
    assert lab_kit.harness.volume_digest(restored["VolumeId"]) == lab_kit.harness.snapshot_digest(child["SnapshotId"])

    smaller = _error(
        lambda: lab_kit.ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=lab_kit.snapshot(lab_kit.volume(size=2)))
    )
    assert smaller[:3] == ("ValidationException", 400, "INVALID_VOLUME_SIZE")
    both = _error(lambda: lab_kit.ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent, Encrypted=True))
    assert both[:2] == ("ValidationException", 400)


def test_client_token_makes_start_snapshot_idempotent(lab_kit: LabKit) -> None:
    first = lab_kit.ebs.start_snapshot(VolumeSize=1, ClientToken="restore-job-1", Description="d")
    again = lab_kit.ebs.start_snapshot(VolumeSize=1, ClientToken="restore-job-1", Description="d")
    other = lab_kit.ebs.start_snapshot(VolumeSize=1, ClientToken="restore-job-2", Description="d")

    assert again["SnapshotId"] == first["SnapshotId"]
    assert other["SnapshotId"] != first["SnapshotId"]
    assert len(lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 2
    conflict = _error(lambda: lab_kit.ebs.start_snapshot(VolumeSize=2, ClientToken="restore-job-1"))
    assert conflict[:2] == ("ConflictException", 409)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("wrong size", "DataLength 4096"),
        ("index out of range", "out of range"),
        ("bad checksum", "checksum"),
        ("after completion", "already completed"),
    ],
)
def test_put_snapshot_block_refuses_bad_blocks(lab_kit: LabKit, case: str, fragment: str) -> None:
    snapshot = lab_kit.ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = _block(b"x")
    if case == "wrong size":
        call = lambda: _put(lab_kit, snapshot, 0, b"x" * 4096)  # noqa: E731
    elif case == "index out of range":
        call = lambda: _put(lab_kit, snapshot, 2048, data)  # noqa: E731
    elif case == "bad checksum":
        call = lambda: _put(lab_kit, snapshot, 0, data, Checksum=_checksum(b"other"))  # noqa: E731
    else:
        lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=0)
        call = lambda: _put(lab_kit, snapshot, 0, data)  # noqa: E731

    code, status, reason, message = _error(call)
    assert (code, status) == ("ValidationException", 400)
    assert reason is not None
    assert fragment in message
    if case != "after completion":
        lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=0)
    assert lab_kit.block_tokens(snapshot) == {}, "a refused block is not stored"


def test_writes_to_unknown_or_ec2_snapshots_are_refused(lab_kit: LabKit) -> None:
    missing = _error(lambda: _put(lab_kit, "snap-0123456789abcdef0", 0, _block(b"x")))
    assert missing[:3] == ("ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND")
    missing_complete = _error(
        lambda: lab_kit.ebs.complete_snapshot(SnapshotId="snap-0123456789abcdef0", ChangedBlocksCount=0)
    )
    assert missing_complete[:2] == ("ResourceNotFoundException", 404)
    ec2_made = lab_kit.snapshot(lab_kit.volume())
    assert _error(lambda: _put(lab_kit, ec2_made, 0, _block(b"x")))[:2] == ("ValidationException", 400)


def test_complete_snapshot_checks_the_changed_blocks_count_and_checksum(lab_kit: LabKit) -> None:
    snapshot = lab_kit.ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {0: _block(b"a"), 3: _block(b"b")}
    for index, data in blocks.items():
        _put(lab_kit, snapshot, index, data)

    wrong_count = _error(lambda: lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=3))
    assert wrong_count[:2] == ("ValidationException", 400)
    assert "ChangedBlocksCount 3" in wrong_count[3]
    bad_sum = _error(
        lambda: lab_kit.ebs.complete_snapshot(
            SnapshotId=snapshot,
            ChangedBlocksCount=2,
            Checksum=_checksum(b"nonsense"),
            ChecksumAlgorithm="SHA256",
            ChecksumAggregationMethod="LINEAR",
        )
    )
    assert bad_sum[:2] == ("ValidationException", 400)

    linear = _checksum("".join(_checksum(blocks[i]) for i in sorted(blocks)).encode())
    done = lab_kit.ebs.complete_snapshot(
        SnapshotId=snapshot,
        ChangedBlocksCount=2,
        Checksum=linear,
        ChecksumAlgorithm="SHA256",
        ChecksumAggregationMethod="LINEAR",
    )
    assert done["Status"] == "completed"
    again = _error(lambda: lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=2))
    assert again[:2] == ("ValidationException", 400)


def test_encryption_is_recorded(lab_kit: LabKit) -> None:
    key = lab_kit.clients("kms").create_key()["KeyMetadata"]["Arn"]
    keyed = lab_kit.ebs.start_snapshot(VolumeSize=1, Encrypted=True, KmsKeyArn=key)
    assert keyed["KmsKeyArn"] == key
    default = lab_kit.ebs.start_snapshot(VolumeSize=1, Encrypted=True)
    described = {
        s["SnapshotId"]: s
        for s in lab_kit.ec2.describe_snapshots(SnapshotIds=[keyed["SnapshotId"], default["SnapshotId"]])["Snapshots"]
    }
    assert (described[keyed["SnapshotId"]]["Encrypted"], described[keyed["SnapshotId"]]["KmsKeyId"]) == (True, key)
    assert described[default["SnapshotId"]]["Encrypted"] is True
    assert described[default["SnapshotId"]]["KmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")


def test_direct_snapshots_stay_pending_until_completed_then_follow_the_delay(lab_kit: LabKit) -> None:
    lab_kit.harness.set_snapshot_seconds(0.6)
    snapshot = lab_kit.ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    _put(lab_kit, snapshot, 0, _block(b"p"))
    assert lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "pending"
    unreadable = _error(lambda: lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot))
    assert unreadable[:2] == ("ValidationException", 400)
    too_early = _error(lambda: lab_kit.ec2.create_volume(SnapshotId=snapshot, AvailabilityZone="us-east-1a"))
    assert too_early[0] == "IncorrectState"

    assert lab_kit.ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=1)["Status"] == "pending"
    assert lab_kit.wait_completed(snapshot) == ["pending", "completed"]
    assert sorted(lab_kit.block_tokens(snapshot)) == [0]


def test_an_abandoned_direct_snapshot_times_out_into_the_error_state(
    lab_kit: LabKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = lab_kit.ebs.start_snapshot(VolumeSize=1, Timeout=10)["SnapshotId"]
    real_clock = records.clock
    monkeypatch.setattr(records, "clock", lambda: real_clock() + 10 * 60 + 1)  # the in-process lab's clock

    assert lab_kit.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "error"
    late = _error(lambda: _put(lab_kit, snapshot, 0, _block(b"late")))
    assert late[:3] == ("ValidationException", 400, "WRITE_REQUEST_TIMEOUT")
