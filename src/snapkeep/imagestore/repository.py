"""The image repository: init/open, back up disks from block sources (full, or incremental from a parent and a
changed-block list), restore to block sinks, list, forget, stats, rebuild the index.

Write order is the crash-safety argument: packs first, then the session's index file, then the manifest. A
crash leaves packs nothing references (gc removes them after its safety margin) or an index without a manifest
(harmless); an object that anything references is never rewritten. With S3 Object Lock every object a backup
writes is retained until the backup's delete-after time, and every older pack the backup reuses is extended to
it, so no chunk an image needs can be deleted before the image may be.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from snapkeep.blobstores.base import (
    RETENTION_MODES,
    BlobNotFound,
    BlobStore,
    Retention,
    RetentionMode,
    whole_second_ceiling,
)
from snapkeep.blobstores.local import aligned_buffer
from snapkeep.domain.clock import ensure_utc, iso_z, parse_iso
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue, ResourceNotFound
from snapkeep.imagestore.chunks import ChunkIdentifier, is_zero
from snapkeep.imagestore.errors import (
    DamagedObject,
    ImageNotFound,
    RepositoryExists,
    RepositoryNotFound,
    UnsupportedFormat,
)
from snapkeep.imagestore.format import (
    BLOCK_SIZE,
    CONFIG_ID,
    CONFIG_NAME,
    DATA_PREFIX,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_PACK_SIZE,
    FORMAT_VERSION,
    IMAGES_PREFIX,
    INDEX_PREFIX,
    KEYS_PREFIX,
    BlobCodec,
    BlobType,
    hex_id_from_name,
    image_name,
    index_name,
    key_name,
    pack_id_from_name,
    pack_name,
)
from snapkeep.imagestore.index import INDEX_ID_SIZE, ChunkIndex, Entry, IndexFile, PackRecord
from snapkeep.imagestore.keys import (
    KeyFile,
    KeyWrapping,
    MasterKey,
    read_key_file,
    unlock,
    write_key_file,
)
from snapkeep.imagestore.locks import DEFAULT_REFRESH_EVERY, DEFAULT_STALE_AFTER, LockManager
from snapkeep.imagestore.manifest import BlockMap, Disk, Manifest, new_image_id
from snapkeep.imagestore.packs import MAX_PACK_SIZE, PackBuffer, PackEntry, read_header
from snapkeep.imagestore.sources import BlockSink, BlockSource, block_count

CONFIG_VERSION = 1
PACK_BUFFERS = 3
"""Pack buffers per backup: one filling, one queued, one being written; workers wait when all are busy."""
MIN_PACK_SIZE = 1024 * 1024
MAX_COMPRESSION_LEVEL = 19
_DISK_NAME_MAX = 255
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RepositoryConfig:
    repository_id: bytes
    created: datetime
    pack_size: int = DEFAULT_PACK_SIZE
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    object_lock_mode: RetentionMode | None = None

    def encode(self) -> bytes:
        return json.dumps({
            "version": CONFIG_VERSION,
            "format": FORMAT_VERSION,
            "id": self.repository_id.hex(),
            "created": iso_z(self.created),
            "chunk_size": BLOCK_SIZE,
            "chunk_id": "blake3-keyed(sha256(block))",
            "encryption": "aes-256-gcm",
            "compression": {"algorithm": "zstd", "level": self.compression_level},
            "pack_size": self.pack_size,
            "object_lock": {"mode": self.object_lock_mode} if self.object_lock_mode else None,
        }, sort_keys=True).encode("utf-8")

    @staticmethod
    def decode(data: bytes) -> RepositoryConfig:
        try:
            body = json.loads(data)
            if int(body["version"]) > CONFIG_VERSION or int(body["format"]) > FORMAT_VERSION:
                raise UnsupportedFormat(f"{CONFIG_NAME}: repository version {body['version']} (format "
                                        f"{body['format']}); this Snapkeep reads {CONFIG_VERSION} ({FORMAT_VERSION})")
            if int(body["chunk_size"]) != BLOCK_SIZE:
                raise UnsupportedFormat(f"{CONFIG_NAME}: chunk size {body['chunk_size']} is not {BLOCK_SIZE}")
            lock = body.get("object_lock") or {}
            mode = lock.get("mode")
            if mode is not None and mode not in RETENTION_MODES:
                raise DamagedObject(CONFIG_NAME, f"unknown object lock mode {mode!r}")
            return RepositoryConfig(bytes.fromhex(body["id"]), parse_iso(body["created"]), int(body["pack_size"]),
                                    int(body["compression"]["level"]), mode)
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedObject(CONFIG_NAME, f"not a readable repository config: {exc}") from None


@dataclass(frozen=True)
class Progress:
    """Where a backup or restore is: for progress bars and job records."""

    blocks_done: int
    blocks_total: int
    bytes_read: int
    bytes_stored: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RestoreResult:
    blocks_written: int
    zero_blocks: int
    bytes_written: int


@dataclass(frozen=True)
class RepositoryStats:
    images: int
    packs: int
    pack_bytes: int
    chunks: int
    chunk_raw_bytes: int
    logical_bytes: int
    index_files: int

    @property
    def dedup_ratio(self) -> float:
        """Logical image bytes per stored byte (zero blocks, dedup and compression together)."""
        return self.logical_bytes / self.pack_bytes if self.pack_bytes else 0.0


@dataclass(frozen=True)
class IndexFileProblem:
    name: str
    reason: str


@dataclass
class RebuildResult:
    index_id: bytes
    packs: int
    chunks: int
    damaged_packs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _BlockResult:
    index: int
    chunk_id: bytes | None
    read: int
    stored: int
    new: bool


class Repository:
    """An open repository. Thread-safe for one operation at a time per object; open one per process."""

    def __init__(self, store: BlobStore, master: MasterKey, config: RepositoryConfig, *, clock: Clock = utc_now,
                 stale_after: timedelta = DEFAULT_STALE_AFTER,
                 refresh_every: timedelta = DEFAULT_REFRESH_EVERY) -> None:
        self.store = store
        self.master = master
        self.config = config
        self.clock = clock
        self.codec = BlobCodec(master.blob_key, config.compression_level)
        self.chunk_ids = ChunkIdentifier(master.chunk_id_key)
        self.locks = LockManager(store, self.codec, clock, stale_after=stale_after, refresh_every=refresh_every)
        self._index: ChunkIndex | None = None
        self.index_problems: list[IndexFileProblem] = []

    # --- init and open ---------------------------------------------------------------------------------------

    @classmethod
    def init(cls, store: BlobStore, key: KeyWrapping, *, pack_size: int = DEFAULT_PACK_SIZE,
             compression_level: int = DEFAULT_COMPRESSION_LEVEL, object_lock_mode: RetentionMode | None = None,
             clock: Clock = utc_now, **options: Any) -> Repository:
        """Create a repository: a config object and one key file. Refuses a location that holds one already."""
        if not MIN_PACK_SIZE <= pack_size <= MAX_PACK_SIZE // 2:
            raise InvalidParameterValue(f"pack_size: must be {MIN_PACK_SIZE} to {MAX_PACK_SIZE // 2} bytes, "
                                        f"got {pack_size}", field="pack_size")
        if not 1 <= compression_level <= MAX_COMPRESSION_LEVEL:
            raise InvalidParameterValue(f"compression_level: must be 1 to {MAX_COMPRESSION_LEVEL}, got "
                                        f"{compression_level}", field="compression_level")
        if object_lock_mode is not None:
            if object_lock_mode not in RETENTION_MODES:
                raise InvalidParameterValue(f"object_lock_mode: must be GOVERNANCE or COMPLIANCE, got "
                                            f"{object_lock_mode!r}", field="object_lock_mode")
            if not store.supports_retention:
                raise InvalidParameterValue(
                    f"object_lock_mode: {store.location} cannot retain objects (an S3 bucket with Object Lock "
                    "enabled is needed)", field="object_lock_mode")
        if _exists(store, CONFIG_NAME) or any(True for _ in store.list(KEYS_PREFIX)):
            raise RepositoryExists(f"{store.location} already holds a repository")
        now = ensure_utc(clock())
        master = MasterKey.generate()
        config = RepositoryConfig(master.repository_id, now, pack_size, compression_level, object_lock_mode)
        record, body = write_key_file(master, key, now=now, hostname=os.uname().nodename)
        store.put(key_name(record.key_id), body)
        codec = BlobCodec(master.blob_key, compression_level)
        store.put(CONFIG_NAME, codec.seal(BlobType.CONFIG, CONFIG_ID, config.encode()))
        return cls(store, master, config, clock=clock, **options)

    @classmethod
    def open(cls, store: BlobStore, key: KeyWrapping | MasterKey, *, clock: Clock = utc_now,
             **options: Any) -> Repository:
        """Open with any key file of the matching kind that `key` unwraps, or with a master key unlocked before
        (`keys.Unlocking`)."""
        if not _exists(store, CONFIG_NAME):
            raise RepositoryNotFound(f"{store.location}: no repository there (no {CONFIG_NAME} object)")
        master = key if isinstance(key, MasterKey) else unlock(store, key)
        codec = BlobCodec(master.blob_key)
        config = RepositoryConfig.decode(codec.open(BlobType.CONFIG, CONFIG_ID, store.get(CONFIG_NAME),
                                                    where=CONFIG_NAME))
        if config.repository_id != master.repository_id:
            raise DamagedObject(CONFIG_NAME, "the config belongs to another repository than the key file")
        if config.object_lock_mode and not store.supports_retention:
            raise InvalidRequest(f"{store.location}: the repository uses S3 Object Lock but the store cannot "
                                 "retain objects")
        return cls(store, master, config, clock=clock, **options)

    # --- keys ------------------------------------------------------------------------------------------------

    def add_key(self, key: KeyWrapping) -> KeyFile:
        record, body = write_key_file(self.master, key, now=self.clock(), hostname=os.uname().nodename)
        self.store.put(key_name(record.key_id), body)
        return record

    def keys(self) -> list[KeyFile]:
        return [read_key_file(self.store.get(info.name), info.name) for info in self.store.list(KEYS_PREFIX)]

    def remove_key(self, key_id: str) -> None:
        names = {info.name for info in self.store.list(KEYS_PREFIX)}
        if key_name(key_id) not in names:
            raise ResourceNotFound(f"key_id: no key file {key_id} in {self.store.location}", field="key_id")
        if len(names) == 1:
            raise InvalidRequest("key_id: the last key file cannot be removed: nothing could open the "
                                 "repository afterwards", field="key_id")
        self.store.delete(key_name(key_id))

    # --- index -----------------------------------------------------------------------------------------------

    def read_index_files(self) -> tuple[list[tuple[str, IndexFile]], list[IndexFileProblem]]:
        """Every readable index file, and a problem for each that is not."""
        files, problems = [], []
        for info in self.store.list(INDEX_PREFIX):
            index_id = hex_id_from_name(info.name, INDEX_PREFIX, INDEX_ID_SIZE)
            if index_id is None:
                continue
            try:
                plain = self.codec.open(BlobType.INDEX, index_id, self.store.get(info.name), where=info.name)
                files.append((info.name, IndexFile.decode(index_id, plain, info.name)))
            except DamagedObject as exc:
                problems.append(IndexFileProblem(info.name, exc.reason))
            except BlobNotFound:
                continue  # superseded and removed while listing
        return files, problems

    def index(self, *, reload: bool = False) -> ChunkIndex:
        """The in-memory index of every chunk (index files superseded by others are skipped)."""
        if self._index is None or reload:
            files, problems = self.read_index_files()
            superseded = {old for _, f in files for old in f.supersedes}
            index = ChunkIndex()
            for _, index_file in files:
                if index_file.index_id not in superseded:
                    index.load(index_file)
            self._index, self.index_problems = index, problems
        return self._index

    def write_index_file(self, index_file: IndexFile, retention: Retention | None = None) -> str:
        name = index_name(index_file.index_id)
        self.store.put(name, self.codec.seal(BlobType.INDEX, index_file.index_id, index_file.encode()),
                       retention=retention)
        return name

    def rebuild_index(self, *, lock_wait: timedelta = timedelta(0)) -> RebuildResult:
        """Write one index from the pack headers alone, superseding (and then removing) every index file."""
        with self.locks.acquire(exclusive=True, wait=lock_wait) as held:
            old = [hex_id_from_name(info.name, INDEX_PREFIX, INDEX_ID_SIZE) for info in self.store.list(INDEX_PREFIX)]
            previous = self.index(reload=True) if self.config.object_lock_mode else None
            rebuilt = IndexFile(IndexFile.new_id(), supersedes=[i for i in old if i is not None])
            entries: list[Entry] = []
            damaged = []
            for info in sorted(self.store.list(DATA_PREFIX), key=lambda i: i.name):
                pack_id = pack_id_from_name(info.name)
                if pack_id is None:
                    continue
                try:
                    pack_entries = read_header(self.store, self.codec, info.name, info.size)
                except DamagedObject:
                    damaged.append(info.name)
                    continue
                retain = 0
                if self.config.object_lock_mode:
                    retention = self.store.retention(info.name)
                    retain = int(retention.until.timestamp()) if retention else 0
                    number = previous.pack_number(pack_id) if previous else None
                    if previous is not None and number is not None:
                        retain = max(retain, previous.retain_until(number))
                number = len(rebuilt.packs)
                rebuilt.packs.append(PackRecord(pack_id, info.size, retain))
                entries += [(e.blob_id, number, e.offset, e.length, e.raw_length)
                            for e in pack_entries if e.blob_type == BlobType.CHUNK]
            rebuilt.entries = entries
            held.check()
            self.write_index_file(rebuilt, self.index_retention(rebuilt))
            for index_id in rebuilt.supersedes:
                self.delete_quietly(index_name(index_id))
            self._index = None
            return RebuildResult(rebuilt.index_id, len(rebuilt.packs), len(rebuilt.entries), damaged)

    def index_retention(self, index_file: IndexFile) -> Retention | None:
        """An index file is retained as long as the longest-retained pack it describes."""
        if not self.config.object_lock_mode:
            return None
        until = max((p.retain_until for p in index_file.packs), default=0)
        if until <= self.clock().timestamp():
            return None
        return Retention(self.config.object_lock_mode, datetime.fromtimestamp(until, UTC))

    def delete_quietly(self, name: str) -> bool:
        """Delete if the store lets us (a retained object stays, and is harmless once superseded)."""
        try:
            self.store.delete(name)
            return True
        except (BlobNotFound, InvalidRequest):
            return False

    # --- images ----------------------------------------------------------------------------------------------

    def image_ids(self) -> list[str]:
        found = []
        for info in self.store.list(IMAGES_PREFIX):
            text = info.name[len(IMAGES_PREFIX):]
            if hex_id_from_name(info.name, IMAGES_PREFIX, 16) is not None:
                found.append(text)
        return sorted(found)

    def image(self, image_id: str) -> Manifest:
        """The manifest of an image backup, by id or unique id prefix (at least 4 hex digits)."""
        full = self._resolve(image_id)
        name = image_name(full)
        try:
            sealed = self.store.get(name)
        except BlobNotFound:
            raise ImageNotFound(f"image_id: no image backup {full} in {self.store.location}",
                                field="image_id") from None
        plain = self.codec.open(BlobType.MANIFEST, bytes.fromhex(full), sealed, where=name)
        return Manifest.decode(full, plain, name)

    def _resolve(self, image_id: str) -> str:
        if not isinstance(image_id, str) or not 4 <= len(image_id) <= 32 or any(
                c not in "0123456789abcdef" for c in image_id):
            raise InvalidParameterValue(f"image_id: must be 4 to 32 lower-case hex digits, got {image_id!r}",
                                        field="image_id")
        if len(image_id) == 32:
            return image_id
        matches = [i for i in self.image_ids() if i.startswith(image_id)]
        if not matches:
            raise ImageNotFound(f"image_id: no image backup starts with {image_id}", field="image_id")
        if len(matches) > 1:
            raise InvalidParameterValue(f"image_id: {image_id} is ambiguous ({len(matches)} image backups start "
                                        "with it); give more digits", field="image_id")
        return matches[0]

    def images(self) -> list[Manifest]:
        """Every image backup, oldest first."""
        return sorted((self.image(i) for i in self.image_ids()), key=lambda m: (m.created, m.image_id))

    def forget(self, image_id: str) -> None:
        """Remove an image backup's manifest (its chunks go at the next gc). Refused before its delete-after."""
        manifest = self.image(image_id)
        now = self.clock()
        if manifest.delete_after is not None and now < manifest.delete_after:
            raise InvalidRequest(f"image_id: image backup {manifest.image_id} is retained until "
                                 f"{iso_z(manifest.delete_after)} and cannot be removed before then",
                                 field="image_id")
        with self.locks.acquire(exclusive=False):
            self.store.delete(image_name(manifest.image_id))

    def extend_retention(self, image_id: str, until: datetime) -> int:
        """Retain an image backup's manifest and every pack it uses until at least `until` (S3 Object Lock), for a
        backup whose retention was lengthened after it was written; never shortens. Returns the packs extended.
        A repository without Object Lock has nothing to extend."""
        manifest = self.image(image_id)
        retention = self._retention(until)
        if retention is None:
            return 0
        with self.locks.acquire(exclusive=False) as held:
            session = _BackupSession(self, self.index(reload=True), 1, retention)
            session.extend_retention(manifest.disks, None)
            held.check()
            session.write_index()
            self.store.extend_retention(image_name(manifest.image_id), retention.until)
            return len(session.extended)

    # --- backup ----------------------------------------------------------------------------------------------

    def backup(
        self,
        sources: Sequence[BlockSource],
        *,
        source: Mapping[str, Any] | None = None,
        parent: str | None = None,
        changed_blocks: Mapping[str, Iterable[int]] | None = None,
        delete_after: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
        lock_wait: timedelta = timedelta(0),
    ) -> Manifest:
        """Back up each disk in `sources` as one image backup; returns its manifest.

        With `parent` and a changed-block list for a disk, only those blocks are read and the rest of the disk's
        map is copied from the parent; without one, every (allocated) block is read and deduplicated by id.
        """
        now = ensure_utc(self.clock())
        self._check_backup_request(sources, source, parent, changed_blocks, delete_after, tags, now)
        workers = _workers(workers)
        with self.locks.acquire(exclusive=False, wait=lock_wait) as held:
            index = self.index(reload=True)
            parent_manifest = self.image(parent) if parent else None
            retention = self._retention(delete_after)
            session = _BackupSession(self, index, workers, retention)
            plans = [self._plan_disk(src, parent_manifest, changed_blocks) for src in sources]
            total = sum(len(blocks) for _, blocks, _ in plans)
            tally = _Tally(total, progress)
            disks = []
            try:
                for src, blocks, base in plans:
                    disks.append(self._read_disk(session, src, blocks, base, tally))
                session.flush()
            finally:
                session.close()
            held.check()
            session.extend_retention(disks, parent_manifest)
            manifest = Manifest(
                image_id=new_image_id(),
                created=now,
                disks=disks,
                parent=parent_manifest.image_id if parent_manifest else None,
                delete_after=delete_after,
                tags=dict(tags or {}),
                source=dict(source or {}),
                stats=tally.stats(),
            )
            held.check()
            session.write_index()
            held.check()
            self.store.put(image_name(manifest.image_id),
                           self.codec.seal(BlobType.MANIFEST, bytes.fromhex(manifest.image_id), manifest.encode()),
                           retention=retention)
            return manifest

    def _check_backup_request(self, sources: Sequence[BlockSource], source: Mapping[str, Any] | None,
                              parent: str | None, changed_blocks: Mapping[str, Iterable[int]] | None,
                              delete_after: datetime | None, tags: Mapping[str, str] | None, now: datetime) -> None:
        if not sources:
            raise MissingParameterValue("sources: at least one disk is required", field="sources")
        names = [s.name for s in sources]
        for name in names:
            if not isinstance(name, str) or not 1 <= len(name) <= _DISK_NAME_MAX:
                raise InvalidParameterValue(f"sources[].name: must be 1 to {_DISK_NAME_MAX} characters, got "
                                            f"{name!r}", field="sources")
        if len(set(names)) != len(names):
            raise InvalidParameterValue(f"sources: disk names must be unique, got {names}", field="sources")
        if source is not None and not isinstance(source, Mapping):
            raise InvalidParameterValue("source: must be a JSON object", field="source")
        try:
            json.dumps(dict(source or {}))
        except (TypeError, ValueError) as exc:
            raise InvalidParameterValue(f"source: must be JSON-serialisable: {exc}", field="source") from None
        if tags is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise InvalidParameterValue("tags: keys and values must be strings", field="tags")
        if changed_blocks is not None:
            if parent is None:
                raise InvalidParameterValue("changed_blocks: needs a parent image backup to copy the unchanged "
                                            "blocks from", field="changed_blocks")
            unknown = sorted(set(changed_blocks) - set(names))
            if unknown:
                raise InvalidParameterValue(f"changed_blocks: names disks that are not backed up: {unknown}",
                                            field="changed_blocks")
        if delete_after is not None and ensure_utc(delete_after) <= now:
            raise InvalidParameterValue(f"delete_after: must be in the future, got {iso_z(delete_after)}",
                                        field="delete_after")
        if self.config.object_lock_mode and delete_after is None:
            raise MissingParameterValue("delete_after: required in a repository with S3 Object Lock: it is how "
                                        "long the backup's objects are retained", field="delete_after")

    def _retention(self, delete_after: datetime | None) -> Retention | None:
        if self.config.object_lock_mode is None or delete_after is None:
            return None
        return Retention(self.config.object_lock_mode, whole_second_ceiling(delete_after))

    def _plan_disk(
        self, src: BlockSource, parent: Manifest | None, changed_blocks: Mapping[str, Iterable[int]] | None
    ) -> tuple[BlockSource, Sequence[int], Disk | None]:
        """Which blocks of a disk to read, and the parent disk whose map the rest comes from (None: full read)."""
        total = block_count(src.size)
        base = parent.disk(src.name) if parent else None
        if base is not None and changed_blocks is not None and src.name in changed_blocks:
            wanted = set()
            for index in changed_blocks[src.name]:
                if not isinstance(index, int) or not 0 <= index < total:
                    raise InvalidParameterValue(f"changed_blocks[{src.name!r}]: block {index!r} is outside the disk's "
                                                f"{total} blocks", field="changed_blocks")
                wanted.add(index)
            # Blocks beyond the parent's end (a grown disk) cannot come from the parent: read them.
            wanted.update(range(min(base.block_count, total), total))
            return src, sorted(wanted), base
        allocated = src.allocated_blocks()
        blocks: Sequence[int] = range(total) if allocated is None else allocated
        if len(blocks) and not (blocks[0] >= 0 and blocks[-1] < total):
            raise InvalidParameterValue(f"sources[{src.name!r}]: reports blocks outside its {total} blocks",
                                        field="sources")
        return src, blocks, None

    @staticmethod
    def _read_disk(session: _BackupSession, src: BlockSource, blocks: Sequence[int], base: Disk | None,
                   tally: _Tally) -> Disk:
        """A full read builds the block map as results arrive (in block order); an incremental collects the
        changed blocks and merges them into a copy of the parent's map."""
        total = block_count(src.size)
        if base is None:
            block_map = BlockMap()

            def keep(result: _BlockResult) -> None:
                if result.chunk_id is not None:
                    block_map.append(result.index, result.chunk_id)

            session.read(src, blocks, tally, keep)
            return Disk(src.name, src.size, block_map)
        changes: dict[int, bytes | None] = {}
        session.read(src, blocks, tally, lambda result: changes.__setitem__(result.index, result.chunk_id))
        return Disk(src.name, src.size, base.block_map.with_changes(changes, total))

    # --- restore ---------------------------------------------------------------------------------------------

    def restore(self, image_id: str, sink: BlockSink, *, disk: str | None = None, workers: int | None = None,
                progress: ProgressCallback | None = None, verify: bool = True, lock: bool = True,
                lock_wait: timedelta = timedelta(0)) -> RestoreResult:
        """Write one disk of an image backup to `sink`; every chunk's id is re-derived from its bytes when
        `verify`, so what is written is exactly what was backed up. A shared lock keeps gc away meanwhile
        (`lock=False` for read-only credentials, at the risk of a concurrent gc)."""
        if not lock:
            return self._restore(image_id, sink, disk, workers, progress, verify)
        with self.locks.acquire(exclusive=False, wait=lock_wait):
            return self._restore(image_id, sink, disk, workers, progress, verify)

    def _restore(self, image_id: str, sink: BlockSink, disk: str | None, workers: int | None,
                 progress: ProgressCallback | None, verify: bool) -> RestoreResult:
        manifest = self.image(image_id)
        target = manifest.pick_disk(disk)
        if sink.size < target.size:
            raise InvalidParameterValue(f"target: holds {sink.size} bytes, disk {target.name} needs {target.size}",
                                        field="target")
        index = self.index(reload=True)
        # pack id -> offset -> the chunk there and every block holding it
        from snapkeep.imagestore.restore import Blob, RestorePipeline, plan_reads  # a backup needs none of it

        blobs: dict[bytes, dict[int, Blob]] = {}
        for block, chunk_id in target.block_map.items():
            location = index.lookup(chunk_id)
            if location is None:
                raise DamagedObject(image_name(manifest.image_id),
                                    f"block {block} needs chunk {chunk_id.hex()[:16]}…, which no index lists "
                                    "(run check; rebuild_index recovers it if its pack is intact)")
            pack = blobs.setdefault(index.pack_id(location.pack_number), {})
            blob = pack.get(location.offset)
            if blob is None:
                pack[location.offset] = blob = Blob(location.length, location.raw_length, chunk_id)
            blob.blocks.append(block)
        present = len(target.block_map)
        tally = _Tally(present, progress)
        reads = [read for pack_id, pack in sorted(blobs.items()) for read in plan_reads(pack_id, pack)]
        pipeline = RestorePipeline(self.store, self.codec, self.chunk_ids, target, sink, verify=verify,
                                   decoders=None if workers is None else _workers(workers))
        _, written = pipeline.run(reads, blobs, lambda blocks, size: tally.add(blocks, size, 0))
        return RestoreResult(present, target.block_count - present, written)

    # --- stats -----------------------------------------------------------------------------------------------

    def stats(self) -> RepositoryStats:
        index = self.index(reload=True)
        packs = [info for info in self.store.list(DATA_PREFIX) if pack_id_from_name(info.name)]
        chunks = raw = 0
        for _, _, _, _, raw_length in index.records():
            chunks += 1
            raw += raw_length
        logical = sum(m.size for m in self.images())
        index_files = sum(1 for _ in self.store.list(INDEX_PREFIX))
        return RepositoryStats(len(self.image_ids()), len(packs), sum(p.size for p in packs), chunks, raw, logical,
                               index_files)


def _exists(store: BlobStore, name: str) -> bool:
    try:
        store.stat(name)
        return True
    except BlobNotFound:
        return False


def _workers(workers: int | None) -> int:
    if workers is None:
        # At least 4: a worker waits on its block's read (direct I/O, an EBS call) as much as it computes.
        return max(4, min(8, os.cpu_count() or 2))
    if not 1 <= workers <= 64:
        raise InvalidParameterValue(f"workers: must be 1 to 64, got {workers}", field="workers")
    return workers


class _Tally:
    """Counts for the progress callback and the manifest's stats (updated from the calling thread only)."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.callback = callback
        self.done = self.read = self.stored = self.zero = self.new = 0

    def add(self, blocks: int, read: int, stored: int, *, zero: int = 0, new: int = 0) -> None:
        self.done += blocks
        self.read += read
        self.stored += stored
        self.zero += zero
        self.new += new
        if self.callback is not None:
            self.callback(Progress(self.done, self.total, self.read, self.stored))

    def stats(self) -> dict[str, int]:
        return {"blocks_read": self.done, "blocks_zero": self.zero, "blocks_new": self.new,
                "bytes_read": self.read, "bytes_stored": self.stored}


class _PackWriter:
    """Fills pack buffers from the block workers and writes full packs on its own thread, so compression and
    encryption overlap with hashing the pack and writing it; the pool of buffers bounds memory."""

    def __init__(self, session: _BackupSession) -> None:
        self.session = session
        self.codec = session.repo.codec
        self.pack_size = session.repo.config.pack_size
        self.lock = threading.Condition()
        self.free: list[PackBuffer] = []
        self.made = 0
        self.current: PackBuffer | None = None
        self.full: queue.SimpleQueue[PackBuffer | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="snapkeep-pack-writer", daemon=True)
        self.thread.start()

    def add(self, chunk_id: bytes, data: memoryview) -> int:
        """Seal one block into the open pack; the envelope's length."""
        length, compression, payload = self.codec.sealed_size(data)
        with self.lock:
            while True:
                self._raise()
                if self.current is not None and not self.current.fits(length):
                    self._close()
                if self.current is None:
                    if self.free:
                        self.current = self.free.pop()
                    elif self.made < PACK_BUFFERS:
                        self.made += 1
                        self.current = PackBuffer(self.pack_size)
                    else:  # every buffer is being filled or written: wait (the lock is released meanwhile)
                        self.lock.wait(timeout=1)
                        continue
                break
            pack = self.current
            slot = pack.reserve(chunk_id, BlobType.CHUNK, length, len(data))
            pack.pending += 1
            if pack.size >= self.pack_size:
                self._close()
        try:
            self.codec.seal_into(BlobType.CHUNK, chunk_id, payload, compression, slot)
        except BaseException as exc:
            self.error = self.error or exc
            raise
        finally:
            with self.lock:
                pack.pending -= 1
                if pack.closed and not pack.pending:
                    self.full.put(pack)
        return length

    def _close(self) -> None:
        """Close the open pack (lock held); it is written once its last reserved slot is filled."""
        pack, self.current = self.current, None
        if pack is None:
            return
        pack.closed = True
        if not pack.pending:
            self.full.put(pack)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            pack = self.full.get()
            if pack is None:
                return
            try:
                if self.error is None and pack.entries:
                    pack_id, data, entries = pack.finish(self.codec)
                    self.session.store_pack(pack_id, data, entries)
            except BaseException as exc:
                self.error = self.error or exc
            finally:
                pack.reset()
                with self.lock:
                    self.free.append(pack)
                    self.lock.notify_all()

    def flush(self) -> None:
        """Write the open pack and wait until every pack is stored and indexed."""
        with self.lock:
            self._close()
        self.stop()
        self._raise()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.full.put(None)
            self.thread.join()


class _BackupSession:
    """One backup's shared state: the dedup claim set, the pack writer, and what this session adds to the index."""

    def __init__(self, repo: Repository, index: ChunkIndex, workers: int, retention: Retention | None) -> None:
        self.repo = repo
        self.index = index
        self.workers = workers
        self.retention = retention
        self.lock = threading.Lock()
        self.claimed: set[bytes] = set()
        self.writer: _PackWriter | None = None
        self.index_file = IndexFile(IndexFile.new_id())
        self.entries: list[Entry] = []
        self.written_packs: set[int] = set()
        self.reused_packs: set[int] = set()
        self.extended: dict[int, int] = {}

    def read(self, src: BlockSource, blocks: Sequence[int], tally: _Tally,
             on_result: Callable[[_BlockResult], None]) -> None:
        """Read, hash, dedup and store `blocks` of one disk on long-running worker threads (one reused block
        buffer each); results reach `on_result` in block order."""
        feed = iter(enumerate(blocks))
        feed_lock = threading.Lock()
        results: queue.SimpleQueue[tuple[int, _BlockResult | BaseException | None]] = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            buffer = aligned_buffer(BLOCK_SIZE)  # page-aligned: a source may read into it with direct I/O
            try:
                while not stop.is_set():
                    with feed_lock:
                        item = next(feed, None)
                    if item is None:
                        break
                    try:
                        results.put((item[0], self._process(src, item[1], buffer)))
                    except BaseException as exc:
                        results.put((item[0], exc))
                        break
            finally:
                results.put((-1, None))

        threads = [threading.Thread(target=work, name=f"snapkeep-backup-{i}", daemon=True)
                   for i in range(self.workers)]
        for thread in threads:
            thread.start()
        waiting: dict[int, _BlockResult] = {}
        following, running = 0, len(threads)
        error: BaseException | None = None
        try:
            while running:
                seq, outcome = results.get()
                if outcome is None:
                    running -= 1
                    continue
                if isinstance(outcome, BaseException):
                    error = error or outcome
                    stop.set()
                    continue
                if error is not None:
                    continue
                waiting[seq] = outcome
                while following in waiting:
                    result = waiting.pop(following)
                    following += 1
                    on_result(result)
                    tally.add(1, result.read, result.stored, zero=int(result.chunk_id is None),
                              new=int(result.new))
        except BaseException:
            stop.set()
            raise
        finally:
            for thread in threads:
                thread.join()
        if error is not None:
            raise error

    def _process(self, src: BlockSource, block: int, buffer: bytearray | mmap.mmap) -> _BlockResult:
        view = memoryview(buffer)
        length, digest = src.read_into(block, view)
        if is_zero(view[:length]):  # a view: an mmap buffer never compares equal to bytes
            return _BlockResult(block, None, length, 0, False)
        if digest is None:
            digest = hashlib.sha256(view[:length]).digest()
        chunk_id = self.repo.chunk_ids.from_digest(digest)
        with self.lock:
            location = self.index.lookup(chunk_id)
            if location is not None:
                self.reused_packs.add(location.pack_number)
                return _BlockResult(block, chunk_id, length, 0, False)
            if chunk_id in self.claimed:
                return _BlockResult(block, chunk_id, length, 0, False)
            self.claimed.add(chunk_id)
            if self.writer is None:
                self.writer = _PackWriter(self)
            writer = self.writer
        stored = writer.add(chunk_id, view[:length])
        return _BlockResult(block, chunk_id, length, stored, True)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Stop the writer thread (after an error too); nothing is left running."""
        if self.writer is not None:
            self.writer.stop()

    def store_pack(self, pack_id: bytes, data: memoryview, entries: list[PackEntry]) -> None:
        self.repo.store.put(pack_name(pack_id), data, retention=self.retention)
        retain = int(self.retention.until.timestamp()) if self.retention else 0
        self._indexed(pack_id, len(data), retain, entries)

    def _indexed(self, pack_id: bytes, size: int, retain: int, entries: list[PackEntry]) -> None:
        with self.lock:
            number = self.index.add_pack(pack_id, size, retain)
            self.written_packs.add(number)
            local = len(self.index_file.packs)
            self.index_file.packs.append(PackRecord(pack_id, size, retain))
            for entry in entries:
                self.index.add(entry.blob_id, number, entry.offset, entry.length, entry.raw_length)
                self.entries.append((entry.blob_id, local, entry.offset, entry.length, entry.raw_length))
                self.claimed.discard(entry.blob_id)

    def extend_retention(self, disks: list[Disk], parent: Manifest | None) -> None:
        """Make every pack the new image needs retained at least until its delete-after (S3 Object Lock)."""
        if self.retention is None:
            return
        until = int(self.retention.until.timestamp())
        needed = set(self.reused_packs)
        parent_covers = parent is not None and parent.delete_after is not None and \
            parent.delete_after >= self.retention.until
        for disk in disks:
            base = parent.disk(disk.name) if parent else None
            if base is not None and parent_covers:
                continue  # the parent's packs are retained at least as long already; new chunks were counted
            for chunk_id in disk.block_map.chunk_ids():
                location = self.index.lookup(chunk_id)
                if location is not None:
                    needed.add(location.pack_number)
        for number in sorted(needed - self.written_packs):
            if self.index.retain_until(number) >= until:
                continue
            pack_id = self.index.pack_id(number)
            self.repo.store.extend_retention(pack_name(pack_id), self.retention.until)
            self.index.set_retain_until(number, until)
            self.extended[number] = until

    def write_index(self) -> None:
        for number, until in sorted(self.extended.items()):
            self.index_file.packs.append(PackRecord(self.index.pack_id(number), self.index.pack_size(number), until))
        if self.index_file.packs:
            self.index_file.entries = self.entries
            self.repo.write_index_file(self.index_file, self.retention)
