"""check: find every damaged object and name the image backups it affects.

Structure (always): key files, index files and manifests decrypt and parse; every chunk an image needs is in
the index; every indexed pack exists with the size the index recorded. With `read_data` (a percentage of the
packs, 100 = all): each pack's bytes hash to its name, its header decrypts and agrees with the index, and every
blob decrypts (authenticated with its id and type), decompresses to its recorded length and hashes back to its
chunk id. AES-GCM authenticates every byte of every envelope and the pack name covers every byte of a pack, so a
single flipped byte anywhere is found; the images named are those whose block maps need the damaged chunks.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from snapkeep.blobstores.base import BlobNotFound, RangeReader
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import (
    DATA_PREFIX,
    KEYS_PREFIX,
    BlobType,
    pack_id_from_name,
    pack_name,
)
from snapkeep.imagestore.keys import read_key_file
from snapkeep.imagestore.manifest import Manifest
from snapkeep.imagestore.packs import PackEntry, header_from_pack, pack_id_of
from snapkeep.imagestore.repository import Repository


@dataclass(frozen=True)
class Problem:
    object_name: str
    reason: str
    images: tuple[str, ...] = ()
    """Image backups that cannot be restored intact because of this problem."""


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    images_checked: int = 0
    packs_checked: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    unindexed_packs: list[str] = field(default_factory=list)
    """Packs no index lists (left by an interrupted backup): not damage; gc removes them after its margin."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_images(self) -> list[str]:
        return sorted({image for problem in self.problems for image in problem.images})


def check(repo: Repository, *, read_data: float = 0.0, seed: int | None = None) -> CheckReport:
    """Check the repository; `read_data` is the percentage of packs whose every byte is verified."""
    if not 0.0 <= read_data <= 100.0 or math.isnan(read_data):
        raise InvalidParameterValue(f"read_data: must be a percentage from 0 to 100, got {read_data}",
                                    field="read_data")
    report = CheckReport()
    _check_keys(repo, report)

    index = repo.index(reload=True)
    index_problems = repo.index_problems

    manifests: list[Manifest] = []
    image_ids = repo.image_ids()
    for image_id in image_ids:
        try:
            manifests.append(repo.image(image_id))
        except DamagedObject as exc:
            report.problems.append(Problem(exc.object_name, exc.reason, (image_id,)))
    report.images_checked = len(image_ids)

    def images_needing(chunks: set[bytes]) -> tuple[str, ...]:
        if not chunks:
            return ()
        return tuple(sorted(m.image_id for m in manifests
                            if any(c in chunks for d in m.disks for c in d.block_map.chunk_ids())))

    # Chunks the images need that no readable index lists.
    unindexed: set[bytes] = set()
    for manifest in manifests:
        for disk in manifest.disks:
            unindexed.update(c for c in disk.block_map.chunk_ids() if index.lookup(c) is None)
    lost = images_needing(unindexed)
    for problem in index_problems:
        report.problems.append(Problem(problem.name, problem.reason, lost))
    if unindexed and not index_problems:
        report.problems.append(Problem(
            "index", f"{len(unindexed)} chunks that image backups need are in no index file", lost))

    # Chunks by pack, as the index has them.
    by_pack: dict[bytes, dict[bytes, tuple[int, int, int]]] = {}
    for chunk_id, number, offset, length, raw_length in index.records():
        by_pack.setdefault(index.pack_id(number), {})[chunk_id] = (offset, length, raw_length)

    stored = {}
    for info in repo.store.list(DATA_PREFIX):
        pack_id = pack_id_from_name(info.name)
        if pack_id is not None:
            stored[pack_id] = info.size
    for record in index.packs():
        if record.pack_id not in by_pack:
            continue  # a retention record only
        name = pack_name(record.pack_id)
        chunks = set(by_pack[record.pack_id])
        if record.pack_id not in stored:
            report.problems.append(Problem(name, "missing: the index lists it but the store does not have it",
                                           images_needing(chunks)))
        elif stored[record.pack_id] != record.size:
            report.problems.append(Problem(name, f"holds {stored[record.pack_id]} bytes, the index recorded "
                                                 f"{record.size}", images_needing(chunks)))
    report.unindexed_packs = sorted(pack_name(p) for p in stored if p not in by_pack)
    report.packs_checked = len(stored)

    if read_data > 0:
        candidates = sorted(stored)
        count = len(candidates) if read_data >= 100 else math.ceil(len(candidates) * read_data / 100)
        chosen = random.Random(seed).sample(candidates, count) if count < len(candidates) else candidates
        # Packs are verified side by side (hashing, decryption and decompression release the GIL): one per core
        # on a local disk, more where each read waits on the network; results are taken in pack order.
        cores = os.cpu_count() or 2
        workers = max(2, min(8, cores)) if isinstance(repo.store, RangeReader) else max(4, min(16, 2 * cores))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapkeep-check") as pool:
            results = pool.map(lambda pack_id: _read_pack(repo, pack_id, by_pack.get(pack_id, {})), sorted(chosen))
            for damaged, problems, size in results:
                if size is not None:
                    report.packs_read += 1
                    report.bytes_read += size
                for object_name, reason in problems:
                    report.problems.append(Problem(object_name, reason, images_needing(damaged)))
    return report


def _check_keys(repo: Repository, report: CheckReport) -> None:
    for info in repo.store.list(KEYS_PREFIX):
        try:
            read_key_file(repo.store.get(info.name), info.name)
        except DamagedObject as exc:
            report.problems.append(Problem(exc.object_name, exc.reason))


def _read_pack(repo: Repository, pack_id: bytes, indexed: dict[bytes, tuple[int, int, int]]
               ) -> tuple[set[bytes], list[tuple[str, str]], int | None]:
    """Verify every byte of one pack; returns the damaged chunk ids, the problems found and the bytes read (None:
    the pack was gone). Touches nothing shared: packs are checked on several threads."""
    name = pack_name(pack_id)
    try:
        data = repo.store.get(name)
    except BlobNotFound:
        return set(indexed), [(name, "disappeared while checking")], None
    problems: list[tuple[str, str]] = []
    damaged: set[bytes] = set()
    if pack_id_of(data) != pack_id:
        problems.append((name, "its bytes no longer hash to its name"))
    view = memoryview(data)
    try:
        entries: Iterable[PackEntry] = header_from_pack(repo.codec, view, name)
    except DamagedObject as exc:
        # Without a header the blobs cannot be told apart: every chunk the index places here is lost.
        problems.append((name, f"pack header: {exc.reason}"))
        return set(indexed), problems, len(data)
    in_header = set()
    for entry in entries:
        in_header.add(entry.blob_id)
        where = f"{name} @ {entry.offset}"
        expected = indexed.get(entry.blob_id)
        if expected is not None and expected != (entry.offset, entry.length, entry.raw_length):
            problems.append((where, "the pack header and the index disagree about this blob"))
            damaged.add(entry.blob_id)
        try:
            plain = repo.codec.open(BlobType(entry.blob_type), entry.blob_id,
                                    view[entry.offset:entry.offset + entry.length], where=where)
        except (DamagedObject, ValueError) as exc:
            reason = exc.reason if isinstance(exc, DamagedObject) else f"unknown blob type {entry.blob_type}"
            problems.append((where, f"chunk {entry.blob_id.hex()[:16]}…: {reason}"))
            damaged.add(entry.blob_id)
            continue
        if len(plain) != entry.raw_length or repo.chunk_ids.of(plain) != entry.blob_id:
            problems.append((where, f"chunk {entry.blob_id.hex()[:16]}… does not hash back to its id"))
            damaged.add(entry.blob_id)
    missing = set(indexed) - in_header
    if missing:
        problems.append((name, f"{len(missing)} chunks the index places in this pack are not in its header"))
        damaged |= missing
    return damaged, problems, len(data)
