"""Garbage collection: delete the packs no image backup references. Planned first, then executed.

Only whole unreferenced packs go, and only when (a) they are older than the safety margin, because a writer
that has uploaded packs but not yet its index and manifest must not lose them, and (b) no S3 Object Lock
retention holds them. gc takes the exclusive lock, so it waits for (or refuses to run beside) live writers.
If any manifest cannot be read, or references a chunk no index lists, gc refuses: it could not tell what is
still needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from snapkeep.blobstores.base import BlobNotFound, RetentionActive
from snapkeep.domain.clock import ensure_utc
from snapkeep.domain.errors import InvalidParameterValue, InvalidResourceState
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import (
    DATA_PREFIX,
    INDEX_PREFIX,
    hex_id_from_name,
    index_name,
    pack_id_from_name,
    pack_name,
)
from snapkeep.imagestore.index import INDEX_ID_SIZE, IndexFile, PackRecord
from snapkeep.imagestore.repository import Repository

DEFAULT_SAFETY_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class PackFacts:
    """What gc needs to know about one pack object."""

    name: str
    size: int
    modified: datetime
    indexed: bool
    referenced: bool
    retain_until: datetime | None = None


@dataclass(frozen=True)
class GcPlan:
    delete: tuple[PackFacts, ...]
    keep_recent: tuple[PackFacts, ...]
    """Unreferenced but younger than the safety margin: a writer may still be about to reference them."""
    keep_retained: tuple[PackFacts, ...]
    """Unreferenced and old, but S3 Object Lock retains them: they go at a later gc."""
    referenced: int

    @property
    def bytes_freed(self) -> int:
        return sum(p.size for p in self.delete)

    @property
    def rewrite_index(self) -> bool:
        return any(p.indexed for p in self.delete)


def plan_gc(packs: Iterable[PackFacts], now: datetime, safety_margin: timedelta) -> GcPlan:
    """Decide, without touching anything, which packs to delete and why the others stay."""
    if safety_margin < timedelta(0):
        raise InvalidParameterValue("safety_margin: must not be negative", field="safety_margin")
    now = ensure_utc(now)
    delete, recent, retained = [], [], []
    referenced = 0
    for pack in sorted(packs, key=lambda p: p.name):
        if pack.referenced:
            referenced += 1
        elif now - pack.modified < safety_margin:
            recent.append(pack)
        elif pack.retain_until is not None and pack.retain_until > now:
            retained.append(pack)
        else:
            delete.append(pack)
    return GcPlan(tuple(delete), tuple(recent), tuple(retained), referenced)


@dataclass
class GcResult:
    plan: GcPlan
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Packs the store would not delete (a retention or legal hold set outside Snapkeep)."""


def gather(repo: Repository) -> list[PackFacts]:
    """The facts about every pack: is it indexed, does an image need it, is it retained."""
    index = repo.index(reload=True)
    needed: set[int] = set()
    for image_id in repo.image_ids():
        try:
            manifest = repo.image(image_id)
        except DamagedObject as exc:
            raise InvalidResourceState(f"gc refused: image backup {image_id} cannot be read ({exc.reason}), so what "
                                       "it references is unknown; run check") from None
        for disk in manifest.disks:
            for chunk_id in disk.block_map.chunk_ids():
                location = index.lookup(chunk_id)
                if location is None:
                    raise InvalidResourceState(
                        f"gc refused: image backup {image_id} needs chunk {chunk_id.hex()[:16]}… which no index "
                        "lists; run check, then rebuild_index")
                needed.add(location.pack_number)
    facts = []
    for info in repo.store.list(DATA_PREFIX):
        pack_id = pack_id_from_name(info.name)
        if pack_id is None:
            continue
        number = index.pack_number(pack_id)
        referenced = number is not None and number in needed
        retain_until = None
        if not referenced and repo.store.supports_retention:
            try:
                retention = repo.store.retention(info.name)
            except BlobNotFound:
                continue
            retain_until = retention.until if retention else None
        facts.append(PackFacts(info.name, info.size, info.modified, number is not None, referenced, retain_until))
    return facts


def run_gc(repo: Repository, *, dry_run: bool = False, safety_margin: timedelta = DEFAULT_SAFETY_MARGIN,
           lock_wait: timedelta = timedelta(0)) -> GcResult:
    """Plan, and unless `dry_run` execute: new index without the doomed packs, old index files, then packs."""
    if dry_run:
        return GcResult(plan_gc(gather(repo), repo.clock(), safety_margin), dry_run=True)
    with repo.locks.acquire(exclusive=True, wait=lock_wait) as held:
        plan = plan_gc(gather(repo), repo.clock(), safety_margin)
        result = GcResult(plan, dry_run=False)
        if not plan.delete:
            return result
        held.check()
        if plan.rewrite_index:
            _rewrite_index(repo, {p.name for p in plan.delete})
        for pack in plan.delete:
            held.check()
            try:
                repo.store.delete(pack.name)
                result.deleted.append(pack.name)
            except RetentionActive:
                result.refused.append(pack.name)
            except BlobNotFound:
                continue
        repo.index(reload=True)
        return result


def _rewrite_index(repo: Repository, doomed_names: set[str]) -> None:
    """One index file with every chunk outside the doomed packs, superseding all current index files.

    Written before any pack is deleted: no index may ever point at a pack that is gone.
    """
    index = repo.index(reload=True)
    old = [hex_id_from_name(info.name, INDEX_PREFIX, INDEX_ID_SIZE) for info in repo.store.list(INDEX_PREFIX)]
    rewritten = IndexFile(IndexFile.new_id(), supersedes=[i for i in old if i is not None])
    local: dict[int, int] = {}
    for number, record in enumerate(index.packs()):
        if pack_name(record.pack_id) in doomed_names:
            continue
        local[number] = len(rewritten.packs)
        rewritten.packs.append(PackRecord(*record))
    rewritten.entries = [(chunk_id, local[number], offset, length, raw_length)
                         for chunk_id, number, offset, length, raw_length in index.records() if number in local]
    repo.write_index_file(rewritten, repo.index_retention(rewritten))
    for index_id in rewritten.supersedes:
        repo.delete_quietly(index_name(index_id))
