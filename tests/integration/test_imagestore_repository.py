"""The image repository over real files and the lab's S3: backup, restore byte for byte, incrementals and
siblings, check against flipped bytes, rebuild-index, gc, locks and S3 Object Lock retention."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard

from snapkeep.blobstores.base import BlobStore
from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.blobstores.s3 import S3BlobStore
from snapkeep.domain.errors import (
    DependencyFailure,
    InvalidParameterValue,
    InvalidRequest,
    MissingParameterValue,
    ResourceNotFound,
)
from snapkeep.imagestore.check import check
from snapkeep.imagestore.errors import (
    DamagedObject,
    ImageNotFound,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    WrongPassphrase,
)
from snapkeep.imagestore.format import BLOCK_SIZE, BlobType, image_name, index_name, pack_name
from snapkeep.imagestore.gc import run_gc
from snapkeep.imagestore.index import IndexFile
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.manifest import Manifest
from snapkeep.imagestore.packs import header_from_pack
from snapkeep.imagestore.repository import Progress, Repository
from snapkeep.imagestore.sources import RawImageSink, RawImageSource
from tests.integration.conftest import LabClients

FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WORDS = ("backup", "snapshot", "volume", "block", "chunk", "index", "pack", "manifest", "restore", "retention",
         "region", "account", "instance", "the", "of", "and", "to", "in", "is", "for", "on", "with", "as", "by",
         "at", "from", "that", "this", "be", "are")


def key(passphrase: str = "correct horse battery staple") -> PassphraseKey:
    return PassphraseKey(passphrase, FAST_KDF)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def text_block(rng: random.Random, length: int = BLOCK_SIZE) -> bytes:
    out = bytearray()
    while len(out) < length:
        out += (" ".join(rng.choice(WORDS) for _ in range(12)) + ".\n").encode()
    return bytes(out[:length])


def make_blocks(kinds: str, seed: int) -> list[bytes]:
    """One block per letter: z = zeros (written), h = hole (never written), r = random, t = text, d = duplicate
    of the first random block."""
    rng = random.Random(seed)
    blocks: list[bytes] = []
    first_random = None
    for kind in kinds:
        if kind in "zh":
            blocks.append(bytes(BLOCK_SIZE))
        elif kind == "r":
            blocks.append(rng.randbytes(BLOCK_SIZE))
            first_random = first_random or blocks[-1]
        elif kind == "t":
            blocks.append(text_block(rng))
        elif kind == "d":
            assert first_random is not None
            blocks.append(first_random)
    return blocks


def write_image(path: Path, blocks: list[bytes], kinds: str, tail: bytes = b"") -> bytes:
    """A raw image file: holes stay unwritten (sparse), everything else is written; returns its content."""
    with path.open("wb") as handle:
        handle.truncate(len(blocks) * BLOCK_SIZE + len(tail))
        for i, (block, kind) in enumerate(zip(blocks, kinds, strict=True)):
            if kind != "h":
                handle.seek(i * BLOCK_SIZE)
                handle.write(block)
        if tail:
            handle.seek(len(blocks) * BLOCK_SIZE)
            handle.write(tail)
    return path.read_bytes()


class CountingSource(RawImageSource):
    """A raw image source that remembers which blocks were read."""

    def __init__(self, path: Path, name: str = "disk0") -> None:
        super().__init__(path, name)
        self.read: list[int] = []

    def read_into(self, index: int, buffer: memoryview) -> tuple[int, bytes | None]:
        self.read.append(index)
        return super().read_into(index, buffer)


class FailingSource(RawImageSource):
    """Fails after `limit` blocks, as a crash in the middle of a backup would."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(path, "disk0")
        self.limit = limit
        self.count = 0

    def read_into(self, index: int, buffer: memoryview) -> tuple[int, bytes | None]:
        self.count += 1
        if self.count > self.limit:
            raise OSError("disk went away")
        return super().read_into(index, buffer)


class MemorySink:
    """A target that is not zeroed (like a used block device): zero blocks must be written too."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(b"\xaa" * size)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def zeroed(self) -> bool:
        return False

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        self.data[index * BLOCK_SIZE:index * BLOCK_SIZE + len(data)] = data


def listing(store: BlobStore) -> dict[str, int]:
    return {info.name: info.size for info in store.list()}


def repo_bytes(store: BlobStore, prefix: str = "") -> int:
    return sum(info.size for info in store.list(prefix))


def zstd1(block: bytes) -> int:
    return min(len(zstandard.ZstdCompressor(level=1).compress(block)), len(block))


def backup_file(repo: Repository, path: Path, **kwargs: Any) -> Manifest:
    with RawImageSource(path, "disk0") as source:
        return repo.backup([source], **kwargs)


def restore_to_file(repo: Repository, image_id: str, path: Path, disk: str | None = None) -> bytes:
    manifest = repo.image(image_id)
    size = (manifest.disk(disk) if disk else manifest.disks[0]).size  # type: ignore[union-attr]
    with RawImageSink(path, size) as sink:
        repo.restore(image_id, sink, disk=disk)
    return path.read_bytes()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "repo")


@pytest.fixture
def repo(store: LocalBlobStore, clock: Clock) -> Repository:
    return Repository.init(store, key(), pack_size=1024 * 1024, clock=clock)


# --- keys and opening ------------------------------------------------------------------------------------------

def test_init_open_and_keys(store: LocalBlobStore, clock: Clock, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        Repository.open(store, key(), clock=clock)
    repo = Repository.init(store, key(), clock=clock)
    before = listing(store)
    assert set(before) == {"config", f"keys/{repo.keys()[0].key_id}"}
    with pytest.raises(RepositoryExists):
        Repository.init(store, key("other"), clock=clock)
    assert listing(store) == before
    with pytest.raises(WrongPassphrase):
        Repository.open(store, key("wrong"), clock=clock)
    opened = Repository.open(store, key(), clock=clock)
    assert opened.config.repository_id == repo.config.repository_id
    second = repo.add_key(key("second passphrase"))
    assert Repository.open(store, key("second passphrase"), clock=clock).master.secret == repo.master.secret
    repo.remove_key(second.key_id)
    with pytest.raises(WrongPassphrase):
        Repository.open(store, key("second passphrase"), clock=clock)
    with pytest.raises(InvalidRequest, match="last key file"):
        repo.remove_key(repo.keys()[0].key_id)
    assert Repository.open(store, key(), clock=clock)


def test_config_is_authenticated(store: LocalBlobStore, clock: Clock) -> None:
    Repository.init(store, key(), clock=clock)
    config = bytearray(store.get("config"))
    config[30] ^= 1
    store.put("config", bytes(config))
    with pytest.raises(DamagedObject, match="config"):
        Repository.open(store, key(), clock=clock)


# --- backup and restore ----------------------------------------------------------------------------------------

def test_restore_reproduces_a_sparse_raw_image_byte_for_byte(repo: Repository, tmp_path: Path) -> None:
    kinds = "rtzhrdtthhrzt" + "hhhh"
    blocks = make_blocks(kinds, seed=1)
    image = write_image(tmp_path / "disk.img", blocks, kinds, tail=b"end of disk\n" * 100)
    seen: list[Progress] = []
    manifest = backup_file(repo, tmp_path / "disk.img", source={"kind": "raw", "path": "disk.img"},
                           progress=seen.append, workers=2)
    nonzero = {hashlib.sha256(b).digest() for b, k in zip(blocks, kinds, strict=True) if k not in "zh"}
    assert len(repo.index(reload=True)) == len(nonzero) + 1  # + the short tail block
    assert manifest.stats["blocks_new"] == len(nonzero) + 1
    assert manifest.stats["blocks_zero"] == kinds.count("z")  # holes are not even read
    assert len(manifest.disks[0].block_map) == sum(k not in "zh" for k in kinds) + 1
    assert [p.blocks_done for p in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].blocks_done == seen[-1].blocks_total
    assert seen[-1].bytes_read == manifest.stats["bytes_read"]

    reopened = Repository.open(repo.store, key())
    assert reopened.image(manifest.image_id).source == {"kind": "raw", "path": "disk.img"}
    assert restore_to_file(reopened, manifest.image_id, tmp_path / "restored.img") == image
    sink = MemorySink(len(image))
    result = reopened.restore(manifest.image_id[:8], sink)
    assert bytes(sink.data) == image
    assert result.zero_blocks == kinds.count("z") + kinds.count("h")


def test_a_non_sparse_image_and_a_block_aligned_size(repo: Repository, tmp_path: Path) -> None:
    kinds = "zzrtz"
    image = write_image(tmp_path / "disk.img", make_blocks(kinds, seed=9), kinds)
    manifest = backup_file(repo, tmp_path / "disk.img")
    assert manifest.disks[0].size == 5 * BLOCK_SIZE
    assert restore_to_file(repo, manifest.image_id, tmp_path / "out.img") == image


def test_multi_disk_image(repo: Repository, tmp_path: Path) -> None:
    root = write_image(tmp_path / "root.img", make_blocks("rtr", seed=2), "rtr")
    data = write_image(tmp_path / "data.img", make_blocks("thr", seed=3), "thr", tail=b"x")
    with RawImageSource(tmp_path / "root.img", "/dev/xvda") as a, RawImageSource(tmp_path / "data.img",
                                                                                  "/dev/sdf") as b:
        manifest = repo.backup([a, b], tags={"Name": "web"})
    assert [d.name for d in manifest.disks] == ["/dev/xvda", "/dev/sdf"]
    assert restore_to_file(repo, manifest.image_id, tmp_path / "r1", disk="/dev/xvda") == root
    assert restore_to_file(repo, manifest.image_id, tmp_path / "r2", disk="/dev/sdf") == data
    with pytest.raises(MissingParameterValue, match="name one"):
        repo.restore(manifest.image_id, MemorySink(len(root)))
    assert repo.images()[0].tags == {"Name": "web"}


def test_incremental_reads_only_changed_blocks_and_grows_by_their_compressed_size(
        repo: Repository, tmp_path: Path) -> None:
    kinds = "rtrtrtzrtrtrthtrtrtrt" * 2
    blocks = make_blocks(kinds, seed=4)
    original = write_image(tmp_path / "v1.img", blocks, kinds)
    base = backup_file(repo, tmp_path / "v1.img", workers=2)

    rng = random.Random(40)
    changed = {3: text_block(rng), 10: rng.randbytes(BLOCK_SIZE), 6: rng.randbytes(BLOCK_SIZE), 1: bytes(BLOCK_SIZE)}
    new_blocks = [changed.get(i, b) for i, b in enumerate(blocks)]
    new_kinds = "".join("z" if i == 1 else ("r" if i in changed else k) for i, k in enumerate(kinds))
    modified = write_image(tmp_path / "v2.img", new_blocks, new_kinds)
    before = repo_bytes(repo.store)
    packs_before = repo_bytes(repo.store, "data/")
    with CountingSource(tmp_path / "v2.img") as source:
        child = repo.backup([source], parent=base.image_id, changed_blocks={"disk0": list(changed)})
        assert sorted(source.read) == sorted(changed)

    compressed = sum(zstd1(b) for b in changed.values() if any(b))
    pack_growth = repo_bytes(repo.store, "data/") - packs_before
    growth = repo_bytes(repo.store) - before
    assert compressed <= pack_growth <= 1.1 * compressed
    assert growth <= 1.1 * compressed + 16 * 1024  # + the manifest and the session's index file
    assert child.parent == base.image_id
    assert restore_to_file(repo, child.image_id, tmp_path / "r2.img") == modified
    assert restore_to_file(repo, base.image_id, tmp_path / "r1.img") == original


def test_siblings_from_one_base_each_add_what_they_changed(repo: Repository, tmp_path: Path) -> None:
    kinds = "rtrtrtrtrtrtrtrt"
    blocks = make_blocks(kinds, seed=5)
    write_image(tmp_path / "base.img", blocks, kinds)
    base = backup_file(repo, tmp_path / "base.img")
    rng = random.Random(50)
    for number, indexes in enumerate(([2, 9], [4, 5, 11])):
        changes = {i: (rng.randbytes(BLOCK_SIZE) if i % 2 else text_block(rng)) for i in indexes}
        sibling = write_image(tmp_path / f"s{number}.img", [changes.get(i, b) for i, b in enumerate(blocks)], kinds)
        before = repo_bytes(repo.store, "data/")
        manifest = backup_file(repo, tmp_path / f"s{number}.img", parent=base.image_id,
                               changed_blocks={"disk0": indexes})
        compressed = sum(zstd1(b) for b in changes.values())
        assert compressed <= repo_bytes(repo.store, "data/") - before <= 1.1 * compressed
        assert restore_to_file(repo, manifest.image_id, tmp_path / f"r{number}.img") == sibling
    assert len(repo.images()) == 3


def test_a_full_reread_deduplicates_against_what_is_stored(repo: Repository, tmp_path: Path) -> None:
    kinds = "rtrzt"
    write_image(tmp_path / "disk.img", make_blocks(kinds, seed=6), kinds)
    first = backup_file(repo, tmp_path / "disk.img")
    before = listing(repo.store)
    again = backup_file(repo, tmp_path / "disk.img", parent=first.image_id)
    added = set(listing(repo.store)) - set(before)
    assert added == {image_name(again.image_id)}  # no pack, no index file: only the manifest
    assert again.stats["blocks_new"] == 0
    assert again.disks[0].block_map == first.disks[0].block_map


def test_a_grown_disk_reads_its_new_blocks_even_if_unlisted(repo: Repository, tmp_path: Path) -> None:
    write_image(tmp_path / "v1.img", make_blocks("rt", seed=7), "rt")
    base = backup_file(repo, tmp_path / "v1.img")
    grown = write_image(tmp_path / "v2.img", make_blocks("rtrt", seed=7) , "rtrt")
    with CountingSource(tmp_path / "v2.img") as source:
        child = repo.backup([source], parent=base.image_id, changed_blocks={"disk0": []})
        assert sorted(source.read) == [2, 3]
    assert restore_to_file(repo, child.image_id, tmp_path / "out.img") == grown


def test_bad_requests_change_nothing(repo: Repository, tmp_path: Path, clock: Clock) -> None:
    write_image(tmp_path / "disk.img", make_blocks("rt", seed=8), "rt")
    base = backup_file(repo, tmp_path / "disk.img")
    before = listing(repo.store)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"changed_blocks": {"disk0": [0]}}, InvalidParameterValue, "needs a parent"),
        ({"parent": base.image_id, "changed_blocks": {"disk0": [2]}}, InvalidParameterValue, "outside the disk"),
        ({"parent": base.image_id, "changed_blocks": {"other": [0]}}, InvalidParameterValue, "not backed up"),
        ({"delete_after": clock.now - timedelta(days=1)}, InvalidParameterValue, "future"),
        ({"parent": "0" * 32}, ImageNotFound, "no image backup"),
        ({"parent": "xyz"}, InvalidParameterValue, "hex digits"),
        ({"tags": {"k": 1}}, InvalidParameterValue, "strings"),
        ({"workers": 0}, InvalidParameterValue, "workers"),
    ]
    for kwargs, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            backup_file(repo, tmp_path / "disk.img", **kwargs)
        assert listing(repo.store) == before, kwargs
    with (RawImageSource(tmp_path / "disk.img", "d") as a, RawImageSource(tmp_path / "disk.img", "d") as b,
          pytest.raises(InvalidParameterValue, match="unique")):
        repo.backup([a, b])
    with pytest.raises(MissingParameterValue):
        repo.backup([])
    with pytest.raises(InvalidParameterValue, match="holds"):
        repo.restore(base.image_id, MemorySink(BLOCK_SIZE))
    assert listing(repo.store) == before


def test_forget_respects_delete_after(repo: Repository, tmp_path: Path, clock: Clock) -> None:
    write_image(tmp_path / "disk.img", make_blocks("r", seed=10), "r")
    kept = backup_file(repo, tmp_path / "disk.img", delete_after=clock.now + timedelta(days=30))
    with pytest.raises(InvalidRequest, match="retained until"):
        repo.forget(kept.image_id)
    assert repo.image_ids() == [kept.image_id]
    clock.advance(timedelta(days=31))
    repo.forget(kept.image_id)
    assert repo.image_ids() == []
    with pytest.raises(ImageNotFound):
        repo.image(kept.image_id)


# --- check -----------------------------------------------------------------------------------------------------

@dataclass
class Damage:
    name: str
    offset: int
    expected_images: list[str]


@pytest.fixture
def two_images(repo: Repository, tmp_path: Path) -> tuple[Repository, Manifest, Manifest]:
    kinds = "rtrtrt"
    blocks = make_blocks(kinds, seed=11)
    write_image(tmp_path / "v1.img", blocks, kinds)
    base = backup_file(repo, tmp_path / "v1.img", workers=1)
    rng = random.Random(110)
    new = list(blocks)
    new[0], new[1] = rng.randbytes(BLOCK_SIZE), text_block(rng)
    write_image(tmp_path / "v2.img", new, kinds)
    child = backup_file(repo, tmp_path / "v2.img", parent=base.image_id, changed_blocks={"disk0": [0, 1]}, workers=1)
    return repo, base, child


def images_needing(repo: Repository, chunk_ids: set[bytes]) -> list[str]:
    return sorted(m.image_id for m in repo.images()
                  if any(c in chunk_ids for d in m.disks for c in d.block_map.chunk_ids()))


def locate(repo: Repository, chunk_id: bytes) -> tuple[str, int, int]:
    location = repo.index().lookup(chunk_id)
    assert location is not None
    return pack_name(location.pack_id), location.offset, location.length


def damage_for(kind: str, repo: Repository, base: Manifest, child: Manifest) -> Damage:
    base_only = base.disks[0].block_map.get(0)
    shared = base.disks[0].block_map.get(2)
    child_only = child.disks[0].block_map.get(1)
    assert base_only and shared and child_only and child.disks[0].block_map.get(2) == shared
    if kind in ("envelope-header", "nonce", "ciphertext", "tag"):
        chunk = {"envelope-header": shared, "nonce": child_only, "ciphertext": base_only, "tag": shared}[kind]
        name, offset, length = locate(repo, chunk)
        inner = {"envelope-header": 5, "nonce": 8 + 7, "ciphertext": length // 2, "tag": length - 3}[kind]
        return Damage(name, offset + inner, images_needing(repo, {chunk}))
    if kind in ("pack-header", "pack-trailer"):
        name, _, _ = locate(repo, base_only)
        size = repo.store.stat(name).size
        entries = header_from_pack(repo.codec, memoryview(repo.store.get(name)), name)
        offset = size - 2 if kind == "pack-trailer" else size - 4 - 20
        return Damage(name, offset, images_needing(repo, {e.blob_id for e in entries}))
    if kind == "index":
        # The child's session index file lists exactly the chunks the child added.
        files, _ = repo.read_index_files()
        child_file = next(f for _, f in files if child_only in {e[0] for e in f.entries})
        listed = {e[0] for e in child_file.entries}
        return Damage(index_name(child_file.index_id), 40, images_needing(repo, listed))
    assert kind == "manifest"
    return Damage(image_name(base.image_id), 60, [base.image_id])


@pytest.mark.parametrize("kind", ["envelope-header", "nonce", "ciphertext", "tag", "pack-header", "pack-trailer",
                                  "index", "manifest"])
def test_check_finds_a_flipped_byte_and_names_the_images_it_affects(
        two_images: tuple[Repository, Manifest, Manifest], kind: str) -> None:
    repo, base, child = two_images
    assert check(repo, read_data=100).ok
    damage = damage_for(kind, repo, base, child)
    assert damage.expected_images  # every damage here hurts at least one image
    data = bytearray(repo.store.get(damage.name))
    data[damage.offset] ^= 0x10
    repo.store.put(damage.name, bytes(data))

    report = check(repo, read_data=100)
    assert not report.ok
    assert any(p.object_name.startswith(damage.name) for p in report.problems), report.problems
    assert report.damaged_images == damage.expected_images
    if kind in ("envelope-header", "nonce", "ciphertext", "tag"):
        assert check(repo).ok  # sizes and structure are intact: only reading the data finds it


def test_check_reads_a_sample_of_packs(two_images: tuple[Repository, Manifest, Manifest]) -> None:
    repo, _, _ = two_images
    total = sum(1 for _ in repo.store.list("data/"))
    assert check(repo, read_data=100).packs_read == total
    assert check(repo, read_data=1, seed=3).packs_read == 1
    assert check(repo).packs_read == 0
    with pytest.raises(InvalidParameterValue, match="percentage"):
        check(repo, read_data=101)


def test_check_reports_damage_in_several_packs_in_pack_order(
        two_images: tuple[Repository, Manifest, Manifest]) -> None:
    """Packs are verified side by side; every damaged one is reported, in pack order, with the images it hurts."""
    repo, base, child = two_images
    names = sorted(info.name for info in repo.store.list("data/"))
    assert len(names) >= 3
    damaged = names[::2]
    for name in damaged:
        data = bytearray(repo.store.get(name))
        data[len(data) // 3] ^= 0x01  # inside a blob: its tag fails, and the pack no longer hashes to its name
        repo.store.put(name, bytes(data))
    report = check(repo, read_data=100)
    assert report.packs_read == len(names)
    reported = [p.object_name.split(" @ ")[0] for p in report.problems]
    assert sorted(set(reported)) == damaged and reported == sorted(reported)
    assert set(report.damaged_images) <= {base.image_id, child.image_id} and report.damaged_images


def test_check_reports_a_missing_pack(two_images: tuple[Repository, Manifest, Manifest]) -> None:
    repo, base, _child = two_images
    chunk = base.disks[0].block_map.get(0)
    assert chunk is not None
    name, _, _ = locate(repo, chunk)
    entries = header_from_pack(repo.codec, memoryview(repo.store.get(name)), name)
    repo.store.delete(name)
    report = check(repo)
    assert [p.object_name for p in report.problems] == [name]
    assert report.damaged_images == images_needing(repo, {e.blob_id for e in entries})


# --- rebuild-index ---------------------------------------------------------------------------------------------

def test_rebuild_index_from_the_packs_alone(two_images: tuple[Repository, Manifest, Manifest],
                                            tmp_path: Path) -> None:
    repo, base, child = two_images
    before = sorted(repo.index(reload=True).records())
    expected = {(r[0], repo.index().pack_id(r[1]), r[2], r[3], r[4]) for r in before}
    for info in list(repo.store.list("index/")):
        repo.store.delete(info.name)
    with pytest.raises(DamagedObject, match="no index lists"):
        repo.restore(child.image_id, MemorySink(child.size))
    assert check(repo).damaged_images == sorted([base.image_id, child.image_id])

    result = repo.rebuild_index()
    assert result.damaged_packs == []
    assert [i.name for i in repo.store.list("index/")] == [index_name(result.index_id)]
    rebuilt = repo.index(reload=True)
    assert {(r[0], rebuilt.pack_id(r[1]), r[2], r[3], r[4]) for r in rebuilt.records()} == expected
    assert check(repo, read_data=100).ok
    restored = MemorySink(child.size)
    repo.restore(child.image_id, restored)
    assert bytes(restored.data) == (tmp_path / "v2.img").read_bytes()


def test_rebuild_index_supersedes_the_old_files(two_images: tuple[Repository, Manifest, Manifest]) -> None:
    repo, _, _ = two_images
    old = {info.name for info in repo.store.list("index/")}
    result = repo.rebuild_index()
    files, problems = repo.read_index_files()
    assert problems == []
    assert {name for name, _ in files} == {index_name(result.index_id)}
    assert {index_name(i) for i in next(f for _, f in files).supersedes} == old


# --- gc and locks ----------------------------------------------------------------------------------------------

def test_a_crash_leaves_packs_that_gc_removes_after_the_margin(repo: Repository, tmp_path: Path,
                                                               clock: Clock) -> None:
    kinds = "rrrrrrrr"
    write_image(tmp_path / "disk.img", make_blocks(kinds, seed=12), kinds)
    kept = write_image(tmp_path / "kept.img", make_blocks("rt", seed=13), "rt")
    survivor = backup_file(repo, tmp_path / "kept.img")
    images_before = repo.image_ids()
    index_before = {i.name for i in repo.store.list("index/")}
    with FailingSource(tmp_path / "disk.img", limit=6) as source, pytest.raises(OSError, match="went away"):
        repo.backup([source], workers=1)
    leftovers = {i.name for i in repo.store.list("data/")} - {
        pack_name(r.pack_id) for r in repo.index(reload=True).packs()}
    assert len(leftovers) >= 2  # 1 MiB packs: two random blocks each
    assert repo.image_ids() == images_before
    assert {i.name for i in repo.store.list("index/")} == index_before
    assert repo.locks.current() == []  # the failed backup released its lock

    clock.now = datetime.now(UTC)  # packs' modification times are real ones
    plan = run_gc(repo, dry_run=True).plan
    assert {p.name for p in plan.keep_recent} == leftovers and plan.delete == ()
    result = run_gc(repo)
    assert result.deleted == []
    assert {i.name for i in repo.store.list("data/")} >= leftovers

    clock.advance(timedelta(hours=2))
    result = run_gc(repo)
    assert set(result.deleted) == leftovers
    assert not leftovers & {i.name for i in repo.store.list("data/")}
    assert check(repo, read_data=100).ok
    assert restore_to_file(repo, survivor.image_id, tmp_path / "out.img") == kept


def test_forget_then_gc_deletes_only_packs_no_image_needs(repo: Repository, tmp_path: Path, clock: Clock) -> None:
    blocks = make_blocks("rrrr", seed=14)
    write_image(tmp_path / "a.img", blocks, "rrrr")
    old = backup_file(repo, tmp_path / "a.img", workers=1)
    rng = random.Random(140)
    new_blocks = [rng.randbytes(BLOCK_SIZE), rng.randbytes(BLOCK_SIZE), blocks[2], blocks[3]]
    newer = write_image(tmp_path / "b.img", new_blocks, "rrrr")
    new = backup_file(repo, tmp_path / "b.img", parent=old.image_id, changed_blocks={"disk0": [0, 1]}, workers=1)
    repo.forget(old.image_id)
    clock.now = datetime.now(UTC) + timedelta(hours=2)

    before = listing(repo.store)
    dry = run_gc(repo, dry_run=True)
    assert listing(repo.store) == before
    needed = {locate(repo, c)[0] for c in new.disks[0].block_map.chunk_ids()}
    doomed = {p.name for p in dry.plan.delete}
    assert doomed and not doomed & needed
    assert doomed == set(n for n in before if n.startswith("data/")) - needed
    result = run_gc(repo)
    assert set(result.deleted) == doomed
    assert result.plan.bytes_freed >= 2 * BLOCK_SIZE
    assert check(repo, read_data=100).ok
    assert restore_to_file(repo, new.image_id, tmp_path / "out.img") == newer
    assert len(repo.read_index_files()[0]) == 1  # one superseding index file is left


def test_gc_refuses_while_a_writer_holds_a_lock(repo: Repository, tmp_path: Path, clock: Clock) -> None:
    write_image(tmp_path / "disk.img", make_blocks("rr", seed=15), "rr")
    image = backup_file(repo, tmp_path / "disk.img")
    repo.forget(image.image_id)
    clock.now = datetime.now(UTC) + timedelta(hours=2)
    writer = repo.locks.acquire(exclusive=False)
    before = listing(repo.store)
    try:
        with pytest.raises(RepositoryLocked, match="shared lock by"):
            run_gc(repo)
        assert listing(repo.store) == before
        # Another writer can go on meanwhile; a second gc would wait its turn.
        with repo.locks.acquire(exclusive=False):
            pass
    finally:
        writer.release()
    assert run_gc(repo).deleted


def test_backups_and_restores_do_not_run_beside_gc(repo: Repository, tmp_path: Path) -> None:
    image = write_image(tmp_path / "disk.img", make_blocks("r", seed=16), "r")
    existing = backup_file(repo, tmp_path / "disk.img")
    with repo.locks.acquire(exclusive=True):
        before = listing(repo.store)
        with pytest.raises(RepositoryLocked, match="exclusive lock by"):
            backup_file(repo, tmp_path / "disk.img")
        with pytest.raises(RepositoryLocked):
            repo.restore(existing.image_id, MemorySink(len(image)))
        assert listing(repo.store) == before
        sink = MemorySink(len(image))
        repo.restore(existing.image_id, sink, lock=False)  # read-only credentials, at their own risk
        assert bytes(sink.data) == image


def test_stale_locks_are_ignored_and_unlock_removes_them(repo: Repository, clock: Clock) -> None:
    crashed = repo.locks.acquire(exclusive=False)
    crashed._stop.set()  # a process that died: its lock is never refreshed or removed
    live = Repository.open(repo.store, key(), clock=clock)
    clock.advance(timedelta(minutes=31))
    fresh = live.locks.acquire(exclusive=False)
    try:
        assert len(live.locks.current()) == 2
        removed = live.locks.unlock()
        assert [lock.name for lock in removed] == [crashed.name]
        assert [lock.name for lock in live.locks.current()] == [fresh.name]
        with pytest.raises(RepositoryLocked):  # the fresh lock still counts
            live.locks.acquire(exclusive=True)
        assert [lock.name for lock in live.locks.unlock(force=True)] == [fresh.name]
        assert live.locks.current() == []
    finally:
        fresh._stop.set()


def test_a_lock_is_refreshed_while_held(repo: Repository, clock: Clock) -> None:
    held = repo.locks.acquire(exclusive=False)
    try:
        first = repo.locks.current()[0].refreshed
        clock.advance(timedelta(minutes=20))
        held.refresh()
        assert repo.locks.current()[0].refreshed == first + timedelta(minutes=20)  # type: ignore[operator]
        clock.advance(timedelta(minutes=20))
        held.check()  # refreshed 20 minutes ago: still fresh
        clock.advance(timedelta(minutes=15))
        with pytest.raises(RepositoryLocked, match="went stale"):
            held.check()
    finally:
        held.release()
    assert repo.locks.current() == []


# --- S3 on the lab ---------------------------------------------------------------------------------------------

@pytest.fixture
def lab_s3(lab_clients: LabClients) -> Iterator[Callable[..., S3BlobStore]]:
    s3 = lab_clients("s3")

    def make(bucket: str, *, object_lock: bool = False, **options: Any) -> S3BlobStore:
        if object_lock:
            s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(Bucket=bucket)
        return S3BlobStore(s3, bucket, "repo", **options)

    yield make


def test_backup_and_restore_through_s3(lab_s3: Callable[..., S3BlobStore], tmp_path: Path) -> None:
    store = lab_s3("sk-images", storage_class="STANDARD_IA")
    repo = Repository.init(store, key(), pack_size=1024 * 1024)
    kinds = "rtzrhtd"
    image = write_image(tmp_path / "disk.img", make_blocks(kinds, seed=20), kinds, tail=b"tail")
    manifest = backup_file(repo, tmp_path / "disk.img")
    reopened = Repository.open(store, key())
    assert restore_to_file(reopened, manifest.image_id, tmp_path / "out.img") == image
    assert check(reopened, read_data=100).ok
    assert reopened.stats().images == 1


def test_object_lock_retains_everything_and_extends_reused_packs(lab_s3: Callable[..., S3BlobStore],
                                                                  tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="Object Lock"):
        Repository.init(lab_s3("sk-plain"), key(), object_lock_mode="COMPLIANCE")
    store = lab_s3("sk-locked", object_lock=True)
    repo = Repository.init(store, key(), pack_size=1024 * 1024, object_lock_mode="COMPLIANCE")
    blocks = make_blocks("rrrr", seed=21)
    write_image(tmp_path / "v1.img", blocks, "rrrr")
    with pytest.raises(MissingParameterValue, match="delete_after"):
        backup_file(repo, tmp_path / "v1.img")

    now = datetime.now(UTC).replace(microsecond=0)
    short, long = now + timedelta(days=1), now + timedelta(days=10)
    base = backup_file(repo, tmp_path / "v1.img", delete_after=short, workers=1)
    written = [n for n in listing(store) if n.split("/")[0] in ("data", "index", "images")]
    assert written and all(store.retention(n) and store.retention(n).until == short  # type: ignore[union-attr]
                           for n in written)
    assert store.retention("config") is None

    rng = random.Random(210)
    write_image(tmp_path / "v2.img", [rng.randbytes(BLOCK_SIZE), rng.randbytes(BLOCK_SIZE), *blocks[2:]], "rrrr")
    child = backup_file(repo, tmp_path / "v2.img", parent=base.image_id, changed_blocks={"disk0": [0, 1]},
                        delete_after=long, workers=1)
    child_packs = {locate(repo, c)[0] for c in child.disks[0].block_map.chunk_ids()}
    base_only = {locate(repo, c)[0] for c in base.disks[0].block_map.chunk_ids()} - child_packs
    assert base_only  # the pack of the old blocks 0 and 1
    for name in child_packs:
        assert store.retention(name).until == long  # type: ignore[union-attr]
    for name in base_only:
        assert store.retention(name).until == short  # type: ignore[union-attr]
    # The extension is recorded, so the next backup does not ask S3 again; the index says so after reload.
    index = repo.index(reload=True)
    for name in child_packs:
        number = next(i for i, r in enumerate(index.packs()) if pack_name(r.pack_id) == name)
        assert index.retain_until(number) == int(long.timestamp())

    with pytest.raises(InvalidRequest, match="retained until"):
        repo.forget(base.image_id)
    # A crashed writer's packs are retained too: gc keeps them until their retention passes.
    with FailingSource(tmp_path / "v1.img", limit=0) as failing, pytest.raises(OSError):
        repo.backup([failing], delete_after=short)
    plan = run_gc(repo, dry_run=True, safety_margin=timedelta(0)).plan
    assert plan.delete == ()
    assert check(repo, read_data=100).ok


def test_an_archived_pack_is_refused_with_a_clear_error(lab_s3: Callable[..., S3BlobStore], tmp_path: Path) -> None:
    store = lab_s3("sk-archive-repo", storage_class="GLACIER")
    repo = Repository.init(store, key())
    write_image(tmp_path / "disk.img", make_blocks("rt", seed=22), "rt")
    manifest = backup_file(repo, tmp_path / "disk.img")
    assert [m.image_id for m in repo.images()] == [manifest.image_id]  # metadata stays readable
    with pytest.raises(Exception, match="restore it from the archive tier"):
        repo.restore(manifest.image_id, MemorySink(manifest.size))


def test_index_file_id_binding(repo: Repository, tmp_path: Path) -> None:
    """An index file copied under another name is refused (its id is authenticated)."""
    write_image(tmp_path / "disk.img", make_blocks("r", seed=23), "r")
    backup_file(repo, tmp_path / "disk.img")
    (name,) = [i.name for i in repo.store.list("index/")]
    other = index_name(IndexFile.new_id())
    repo.store.put(other, repo.store.get(name))
    repo.store.delete(name)
    _, problems = repo.read_index_files()
    assert [p.name for p in problems] == [other]
    assert "authentication failed" in problems[0].reason
    assert BlobType.INDEX == 3


def test_local_repository_copied_elsewhere_still_opens(repo: Repository, tmp_path: Path) -> None:
    write_image(tmp_path / "disk.img", make_blocks("rt", seed=24), "rt")
    image = backup_file(repo, tmp_path / "disk.img")
    shutil.copytree(tmp_path / "repo", tmp_path / "copy")
    copy = Repository.open(LocalBlobStore(tmp_path / "copy"), key())
    assert restore_to_file(copy, image.image_id, tmp_path / "out.img") == (tmp_path / "disk.img").read_bytes()
    assert os.path.getsize(tmp_path / "out.img") == image.size


# --- raw image sources and sinks -------------------------------------------------------------------------------

def test_raw_image_source_and_sink_edges(tmp_path: Path) -> None:
    with pytest.raises(ResourceNotFound, match="does not exist"):
        RawImageSource(tmp_path / "missing.img")
    kinds = "hrh"
    write_image(tmp_path / "sparse.img", make_blocks(kinds, seed=30), kinds)
    with RawImageSource(tmp_path / "sparse.img") as source:
        assert list(source.allocated_blocks() or []) == [1]  # holes are never read
        buffer = memoryview(bytearray(BLOCK_SIZE))
        assert source.read_into(1, buffer) == (BLOCK_SIZE, None)
        with pytest.raises(InvalidParameterValue, match="outside"):
            source.read_into(3, buffer)
        os.truncate(tmp_path / "sparse.img", BLOCK_SIZE + 10)  # the file shrinks under the reader
        with pytest.raises(DependencyFailure, match="ended at"):
            source.read_into(1, buffer)
    (tmp_path / "taken.img").write_bytes(b"precious")
    with pytest.raises(InvalidParameterValue, match="exists"):
        RawImageSink(tmp_path / "taken.img", BLOCK_SIZE)
    assert (tmp_path / "taken.img").read_bytes() == b"precious"
    with RawImageSink(tmp_path / "taken.img", BLOCK_SIZE + 5, overwrite=True) as sink:
        assert sink.zeroed
        with pytest.raises(InvalidParameterValue, match="does not fit"):
            sink.write_block(1, bytes(BLOCK_SIZE))
        sink.write_block(1, b"hello")
    assert (tmp_path / "taken.img").read_bytes() == bytes(BLOCK_SIZE) + b"hello"


# --- pipeline: reused pack buffers, direct I/O and its fallback -------------------------------------------------

def test_many_workers_and_small_packs_reuse_buffers_without_losing_a_block(repo: Repository,
                                                                             tmp_path: Path) -> None:
    """More workers than pack buffers, 1 MiB packs: workers wait for buffers the writer frees, packs fill in
    parallel, and every block lands once, in a pack whose header and id check out."""
    kinds = "rtrtttrdzhrt" * 6 + "tr"
    content = write_image(tmp_path / "a.img", make_blocks(kinds, 31), kinds, tail=b"tail" * 1000)
    manifest = backup_file(repo, tmp_path / "a.img", workers=8)
    assert manifest.stats["blocks_new"] == sum(1 for k in kinds if k in "rt") + 1  # + the tail block
    assert restore_to_file(repo, manifest.image_id, tmp_path / "out.img") == content
    for info in repo.store.list("data/"):
        data = repo.store.get(info.name)
        entries = header_from_pack(repo.codec, data, info.name)
        assert entries and all(e.offset + e.length <= len(data) for e in entries)
    assert check(repo, read_data=100).ok


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "page_cache"])
def test_local_store_writes_and_reads_aligned_buffers_with_or_without_o_direct(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool) -> None:
    """A page-aligned buffer of any length is written whole (its unaligned tail through the page cache), and a
    ranged read into an aligned or unaligned buffer returns the same bytes, where O_DIRECT works and where it
    does not (O_DIRECT unknown to the system)."""
    from snapkeep.blobstores import local
    from snapkeep.blobstores.base import BlobNotFound

    if not direct:
        monkeypatch.setattr(local, "O_DIRECT", 0)
    store = LocalBlobStore(tmp_path / "store")
    buffer = local.aligned_buffer(3 * 4096 + 100)
    payload = random.Random(5).randbytes(3 * 4096 + 77)
    buffer[:len(payload)] = payload
    store.put("data/ab/obj", memoryview(buffer)[:len(payload)])
    assert (tmp_path / "store" / "data" / "ab" / "obj").read_bytes() == payload
    aligned = memoryview(local.aligned_buffer(4 * 4096))
    assert store.read_into("data/ab/obj", 4096, aligned) == len(payload) - 4096
    assert bytes(aligned[:len(payload) - 4096]) == payload[4096:]
    unaligned = memoryview(bytearray(1000))
    assert store.read_into("data/ab/obj", 123, unaligned) == 1000
    assert bytes(unaligned) == payload[123:1123]
    with pytest.raises(BlobNotFound):
        store.read_into("data/ab/missing", 0, aligned)


def test_restore_through_o_direct_fallback_is_byte_for_byte(repo: Repository, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The restore's batched writes give the same file with and without O_DIRECT (last block short)."""
    from snapkeep.blobstores import local

    kinds = "rrtzhtdrt" * 3
    content = write_image(tmp_path / "a.img", make_blocks(kinds, 8), kinds, tail=b"x" * 5000)
    manifest = backup_file(repo, tmp_path / "a.img")
    assert restore_to_file(repo, manifest.image_id, tmp_path / "direct.img") == content
    monkeypatch.setattr(local, "O_DIRECT", 0)
    assert restore_to_file(repo, manifest.image_id, tmp_path / "cached.img") == content
    sink = MemorySink(len(content))
    repo.restore(manifest.image_id, sink)
    assert bytes(sink.data) == content
