"""The lab's volumes hold sparse blocks the harness writes, reads and hashes, over HTTP."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

from snapkeep.lab.blocks import BLOCK_SIZE, GIB
from snapkeep.lab.harness import LabHarness, LabHarnessError

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def test_write_read_round_trip_and_unwritten_bytes_read_as_zeros(lab_kit: LabKit) -> None:
    volume = lab_kit.volume(size=1)
    harness = lab_kit.harness
    straddling = bytes(range(256)) * 8  # 2 KiB across the boundary of blocks 2 and 3
    harness.write_volume(volume, 0, b"boot sector")
    harness.write_volume(volume, 3 * BLOCK_SIZE - 1024, straddling)

    assert harness.read_volume(volume, 0, 16) == b"boot sector" + bytes(5)
    assert harness.read_volume(volume, 3 * BLOCK_SIZE - 1024, len(straddling)) == straddling
    assert harness.read_volume(volume, 100 * BLOCK_SIZE, 4096) == bytes(4096)
    assert harness.read_volume(volume, GIB - 10, 10) == bytes(10)
    assert harness.volume_report(volume).blocks_written == 3


def test_digest_is_the_sha256_of_the_whole_volume_read_end_to_end(lab_kit: LabKit) -> None:
    volume = lab_kit.volume(size=1)
    lab_kit.harness.write_volume(volume, 5, b"first")
    lab_kit.harness.write_volume(volume, GIB - 3, b"end")

    expected = hashlib.sha256()
    zeros = bytes(BLOCK_SIZE)
    first = bytearray(zeros)
    first[5:10] = b"first"
    last = bytearray(zeros)
    last[-3:] = b"end"
    expected.update(first)
    for _ in range(GIB // BLOCK_SIZE - 2):
        expected.update(zeros)
    expected.update(last)

    report = lab_kit.harness.volume_report(volume)
    assert report.sha256 == expected.hexdigest()
    assert (report.resource_id, report.blocks_written, report.volume_size) == (volume, 2, 1)
    blank = lab_kit.volume(size=1)
    assert lab_kit.harness.volume_digest(blank) != report.sha256


def test_writes_past_the_end_and_unknown_volumes_are_refused(lab_kit: LabKit) -> None:
    volume = lab_kit.volume(size=1)
    harness = lab_kit.harness
    with pytest.raises(LabHarnessError) as past_end:
        harness.write_volume(volume, GIB - 2, b"abc")
    assert (past_end.value.status, past_end.value.code) == (400, "OutOfRange")
    with pytest.raises(LabHarnessError) as read_past_end:
        harness.read_volume(volume, GIB, 1)
    assert read_past_end.value.status == 400
    assert harness.volume_report(volume).blocks_written == 0, "a refused write leaves nothing behind"

    with pytest.raises(LabHarnessError) as unknown:
        harness.write_volume("vol-0123456789abcdef0", 0, b"x")
    assert (unknown.value.status, unknown.value.code) == (404, "InvalidVolume.NotFound")
    with pytest.raises(LabHarnessError) as unknown_snapshot:
        harness.snapshot_digest("snap-0123456789abcdef0")
    assert unknown_snapshot.value.status == 404

    request = urllib.request.Request(f"{lab_kit.endpoint}/_harness/volumes/{volume}/read?offset=x&length=1")
    with pytest.raises(urllib.error.HTTPError) as bad_offset:
        urllib.request.urlopen(request, timeout=10)
    assert bad_offset.value.code == 400
    assert json.loads(bad_offset.value.read())["Code"] == "InvalidParameterValue"


def test_volumes_are_found_in_every_account_and_region(lab_kit: LabKit) -> None:
    europe = lab_kit.volume(region="eu-west-1")
    other_account = lab_kit.volume(ec2=lab_kit.clients("ec2", "eu-west-1", account="222222222222"), region="eu-west-1")
    for volume in (europe, other_account):
        lab_kit.harness.write_volume(volume, 7, volume.encode())
        assert lab_kit.harness.read_volume(volume, 7, len(volume)) == volume.encode()
    owners = lab_kit.clients("ec2", "eu-west-1", account="222222222222").describe_volumes()["Volumes"]
    assert [v["VolumeId"] for v in owners] == [other_account]


def test_reset_clears_every_volume_and_block(lab_kit: LabKit) -> None:
    volume = lab_kit.volume()
    lab_kit.harness.write_volume(volume, 0, b"data")
    lab_kit.snapshot(volume)

    lab_kit.harness.reset()

    with pytest.raises(LabHarnessError) as gone:
        lab_kit.harness.read_volume(volume, 0, 4)
    assert gone.value.status == 404
    assert lab_kit.ec2.describe_volumes()["Volumes"] == []
    assert lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    fresh = lab_kit.volume()
    assert lab_kit.harness.volume_report(fresh).blocks_written == 0


def test_snapshot_delay_is_set_at_runtime_validated_and_restored_by_reset(lab_endpoint: str) -> None:
    harness = LabHarness(lab_endpoint)
    harness.set_snapshot_seconds(2.5)
    assert harness.config() == {"SnapshotSeconds": 2.5}
    with pytest.raises(LabHarnessError) as negative:
        harness.set_snapshot_seconds(-1)
    assert negative.value.status == 400
    harness.reset()
    assert harness.config() == {"SnapshotSeconds": 0.0}
