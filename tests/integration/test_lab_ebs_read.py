"""The EBS direct read APIs on EC2-made snapshots: paging, block data and checksums, changed blocks."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from snapkeep.lab.blocks import BLOCK_SIZE

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    response: dict[str, Any] = caught.value.response
    return {
        "Code": response["Error"]["Code"],
        "Status": response["ResponseMetadata"]["HTTPStatusCode"],
        "Reason": response.get("Reason"),
        "Message": response["Error"]["Message"],
    }


def test_list_snapshot_blocks_pages_through_more_blocks_than_max_results(lab_kit: LabKit) -> None:
    volume = lab_kit.volume(size=1)
    written = list(range(0, 260, 2))  # 130 blocks
    lab_kit.write_blocks(volume, {i: i.to_bytes(2, "big") for i in written})
    snapshot = lab_kit.snapshot(volume)

    first = lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot, MaxResults=100)
    assert [b["BlockIndex"] for b in first["Blocks"]] == written[:100]
    assert (first["VolumeSize"], first["BlockSize"]) == (1, BLOCK_SIZE)
    assert first["ExpiryTime"] is not None and first["NextToken"]
    second = lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot, MaxResults=100, NextToken=first["NextToken"])
    assert [b["BlockIndex"] for b in second["Blocks"]] == written[100:]
    assert "NextToken" not in second

    assert sorted(lab_kit.block_tokens(snapshot)) == written

    tail = lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot, StartingBlockIndex=241)
    assert [b["BlockIndex"] for b in tail["Blocks"]] == [242, 244, 246, 248, 250, 252, 254, 256, 258]

    unvalidated = lab_kit.clients("ebs", parameter_validation=False)
    small = unvalidated.list_snapshot_blocks(SnapshotId=snapshot, MaxResults=5)
    assert len(small["Blocks"]) == 100, "the API answers at least 100 blocks whatever MaxResults says"

    bad_token = _error(lambda: lab_kit.ebs.list_snapshot_blocks(SnapshotId=snapshot, NextToken="bm90IGEgdG9rZW4="))
    assert (bad_token["Code"], bad_token["Status"], bad_token["Reason"]) == (
        "ValidationException",
        400,
        "INVALID_PAGE_TOKEN",
    )


def test_get_snapshot_block_returns_the_data_with_its_sha256_checksum(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    payload = bytes(range(256)) * (BLOCK_SIZE // 256)
    lab_kit.harness.write_volume(volume, 7 * BLOCK_SIZE, payload)
    lab_kit.write_blocks(volume, {8: b"other"})
    snapshot = lab_kit.snapshot(volume)
    tokens = lab_kit.block_tokens(snapshot)

    answer = lab_kit.ebs.get_snapshot_block(SnapshotId=snapshot, BlockIndex=7, BlockToken=tokens[7])
    data = answer["BlockData"].read()
    assert data == payload
    assert answer["DataLength"] == BLOCK_SIZE
    assert answer["ChecksumAlgorithm"] == "SHA256"
    assert answer["Checksum"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    wrong_index = _error(
        lambda: lab_kit.ebs.get_snapshot_block(SnapshotId=snapshot, BlockIndex=8, BlockToken=tokens[7])
    )
    assert (wrong_index["Code"], wrong_index["Reason"]) == ("ValidationException", "INVALID_BLOCK_TOKEN")
    other = lab_kit.snapshot(volume)
    wrong_snapshot = _error(
        lambda: lab_kit.ebs.get_snapshot_block(SnapshotId=other, BlockIndex=7, BlockToken=tokens[7])
    )
    assert wrong_snapshot["Reason"] == "INVALID_BLOCK_TOKEN"
    out_of_range = _error(
        lambda: lab_kit.ebs.get_snapshot_block(SnapshotId=snapshot, BlockIndex=2048, BlockToken=tokens[7])
    )
    assert (out_of_range["Status"], out_of_range["Reason"]) == (400, "INVALID_BLOCK")


def test_list_changed_blocks_lists_exactly_the_changed_and_new_blocks(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {0: b"zero", 1: b"one", 2: b"two"})
    first = lab_kit.snapshot(volume)
    lab_kit.write_blocks(volume, {1: b"ONE", 6: b"six"})
    lab_kit.write_blocks(volume, {2: b"two"})  # rewritten with the same bytes: not a change
    second = lab_kit.snapshot(volume)

    changed = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second)
    blocks = {b["BlockIndex"]: b for b in changed["ChangedBlocks"]}
    assert sorted(blocks) == [1, 6]
    assert set(blocks[1]) == {"BlockIndex", "FirstBlockToken", "SecondBlockToken"}
    assert set(blocks[6]) == {"BlockIndex", "SecondBlockToken"}
    assert (changed["VolumeSize"], changed["BlockSize"]) == (1, BLOCK_SIZE)
    assert lab_kit.read_block(first, 1, blocks[1]["FirstBlockToken"]).startswith(b"one")
    assert lab_kit.read_block(second, 1, blocks[1]["SecondBlockToken"]).startswith(b"ONE")
    assert lab_kit.read_block(second, 6, blocks[6]["SecondBlockToken"]).startswith(b"six")

    reverse = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=second, SecondSnapshotId=first)["ChangedBlocks"]
    assert [(b["BlockIndex"], sorted(b)) for b in reverse] == [
        (1, ["BlockIndex", "FirstBlockToken", "SecondBlockToken"]),
        (6, ["BlockIndex", "FirstBlockToken"]),
    ]
    same = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=second, SecondSnapshotId=second)
    assert same["ChangedBlocks"] == []


def test_list_changed_blocks_with_only_the_second_snapshot_lists_all_its_blocks(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {i: b"b" for i in (0, 5, 2000)})
    snapshot = lab_kit.snapshot(volume)

    changed = lab_kit.ebs.list_changed_blocks(SecondSnapshotId=snapshot)["ChangedBlocks"]
    assert [b["BlockIndex"] for b in changed] == [0, 5, 2000]
    assert all(set(b) == {"BlockIndex", "SecondBlockToken"} for b in changed)


def test_changed_blocks_between_paged_listings(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    first = lab_kit.snapshot(volume)
    lab_kit.write_blocks(volume, {i: b"new" for i in range(0, 120)})
    second = lab_kit.snapshot(volume)
    page = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second, MaxResults=100)
    rest = lab_kit.ebs.list_changed_blocks(
        FirstSnapshotId=first, SecondSnapshotId=second, MaxResults=100, NextToken=page["NextToken"]
    )
    assert [b["BlockIndex"] for b in page["ChangedBlocks"] + rest["ChangedBlocks"]] == list(range(120))
    assert "NextToken" not in rest


def test_snapshots_of_unrelated_volumes_cannot_be_compared(lab_kit: LabKit) -> None:
    one, two = lab_kit.volume(), lab_kit.volume()
    lab_kit.write_blocks(one, {0: b"a"})
    lab_kit.write_blocks(two, {0: b"b"})
    first, second = lab_kit.snapshot(one), lab_kit.snapshot(two)

    error = _error(lambda: lab_kit.ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second))
    assert (error["Code"], error["Status"], error["Reason"]) == ("ValidationException", 400, "UNRELATED_SNAPSHOTS")


def test_a_volume_restored_from_a_snapshot_continues_its_lineage(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {0: b"base", 1: b"base"})
    base = lab_kit.snapshot(volume)
    restored = lab_kit.ec2.create_volume(SnapshotId=base, AvailabilityZone="us-east-1a")["VolumeId"]
    lab_kit.write_blocks(restored, {1: b"later", 3: b"new"})
    later = lab_kit.snapshot(restored)

    changed = lab_kit.ebs.list_changed_blocks(FirstSnapshotId=base, SecondSnapshotId=later)["ChangedBlocks"]
    assert [b["BlockIndex"] for b in changed] == [1, 3]


def test_unknown_and_malformed_snapshots(lab_kit: LabKit) -> None:
    missing = "snap-0123456789abcdef0"
    volume = lab_kit.volume()
    real = lab_kit.snapshot(volume)
    for call in (
        lambda: lab_kit.ebs.list_snapshot_blocks(SnapshotId=missing),
        lambda: lab_kit.ebs.get_snapshot_block(SnapshotId=missing, BlockIndex=0, BlockToken="AAAA"),
        lambda: lab_kit.ebs.list_changed_blocks(SecondSnapshotId=missing),
        lambda: lab_kit.ebs.list_changed_blocks(FirstSnapshotId=missing, SecondSnapshotId=real),
    ):
        error = _error(call)
        assert (error["Code"], error["Status"], error["Reason"]) == (
            "ResourceNotFoundException",
            404,
            "SNAPSHOT_NOT_FOUND",
        )
        assert missing in error["Message"]
    malformed = _error(lambda: lab_kit.ebs.list_snapshot_blocks(SnapshotId="snap-XYZ"))
    assert (malformed["Code"], malformed["Status"], malformed["Reason"]) == (
        "ValidationException",
        400,
        "INVALID_SNAPSHOT_ID",
    )
    other_account = lab_kit.clients("ebs", account="222222222222")
    hidden = _error(lambda: other_account.list_snapshot_blocks(SnapshotId=real))
    assert hidden["Code"] == "ResourceNotFoundException"
