"""The EBS direct API block source and sink against the lab over HTTP: full and incremental reads, checksum
failures, throttling, resuming, assumed-role credentials, and round trips through the image repository back into
new snapshots (with and without a parent snapshot)."""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from snapkeep.aws import ebs_blocks, http_client
from snapkeep.aws.ebs_blocks import (
    BlockChecksumMismatch,
    EbsBlockSink,
    EbsBlockSource,
    RetryPolicy,
    block_client_for,
)
from snapkeep.aws.errors import TransientAwsError
from snapkeep.aws.http_client import Transfer, Transport, open_transport
from snapkeep.aws.sessions import SessionProvider
from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, ResourceNotFound
from snapkeep.imagestore.format import BLOCK_SIZE, DATA_PREFIX
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.repository import Repository
from snapkeep.imagestore.sources import RawImageSink
from snapkeep.lab.harness import LabHarnessError
from tests.integration.conftest import LAB_SECOND_ACCOUNT, LabClients, LabKit

GIB = 1024**3
FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)
QUICK_RETRIES = RetryPolicy(base_delay=0.005, max_delay=0.1)


def block(seed: str) -> bytes:
    """A distinct, cheap 512 KiB block."""
    return hashlib.sha256(seed.encode()).digest() * (BLOCK_SIZE // 32)


def sessions_on(endpoint: str) -> SessionProvider:
    return SessionProvider(endpoint_url=endpoint, access_key_id="testing", secret_access_key="testing")


@pytest.fixture
def sessions(lab_endpoint: str) -> SessionProvider:
    return sessions_on(lab_endpoint)


def snapshot_of(kit: LabKit, contents: dict[int, bytes], size: int = 1, volume: str | None = None,
                ec2: Any = None) -> tuple[str, str]:
    """(volume, completed snapshot) after writing `contents` (block index -> bytes at its start)."""
    volume = volume or kit.volume(size, ec2=ec2)
    kit.write_blocks(volume, contents)
    snapshot = kit.snapshot(volume, ec2=ec2)
    kit.wait_completed(snapshot, ec2=ec2)
    return volume, snapshot


def read_all(source: EbsBlockSource) -> str:
    """Hex SHA-256 of the whole disk read block by block through read_into, as the repository reads."""
    hasher = hashlib.sha256()
    buffer = bytearray(BLOCK_SIZE)
    for index in range(source.size // BLOCK_SIZE):
        length, digest = source.read_into(index, memoryview(buffer))
        assert length == BLOCK_SIZE
        assert digest == hashlib.sha256(buffer).digest()  # the digest handed over is the data's
        hasher.update(buffer)
    return hasher.hexdigest()


def new_repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalBlobStore(tmp_path / "repo"), PassphraseKey("pass", FAST_KDF), pack_size=1024 * 1024)


def restored_volume_digest(kit: LabKit, snapshot_id: str) -> str:
    """Create a volume from the snapshot in the lab, as a restore would, and hash it."""
    volume = kit.ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone="us-east-1a")["VolumeId"]
    return kit.harness.volume_digest(volume)


class SpyTransport:
    """Records what is sent, then sends it."""

    name = "spy"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, list[str]]] = []

    def submit(self, transfer: Transfer) -> None:
        self.sent.append((transfer.method, transfer.url, list(transfer.headers)))
        self.inner.submit(transfer)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def spy() -> Iterator[SpyTransport]:
    transport = SpyTransport(open_transport(16))
    yield transport
    transport.close()


SCATTERED = {0: block("a0"), 1: block("a1"), 5: block("a5"), 6: bytes(BLOCK_SIZE), 1000: block("a1000"),
             2047: block("a2047")}
"""Written blocks of a 1 GiB volume: neighbours, a written block of zeros, the last block."""


# --- reading -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["pycurl", "urllib3"])
def test_a_full_read_equals_the_snapshot_and_fetches_only_written_blocks(
        lab_kit: LabKit, sessions: SessionProvider, transport: str) -> None:
    _, snapshot = snapshot_of(lab_kit, SCATTERED)
    with EbsBlockSource(sessions, "us-east-1", snapshot, transport=transport, concurrency=8) as source:
        assert source.transport_name == transport
        assert list(source.allocated_blocks()) == sorted(lab_kit.block_tokens(snapshot)) == sorted(SCATTERED)
        assert source.size == GIB
        assert read_all(source) == lab_kit.harness.snapshot_digest(snapshot)
        assert source.client.stats.requests == len(SCATTERED)  # never-written blocks cost no call
        assert (source.stats.blocks_fetched, source.stats.blocks_zero) == (len(SCATTERED), 2048 - len(SCATTERED))


def test_without_pycurl_the_urllib3_fallback_reads_and_says_so(
        lab_kit: LabKit, sessions: SessionProvider, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "pycurl", None)  # `import pycurl` raises ImportError
    monkeypatch.setattr(http_client, "_fallback_logged", False)
    _, snapshot = snapshot_of(lab_kit, {3: block("q3")})
    with caplog.at_level(logging.WARNING, logger="snapkeep.aws.http_client"), \
            EbsBlockSource(sessions, "us-east-1", snapshot) as source:
        assert source.transport_name == "urllib3"
        assert read_all(source) == lab_kit.harness.snapshot_digest(snapshot)
    [record] = [r for r in caplog.records if r.name == "snapkeep.aws.http_client"]
    assert "pycurl cannot be imported" in record.getMessage() and "falls back to urllib3" in record.getMessage()


def test_listing_pages_are_fetched_where_reading_needs_them(
        lab_kit: LabKit, sessions: SessionProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 100 and one page of tokens kept: the source lists again by StartingBlockIndex as it reads on."""
    monkeypatch.setattr(ebs_blocks, "LIST_PAGE_SIZE", 100)
    monkeypatch.setattr(ebs_blocks, "TOKEN_PAGES_KEPT", 1)
    contents = {index: block(f"p{index % 7}") for index in range(3, 3 + 250)}
    _, snapshot = snapshot_of(lab_kit, contents)
    with EbsBlockSource(sessions, "us-east-1", snapshot, concurrency=16) as source:
        assert list(source.allocated_blocks()) == sorted(contents)
        assert source.stats.list_calls == 3  # 250 blocks in pages of 100
        assert read_all(source) == lab_kit.harness.snapshot_digest(snapshot)
        assert source.stats.list_calls >= 5  # pages 2 and 3 listed again when reached (page 1 was kept)


def test_an_incremental_lists_and_fetches_only_the_changed_blocks(
        lab_kit: LabKit, sessions: SessionProvider, tmp_path: Path) -> None:
    volume, first = snapshot_of(lab_kit, {0: block("b0"), 1: block("b1"), 2: block("b2"), 10: block("b10"),
                                          500: block("b500")})
    lab_kit.write_blocks(volume, {1: block("b1-new"), 10: bytes(BLOCK_SIZE), 700: block("b700")})
    lab_kit.harness.write_volume(volume, 2 * BLOCK_SIZE + 4096, b"a few changed bytes")
    second = lab_kit.snapshot(volume)
    lab_kit.wait_completed(second)

    repo = new_repo(tmp_path)
    with EbsBlockSource(sessions, "us-east-1", first, name="root") as source:
        base = repo.backup([source])
    with EbsBlockSource(sessions, "us-east-1", second, previous_snapshot_id=first, name="root") as source:
        changed = list(source.changed_blocks())
        assert changed == [1, 2, 10, 700]
        image = repo.backup([source], parent=base.image_id, changed_blocks={"root": changed})
        assert image.stats["blocks_read"] == 4 and image.stats["blocks_zero"] == 1  # block 10 is zeros now
        assert source.client.stats.requests == 4
    target = tmp_path / "disk.img"
    with RawImageSink(target, GIB) as sink:
        repo.restore(image.image_id, sink)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == lab_kit.harness.snapshot_digest(second)


def test_an_incremental_source_reads_unchanged_blocks_too(lab_kit: LabKit, sessions: SessionProvider) -> None:
    """Blocks outside the changed list (asked for anyway) come from the snapshot's own listing."""
    volume, first = snapshot_of(lab_kit, {0: block("c0"), 3: block("c3")})
    lab_kit.write_blocks(volume, {3: block("c3-new")})
    second = lab_kit.snapshot(volume)
    lab_kit.wait_completed(second)
    with EbsBlockSource(sessions, "us-east-1", second, previous_snapshot_id=first) as source:
        assert list(source.changed_blocks()) == [3]
        assert read_all(source) == lab_kit.harness.snapshot_digest(second)
        assert source.stats.blocks_fetched == 2


def test_bad_reads_are_refused_with_the_aws_reason(lab_kit: LabKit, sessions: SessionProvider) -> None:
    _, snapshot = snapshot_of(lab_kit, {0: block("d0")})
    _, unrelated = snapshot_of(lab_kit, {0: block("d1")})
    with EbsBlockSource(sessions, "us-east-1", "snap-0123456789abcdef0") as source, \
            pytest.raises(ResourceNotFound, match="ListSnapshotBlocks snap-0123456789abcdef0"):
        source.allocated_blocks()
    with EbsBlockSource(sessions, "us-east-1", snapshot, previous_snapshot_id=unrelated) as source, \
            pytest.raises(InvalidParameterValue, match=r"ListChangedBlocks.*lineage"):
        source.changed_blocks()
    with EbsBlockSource(sessions, "us-east-1", snapshot) as source:
        with pytest.raises(InvalidRequest, match="previous_snapshot_id"):
            source.changed_blocks()
        with pytest.raises(InvalidParameterValue, match="block index: 2048"):
            source.read_into(2048, memoryview(bytearray(BLOCK_SIZE)))
        assert source.client.stats.requests == 0
    with pytest.raises(InvalidParameterValue, match="concurrency"):
        EbsBlockSource(sessions, "us-east-1", snapshot, concurrency=0)


def test_resuming_skips_the_blocks_already_done(lab_kit: LabKit, sessions: SessionProvider) -> None:
    contents = {index: block(f"e{index}") for index in range(0, 40, 3)}
    _, snapshot = snapshot_of(lab_kit, contents)
    delivered: list[int] = []
    buffer = bytearray(BLOCK_SIZE)
    with EbsBlockSource(sessions, "us-east-1", snapshot, on_block=delivered.append) as source:
        blocks = list(source.allocated_blocks())
        for index in blocks[:5]:  # then the process dies
            source.read_into(index, memoryview(buffer))
    assert delivered == blocks[:5]
    delivered.clear()
    with EbsBlockSource(sessions, "us-east-1", snapshot, done=set(blocks[:5]), on_block=delivered.append) as source:
        rest = list(source.allocated_blocks())
        assert rest == blocks[5:]
        for index in rest:
            source.read_into(index, memoryview(buffer))
            assert bytes(buffer) == contents[index]
        assert source.client.stats.requests == len(rest)
    assert delivered == rest


def test_assumed_role_credentials_sign_the_block_calls(lab_clients: LabClients, lab_endpoint: str,
                                                       spy: SpyTransport) -> None:
    """A snapshot of another account, read through its role: the block calls carry the role's session token
    (the lab finds the snapshot by the access key's account)."""
    ec2 = lab_clients("ec2", account=LAB_SECOND_ACCOUNT)
    kit = LabKit(lab_endpoint)
    _, snapshot = snapshot_of(kit, {4: block("f4")}, ec2=ec2)
    sessions = sessions_on(lab_endpoint)
    role = f"arn:aws:iam::{LAB_SECOND_ACCOUNT}:role/SnapkeepLab"
    client = block_client_for(sessions, "us-east-1", role, transport=spy)
    with EbsBlockSource(sessions, "us-east-1", snapshot, role_arn=role, client=client) as source:
        buffer = bytearray(BLOCK_SIZE)
        source.read_into(4, memoryview(buffer))
        assert bytes(buffer) == block("f4")
    access_key, _, token = sessions.credentials("us-east-1", role)
    assert token
    [(method, url, headers)] = spy.sent
    assert method == "GET" and f"/snapshots/{snapshot}/blocks/4?blockToken=" in url
    assert f"X-Amz-Security-Token: {token}" in headers
    assert any(h.startswith(f"Authorization: AWS4-HMAC-SHA256 Credential={access_key}/") for h in headers)
    client.close()


# --- checksums and throttling ----------------------------------------------------------------------------------


def test_a_corrupted_checksum_is_detected_and_the_block_fetched_again(
        lab_kit: LabKit, sessions: SessionProvider) -> None:
    _, snapshot = snapshot_of(lab_kit, {9: block("g9")})
    with EbsBlockSource(sessions, "us-east-1", snapshot) as source:
        source.allocated_blocks()
        lab_kit.harness.set_faults(corrupt_checksums=2)
        buffer = bytearray(BLOCK_SIZE)
        _, digest = source.read_into(9, memoryview(buffer))
        assert bytes(buffer) == block("g9") and digest == hashlib.sha256(block("g9")).digest()
        assert source.stats.checksum_mismatches == 2
        assert source.client.stats.requests == 3
    assert lab_kit.harness.faults()["CorruptChecksums"] == 0


def test_a_block_that_keeps_failing_its_checksum_fails_the_backup_and_stores_nothing(
        lab_kit: LabKit, sessions: SessionProvider, tmp_path: Path) -> None:
    _, snapshot = snapshot_of(lab_kit, {9: block("h9")})
    repo = new_repo(tmp_path)
    before = sorted(info.name for info in repo.store.list(""))
    with EbsBlockSource(sessions, "us-east-1", snapshot, name="root") as source:
        source.allocated_blocks()
        lab_kit.harness.set_faults(corrupt_checksums=3)
        with pytest.raises(BlockChecksumMismatch, match=rf"GetSnapshotBlock {snapshot} block 9: x-amz-Checksum is "
                                                        r".* on each of 3 attempts"):
            repo.backup([source])
        assert source.client.stats.requests == 3
    assert repo.image_ids() == []
    assert not list(repo.store.list(DATA_PREFIX))
    assert sorted(info.name for info in repo.store.list("")) == before


@pytest.mark.parametrize("status", [429, 400, 503])
def test_throttling_is_survived_with_backoff_and_a_smaller_window(
        lab_kit: LabKit, sessions: SessionProvider, status: int) -> None:
    contents = {index: block(f"i{index}") for index in range(40)}
    _, snapshot = snapshot_of(lab_kit, contents)
    client = block_client_for(sessions, "us-east-1", concurrency=32, retry=QUICK_RETRIES)
    with EbsBlockSource(sessions, "us-east-1", snapshot, client=client, concurrency=32) as source:
        source.allocated_blocks()
        lab_kit.harness.set_faults(throttle_calls=30, throttle_status=status)
        assert read_all(source) == lab_kit.harness.snapshot_digest(snapshot)
    assert client.stats.throttled == 30
    assert client.stats.requests == 40 + 30
    assert client.stats.limit_cuts >= 1 and client.limit.current < 32
    assert lab_kit.harness.faults()["ThrottleCalls"] == 0
    client.close()


def test_throttling_that_does_not_end_fails_clearly(lab_kit: LabKit, sessions: SessionProvider) -> None:
    _, snapshot = snapshot_of(lab_kit, {2: block("j2")})
    client = block_client_for(sessions, "us-east-1", retry=RetryPolicy(throttle_attempts=3, base_delay=0.001,
                                                                       max_delay=0.01))
    with EbsBlockSource(sessions, "us-east-1", snapshot, client=client) as source:
        source.allocated_blocks()
        lab_kit.harness.set_faults(throttle_calls=100)
        with pytest.raises(TransientAwsError, match=rf"GetSnapshotBlock {snapshot} block 2 failed: still throttled "
                                                    r"after 3 attempts \(ThrottlingException"):
            source.read_into(2, memoryview(bytearray(BLOCK_SIZE)))
    assert lab_kit.harness.faults()["ThrottleCalls"] == 97
    client.close()


# --- writing -------------------------------------------------------------------------------------------------


def test_round_trip_through_the_repository_into_a_new_snapshot(
        lab_kit: LabKit, sessions: SessionProvider, tmp_path: Path) -> None:
    _, snapshot = snapshot_of(lab_kit, SCATTERED)
    repo = new_repo(tmp_path)
    with EbsBlockSource(sessions, "us-east-1", snapshot, name="xvda") as source:
        image = repo.backup([source], source={"SnapshotId": snapshot})
    before = {s["SnapshotId"] for s in lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    with EbsBlockSink(sessions, "us-east-1", image.disks[0].size, tags={"restore": "test"},
                      description="restored by the test", timeout_minutes=30) as sink:
        assert sink.zeroed
        repo.restore(image.image_id, sink)
        restored = sink.complete()
        # the written block of zeros is not written again: a new snapshot reads zeros anyway
        assert (sink.stats.blocks_written, sink.stats.zero_skipped) == (len(SCATTERED) - 1, 0)
    described = lab_kit.ec2.describe_snapshots(SnapshotIds=[restored])["Snapshots"][0]
    assert restored not in before and described["State"] == "completed" and described["VolumeSize"] == 1
    assert {t["Key"]: t["Value"] for t in described.get("Tags", [])} == {"restore": "test"}
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.snapshot_digest(snapshot)


def test_an_incremental_restore_writes_only_what_differs_from_the_parent(
        lab_kit: LabKit, sessions: SessionProvider, tmp_path: Path) -> None:
    volume, first = snapshot_of(lab_kit, {0: block("k0"), 1: block("k1"), 2: block("k2"), 10: block("k10"),
                                          500: block("k500")})
    lab_kit.write_blocks(volume, {1: block("k1-new"), 10: bytes(BLOCK_SIZE), 700: block("k700")})
    second = lab_kit.snapshot(volume)
    lab_kit.wait_completed(second)
    repo = new_repo(tmp_path)
    with EbsBlockSource(sessions, "us-east-1", first, name="root") as source:
        base = repo.backup([source])
    with EbsBlockSource(sessions, "us-east-1", second, previous_snapshot_id=first, name="root") as source:
        image = repo.backup([source], parent=base.image_id, changed_blocks={"root": source.changed_blocks()})

    with EbsBlockSink(sessions, "us-east-1", GIB) as sink:  # the base first: a snapshot of its own
        repo.restore(base.image_id, sink)
        parent = sink.complete()
    assert restored_volume_digest(lab_kit, parent) == lab_kit.harness.snapshot_digest(first)

    base_map = base.disk("root").block_map  # type: ignore[union-attr]

    def unchanged(index: int, digest: bytes) -> bool:
        return base_map.get(index) == repo.chunk_ids.from_digest(digest)

    with EbsBlockSink(sessions, "us-east-1", GIB, parent_snapshot_id=parent, unchanged=unchanged,
                      client_token="incremental-restore-1") as sink:
        assert not sink.zeroed
        repo.restore(image.image_id, sink)
        child = sink.complete()
        # blocks 1 and 700 changed, 10 became zeros over the parent's data; 0, 2 and 500 come from the parent
        assert sink.stats.blocks_written == 3 and sink.stats.zeros_written == 1
        assert sink.stats.unchanged_skipped == 3
    started = lab_kit.ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent, ClientToken="incremental-restore-1")
    assert started["SnapshotId"] == child and started["ParentSnapshotId"] == parent  # the same request, replayed
    assert restored_volume_digest(lab_kit, child) == lab_kit.harness.snapshot_digest(second)


def test_writes_survive_throttling(lab_kit: LabKit, sessions: SessionProvider) -> None:
    contents = {index: block(f"l{index}") for index in range(24)}
    client = block_client_for(sessions, "us-east-1", retry=QUICK_RETRIES)
    with EbsBlockSink(sessions, "us-east-1", GIB, client=client) as sink:
        lab_kit.harness.set_faults(throttle_calls=20, throttle_status=400)
        for index, data in contents.items():
            sink.write_block(index, data)
        restored = sink.complete()
    assert client.stats.throttled == 20
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, contents)
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.volume_digest(volume)
    client.close()


def test_short_and_zero_blocks(lab_kit: LabKit, sessions: SessionProvider) -> None:
    """The end of a disk image shorter than a block is padded; zero blocks are not written to a new snapshot."""
    with EbsBlockSink(sessions, "us-east-1", GIB - 1000) as sink:
        assert sink.size == GIB
        sink.write_block(2047, b"tail" * 100)
        sink.write_block(3, bytes(BLOCK_SIZE))
        sink.write_block(4, memoryview(block("m4")))
        restored = sink.complete()
        assert (sink.stats.blocks_written, sink.stats.zero_skipped) == (2, 1)
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {2047: b"tail" * 100, 4: block("m4")})
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.volume_digest(volume)


def test_bad_writes_are_refused_and_change_nothing(lab_kit: LabKit, sessions: SessionProvider) -> None:
    def snapshot_ids() -> set[str]:
        return {s["SnapshotId"] for s in lab_kit.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}

    before = snapshot_ids()
    with pytest.raises(InvalidParameterValue, match="encrypted: cannot be given with parent_snapshot_id"):
        EbsBlockSink(sessions, "us-east-1", GIB, parent_snapshot_id="snap-0123456789abcdef0", encrypted=True)
    with pytest.raises(ResourceNotFound, match="ListSnapshotBlocks snap-0123456789abcdef0"):
        EbsBlockSink(sessions, "us-east-1", GIB, parent_snapshot_id="snap-0123456789abcdef0")
    with pytest.raises(InvalidParameterValue, match="size"):
        EbsBlockSink(sessions, "us-east-1", 0)
    assert snapshot_ids() == before
    with EbsBlockSink(sessions, "us-east-1", GIB) as sink:
        with pytest.raises(InvalidParameterValue, match="block index: 2048"):
            sink.write_block(2048, block("n"))
        with pytest.raises(InvalidParameterValue, match="at most 524288"):
            sink.write_block(0, block("n") + b"x")
        sink.write_block(1, block("n1"))
        restored = sink.complete()
        with pytest.raises(InvalidRequest, match="completed"):
            sink.write_block(2, block("n2"))
        assert sink.stats.blocks_written == 1
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {1: block("n1")})
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.volume_digest(volume)


def test_a_verified_digest_becomes_the_checksum_as_given(lab_kit: LabKit, sessions: SessionProvider) -> None:
    """write_verified_block sends the caller's SHA-256 without hashing the block again (the restore verified it),
    so EBS itself refuses a wrong one; a short block is padded and hashed here, whatever digest came with it."""
    good, tail = block("v1"), b"end" * 100
    with EbsBlockSink(sessions, "us-east-1", GIB - 1000) as sink:
        sink.write_verified_block(1, good, hashlib.sha256(good).digest())
        sink.write_verified_block(2047, tail, hashlib.sha256(tail).digest())
        restored = sink.complete()
        assert sink.stats.blocks_written == 2
    volume = lab_kit.volume()
    lab_kit.write_blocks(volume, {1: good, 2047: tail})
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.volume_digest(volume)
    with EbsBlockSink(sessions, "us-east-1", GIB) as sink:
        sink.write_verified_block(3, good, hashlib.sha256(b"other bytes").digest())
        with pytest.raises(InvalidParameterValue, match="checksum of block 3 does not match"):
            sink.complete()


def test_an_encrypted_restore_uses_the_key_given(lab_kit: LabKit, sessions: SessionProvider) -> None:
    key = lab_kit.clients("kms").create_key()["KeyMetadata"]["Arn"]
    with EbsBlockSink(sessions, "us-east-1", 2 * GIB, encrypted=True, kms_key_arn=key) as sink:
        sink.write_block(4095, block("o"))
        restored = sink.complete()
    described = lab_kit.ec2.describe_snapshots(SnapshotIds=[restored])["Snapshots"][0]
    assert (described["Encrypted"], described["KmsKeyId"], described["VolumeSize"]) == (True, key, 2)
    volume = lab_kit.volume(2)
    lab_kit.write_blocks(volume, {4095: block("o")})
    assert restored_volume_digest(lab_kit, restored) == lab_kit.harness.volume_digest(volume)


def test_the_lab_fault_hooks_are_checked_and_cleared_by_a_reset(lab_kit: LabKit) -> None:
    harness = lab_kit.harness
    assert harness.faults() == {"ThrottleCalls": 0, "ThrottleStatus": 429, "CorruptChecksums": 0}
    for bad in ({"throttle_status": 418}, {"throttle_calls": -1}, {"corrupt_checksums": -2}):
        with pytest.raises(LabHarnessError) as refused:
            harness.set_faults(**bad)
        assert (refused.value.status, refused.value.code) == (400, "InvalidParameterValue")
    assert harness.faults() == {"ThrottleCalls": 0, "ThrottleStatus": 429, "CorruptChecksums": 0}
    assert harness.set_faults(throttle_calls=3, throttle_status=503, corrupt_checksums=1) == {
        "ThrottleCalls": 3, "ThrottleStatus": 503, "CorruptChecksums": 1}
    with pytest.raises(ClientError) as throttled:
        lab_kit.ebs.start_snapshot(VolumeSize=1)  # the test clients retry once: two calls throttled
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert harness.faults()["ThrottleCalls"] == 1
    harness.reset()
    assert harness.faults() == {"ThrottleCalls": 0, "ThrottleStatus": 429, "CorruptChecksums": 0}
    assert lab_kit.ebs.start_snapshot(VolumeSize=1)["Status"] == "pending"
