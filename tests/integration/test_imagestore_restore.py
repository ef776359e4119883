"""The restore pipeline (imagestore/restore.py): how pack reads and target runs are planned, and, on real
repositories in tmp_path, that damage and failing targets stop it with a clear error and no thread left running,
that progress is reported on the caller's thread, and that a chunk sealed under the wrong id is caught."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import BLOCK_SIZE, LOCKS_PREFIX, BlobType, pack_name
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.manifest import Manifest
from snapkeep.imagestore.repository import Progress, Repository
from snapkeep.imagestore.restore import RESTORE_RUN_BLOCKS, Blob, PackRead, plan_reads, runs_of
from snapkeep.imagestore.sources import RawImageSink, RawImageSource

FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)
BLOB = 1000


def blobs_at(*offsets: int, blocks: dict[int, list[int]] | None = None) -> dict[int, Blob]:
    return {offset: Blob(BLOB, BLOCK_SIZE, bytes(32), list((blocks or {}).get(offset, [i])))
            for i, offset in enumerate(offsets)}


# --- planning (pure) ---------------------------------------------------------------------------------------------

def test_blobs_close_together_share_a_read_and_far_ones_do_not() -> None:
    blobs = blobs_at(0, 2000, 2000 + BLOB + 100, 10_000_000)
    reads = plan_reads(b"p", blobs, gap=1024)
    assert [(r.start, r.end, r.offsets) for r in reads] == [
        (0, 2000 + BLOB + 100 + BLOB, [0, 2000, 2000 + BLOB + 100]),
        (10_000_000, 10_000_000 + BLOB, [10_000_000]),
    ]


def test_a_read_never_passes_its_size() -> None:
    offsets = list(range(0, 50 * BLOB, BLOB))
    reads = plan_reads(b"p", blobs_at(*offsets), gap=1024, size=10 * BLOB)
    assert [len(r.offsets) for r in reads] == [10] * 5
    assert all(r.end - r.start <= 10 * BLOB for r in reads)
    assert sorted(o for r in reads for o in r.offsets) == offsets


def test_runs_are_consecutive_blocks_up_to_the_run_length() -> None:
    # a chunk held by blocks 3 and 4 (a duplicate), then 5..5+RUN, a gap, and one block alone
    count = RESTORE_RUN_BLOCKS + 1
    blocks = {0: [3, 4], **{BLOB * (i + 1): [5 + i] for i in range(count)}, BLOB * 100: [40]}
    blobs = {offset: Blob(BLOB, BLOCK_SIZE, bytes(32), held) for offset, held in blocks.items()}
    runs = runs_of(PackRead(b"p", 0, BLOB * 101, sorted(blobs)), blobs)
    assert [[block for block, _ in run] for run in runs] == [
        list(range(3, 3 + RESTORE_RUN_BLOCKS)), list(range(3 + RESTORE_RUN_BLOCKS, 5 + count)), [40]]
    assert runs[0][:2] == [(3, 0), (4, 0)]


# --- on a real repository ----------------------------------------------------------------------------------------

@pytest.fixture
def random_image(tmp_path: Path) -> tuple[Repository, Manifest, bytes]:
    """Incompressible blocks (stored uncompressed, so a blob can be replaced by one of the same length), a zero
    block and a short tail."""
    rng = random.Random(7)
    content = rng.randbytes(3 * BLOCK_SIZE) + bytes(BLOCK_SIZE) + rng.randbytes(2 * BLOCK_SIZE + 4096)
    image = tmp_path / "disk.img"
    image.write_bytes(content)
    repo = Repository.init(LocalBlobStore(tmp_path / "repo"), PassphraseKey("pw", FAST_KDF))
    with RawImageSource(image, "disk0") as source:
        manifest = repo.backup([source])
    return repo, manifest, content


def pack_path(repo: Repository, chunk_id: bytes) -> tuple[Path, int, int]:
    location = repo.index(reload=True).lookup(chunk_id)
    assert location is not None
    return Path(repo.store.location) / pack_name(location.pack_id), location.offset, location.length


def restore_to(repo: Repository, manifest: Manifest, path: Path, **options: object) -> bytes:
    with RawImageSink(path, manifest.size, overwrite=True) as sink:
        repo.restore(manifest.image_id, sink, **options)  # type: ignore[arg-type]
    return path.read_bytes()


def no_restore_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("snapkeep-restore")]


def test_restore_is_byte_for_byte_and_progress_stays_on_the_callers_thread(
        random_image: tuple[Repository, Manifest, bytes], tmp_path: Path) -> None:
    repo, manifest, content = random_image
    seen: list[tuple[str, Progress]] = []
    with RawImageSink(tmp_path / "out.img", manifest.size) as sink:
        result = repo.restore(manifest.image_id, sink,
                              progress=lambda p: seen.append((threading.current_thread().name, p)))
    assert (tmp_path / "out.img").read_bytes() == content
    assert {name for name, _ in seen} == {threading.current_thread().name}
    assert seen[-1][1].blocks_done == seen[-1][1].blocks_total == result.blocks_written == 6
    assert seen[-1][1].bytes_read == result.bytes_written == len(content) - BLOCK_SIZE
    assert result.zero_blocks == 1
    assert no_restore_threads()


def test_a_flipped_byte_stops_the_restore_naming_the_pack(random_image: tuple[Repository, Manifest, bytes],
                                                          tmp_path: Path) -> None:
    repo, manifest, _ = random_image
    chunk_id = manifest.disks[0].block_map.get(4)
    assert chunk_id is not None
    path, offset, length = pack_path(repo, chunk_id)
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedObject, match="authentication failed") as caught:
        restore_to(repo, manifest, tmp_path / "out.img")
    assert pack_name(repo.index().lookup(chunk_id).pack_id) in str(caught.value)  # type: ignore[union-attr]
    assert no_restore_threads()


def test_a_truncated_pack_stops_the_restore(random_image: tuple[Repository, Manifest, bytes],
                                            tmp_path: Path) -> None:
    repo, manifest, _ = random_image
    chunk_id = manifest.disks[0].block_map.get(5)
    assert chunk_id is not None
    path, offset, _ = pack_path(repo, chunk_id)
    os.truncate(path, offset + 10)
    with pytest.raises(DamagedObject, match="ends before byte"):
        restore_to(repo, manifest, tmp_path / "out.img")
    assert no_restore_threads()


def test_a_chunk_sealed_under_the_wrong_id_is_caught_only_by_verification(
        random_image: tuple[Repository, Manifest, bytes], tmp_path: Path) -> None:
    """Authentic encryption proves who wrote a blob and for which id, not that its bytes hash to that id: a
    writer that sealed the wrong block under an id is caught by re-deriving the id from the plaintext."""
    repo, manifest, content = random_image
    chunk_id = manifest.disks[0].block_map.get(0)
    assert chunk_id is not None
    path, offset, length = pack_path(repo, chunk_id)
    other = random.Random(99).randbytes(BLOCK_SIZE)
    forged = repo.codec.seal(BlobType.CHUNK, chunk_id, other, compress=False)
    assert len(forged) == length
    data = bytearray(path.read_bytes())
    data[offset:offset + length] = forged
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedObject, match="does not hash to its chunk id"):
        restore_to(repo, manifest, tmp_path / "out.img")
    assert no_restore_threads()
    unverified = restore_to(repo, manifest, tmp_path / "unverified.img", verify=False)
    assert unverified == other + content[BLOCK_SIZE:]


class FailingSink:
    """A target that fails on its second write, as a full or vanished disk would."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.zeroed = False
        self.writes = 0

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        self.writes += 1
        if self.writes == 2:
            raise OSError(28, "No space left on device")


def test_a_failing_target_stops_the_restore_with_its_error(random_image: tuple[Repository, Manifest, bytes]) -> None:
    repo, manifest, _ = random_image
    with pytest.raises(OSError, match="No space left"):
        repo.restore(manifest.image_id, FailingSink(manifest.size))
    assert no_restore_threads()
    assert list(repo.store.list(LOCKS_PREFIX)) == []  # the restore's shared lock is released


class RecordingDigestSink:
    """A zeroed target that takes blocks with their verified SHA-256 (as the EBS sink does) and records how each
    arrived."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.zeroed = True
        self.data = bytearray(size)
        self.verified: dict[int, bytes] = {}
        self.plain: list[int] = []
        self.lock = threading.Lock()

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        with self.lock:
            self.plain.append(index)
            self.data[index * BLOCK_SIZE:index * BLOCK_SIZE + len(data)] = data

    def write_verified_block(self, index: int, data: bytes | memoryview, sha256_digest: bytes) -> None:
        with self.lock:
            self.verified[index] = sha256_digest
            self.data[index * BLOCK_SIZE:index * BLOCK_SIZE + len(data)] = data


def test_a_digest_sink_gets_each_block_with_the_sha256_it_was_verified_against(
        random_image: tuple[Repository, Manifest, bytes]) -> None:
    repo, manifest, content = random_image
    sink = RecordingDigestSink(manifest.size)
    repo.restore(manifest.image_id, sink)
    assert bytes(sink.data) == content
    assert sink.plain == [] and sorted(sink.verified) == [0, 1, 2, 4, 5, 6]
    for index, digest in sink.verified.items():
        assert digest == hashlib.sha256(content[index * BLOCK_SIZE:(index + 1) * BLOCK_SIZE]).digest()
    unverified = RecordingDigestSink(manifest.size)
    repo.restore(manifest.image_id, unverified, verify=False)  # nothing verified: the sink hashes for itself
    assert bytes(unverified.data) == content
    assert unverified.verified == {} and sorted(unverified.plain) == [0, 1, 2, 4, 5, 6]
