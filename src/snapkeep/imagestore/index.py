"""Index files (where each chunk lives) and the compact in-memory index built from them.

Each backup session writes one index file listing the packs it wrote (or whose retention it extended) and the
chunks in them. Loaded, all index files become one ChunkIndex: 4096 buckets (by the id's first 12 bits) of
sorted 48-byte records in bytearrays, about 50 bytes per unique chunk, where a dict of bytes would cost ~200.
An index file may supersede others (a rewrite by gc or rebuild_index); superseded files are ignored on load.
"""

from __future__ import annotations

import bisect
import operator
import os
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from snapkeep.imagestore.errors import DamagedObject

INDEX_ID_SIZE = 32
COUNT = struct.Struct("<I")
PACK_RECORD = struct.Struct("<32sQq")
"""pack id, pack size in bytes, retain-until (Unix seconds, 0 = none)."""
ENTRY = struct.Struct("<32sIIII")
"""chunk id, pack number (in the file's pack table), offset, length, raw length."""
RECORD = ENTRY
"""In memory the same layout, with the pack number global to the ChunkIndex."""
BUCKET_BITS = 12
_ID = 32
_ID_ONLY = struct.Struct(f"<{_ID}s{ENTRY.size - _ID}x")
_WORDS = ENTRY.size // 4
"""An entry is 12 little-endian u32 words; the pack number is word 8, after the id."""
_PACK_WORD = _ID // 4
_LITTLE_ENDIAN = sys.byteorder == "little"
_INSERT_AT_MOST = 8
"""A bucket gaining at most this many records from another file takes them into place (a small incremental's
file); more are appended and the bucket sorted at the first lookup."""


class PackRecord(NamedTuple):
    pack_id: bytes
    size: int
    retain_until: int


Entry = tuple[bytes, int, int, int, int]


class _EncodedEntries(Sequence[Entry]):
    """The entries of a decoded index file, read from its bytes on demand: loading a file costs no per-entry
    objects beyond the one being copied into the ChunkIndex."""

    def __init__(self, view: memoryview) -> None:
        self._view = view

    def __len__(self) -> int:
        return len(self._view) // ENTRY.size

    def __getitem__(self, i: int) -> Entry:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        result: Entry = ENTRY.unpack_from(self._view, (i % len(self)) * ENTRY.size)
        return result

    def __iter__(self) -> Iterator[Entry]:
        return ENTRY.iter_unpack(self._view)

    @property
    def raw(self) -> memoryview:
        """The entries as stored: sorted by chunk id (`IndexFile.decode` checked), each id once."""
        return self._view


def _strictly_ascending(raw: memoryview) -> bool:
    """True when the entries' chunk ids ascend strictly (sorted, none twice): compared pairwise in C, with no list
    of a million ids built for it."""
    following = _ID_ONLY.iter_unpack(raw)
    next(following, None)
    return all(map(operator.lt, _ID_ONLY.iter_unpack(raw), following))


def _pack_numbers(raw: memoryview) -> array[int]:
    """Every entry's pack number, read in C (a copy of the entries as u32 words)."""
    words = array("I")
    words.frombytes(raw)
    if not _LITTLE_ENDIAN:
        words.byteswap()
    return words[_PACK_WORD::_WORDS]


@dataclass
class IndexFile:
    index_id: bytes
    packs: list[PackRecord] = field(default_factory=list)
    entries: Sequence[Entry] = field(default_factory=list)
    supersedes: list[bytes] = field(default_factory=list)

    @staticmethod
    def new_id() -> bytes:
        return os.urandom(INDEX_ID_SIZE)

    def encode(self) -> bytes:
        parts = [COUNT.pack(len(self.packs))]
        parts += [PACK_RECORD.pack(*p) for p in self.packs]
        parts.append(COUNT.pack(len(self.entries)))
        parts += [ENTRY.pack(*e) for e in sorted(self.entries)]
        parts.append(COUNT.pack(len(self.supersedes)))
        parts += self.supersedes
        return b"".join(parts)

    @staticmethod
    def decode(index_id: bytes, data: bytes, where: str) -> IndexFile:
        try:
            view = memoryview(data)
            (pack_count,), pos = COUNT.unpack_from(view, 0), COUNT.size
            end = pos + pack_count * PACK_RECORD.size
            packs = [PackRecord(*r) for r in PACK_RECORD.iter_unpack(view[pos:end])]
            (entry_count,), pos = COUNT.unpack_from(view, end), end + COUNT.size
            end = pos + entry_count * ENTRY.size
            entries = _EncodedEntries(view[pos:end])
            (superseded,), pos = COUNT.unpack_from(view, end), end + COUNT.size
            end = pos + superseded * INDEX_ID_SIZE
            supersedes = [bytes(view[i:i + INDEX_ID_SIZE]) for i in range(pos, end, INDEX_ID_SIZE)]
        except struct.error as exc:
            raise DamagedObject(where, f"index is truncated: {exc}") from None
        if end != len(data) or len(supersedes) != superseded or len(entries) != entry_count:
            raise DamagedObject(where, "index sizes do not add up to its length")
        if entry_count and max(_pack_numbers(entries.raw)) >= pack_count:
            raise DamagedObject(where, "an index entry names a pack number beyond its pack table")
        if not _strictly_ascending(entries.raw):
            raise DamagedObject(where, "its entries are not in ascending chunk id order, each id once")
        return IndexFile(index_id, packs, entries, supersedes)


class Location(NamedTuple):
    pack_id: bytes
    pack_number: int
    offset: int
    length: int
    raw_length: int


class _Ids(Sequence[bytes]):
    """The ids of a bucket's records as a sequence, for bisect (no copy of the bucket)."""

    def __init__(self, bucket: bytearray) -> None:
        self._bucket = bucket

    def __len__(self) -> int:
        return len(self._bucket) // RECORD.size

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        start = i * RECORD.size
        return bytes(self._bucket[start:start + _ID])


class ChunkIndex:
    """Chunk id → (pack, offset, length, raw length). Not thread-safe: the repository serialises access."""

    def __init__(self) -> None:
        self._buckets = [bytearray() for _ in range(1 << BUCKET_BITS)]
        self._unsorted: set[int] = set()
        self._count = 0
        self._pack_ids: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._pack_sizes = array("Q")
        self._pack_retain = array("q")

    # --- packs -----------------------------------------------------------------------------------------------

    def add_pack(self, pack_id: bytes, size: int, retain_until: int = 0) -> int:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = len(self._pack_ids)
            self._pack_ids.append(pack_id)
            self._pack_numbers[pack_id] = number
            self._pack_sizes.append(size)
            self._pack_retain.append(retain_until)
        elif retain_until > self._pack_retain[number]:
            self._pack_retain[number] = retain_until
        return number

    def pack_number(self, pack_id: bytes) -> int | None:
        return self._pack_numbers.get(pack_id)

    def pack_id(self, number: int) -> bytes:
        return self._pack_ids[number]

    def pack_size(self, number: int) -> int:
        return self._pack_sizes[number]

    def retain_until(self, number: int) -> int:
        return self._pack_retain[number]

    def set_retain_until(self, number: int, until: int) -> None:
        self._pack_retain[number] = max(self._pack_retain[number], until)

    @property
    def pack_count(self) -> int:
        return len(self._pack_ids)

    def packs(self) -> Iterator[PackRecord]:
        for number, pack_id in enumerate(self._pack_ids):
            yield PackRecord(pack_id, self._pack_sizes[number], self._pack_retain[number])

    # --- chunks ----------------------------------------------------------------------------------------------

    def load(self, index_file: IndexFile) -> None:
        """Add every pack and entry of an index file (bulk: a bucket that gains records from a second file is
        sorted once, at the first lookup)."""
        numbers = [self.add_pack(*p) for p in index_file.packs]
        entries = index_file.entries
        if isinstance(entries, _EncodedEntries) and _LITTLE_ENDIAN:
            self._load_sorted(entries.raw, numbers)
        else:
            for chunk_id, pack, offset, length, raw_length in entries:
                bucket = _bucket_of(chunk_id)
                self._buckets[bucket] += RECORD.pack(chunk_id, numbers[pack], offset, length, raw_length)
                self._unsorted.add(bucket)
        self._count = -1

    def _load_sorted(self, raw: memoryview, numbers: list[int]) -> None:
        """A decoded file's entries are already records in id order: each bucket gets its slice, found by
        bisecting the ids' first 16 bits, with the pack numbers renumbered through a word view (no object per
        entry, and no second copy of the file)."""
        heads = _heads(raw)
        renumber = numbers != list(range(len(numbers)))
        shift = 16 - BUCKET_BITS
        start, count = 0, len(heads)
        while start < count:
            number = heads[start] >> shift
            end = bisect.bisect_left(heads, (number + 1) << shift, lo=start)
            piece = bytearray(raw[start * RECORD.size:end * RECORD.size])
            if renumber:
                words = memoryview(piece).cast("I")
                words[_PACK_WORD::_WORDS] = array("I", map(numbers.__getitem__, words[_PACK_WORD::_WORDS]))
                words.release()
            if number in self._unsorted:
                self._buckets[number] += piece
            elif not self._buckets[number]:
                self._buckets[number] = piece  # sorted, each id once: as decode checked
            elif end - start <= _INSERT_AT_MOST:  # a small backup's few records: into place, the bucket stays sorted
                for offset in range(0, len(piece), RECORD.size):
                    self._insert(number, bytes(piece[offset:offset + RECORD.size]))
            else:
                self._buckets[number] += piece
                self._unsorted.add(number)
            start = end

    def _insert(self, number: int, record: bytes) -> None:
        """Put one record into its sorted bucket; of two records for one id the smaller stays, as `_sort` keeps."""
        bucket = self._buckets[number]
        ids = _Ids(bucket)
        position = bisect.bisect_left(ids, record[:_ID])
        start = position * RECORD.size
        if position < len(ids) and ids[position] == record[:_ID]:
            if record < bucket[start:start + RECORD.size]:
                bucket[start:start + RECORD.size] = record
            return
        bucket[start:start] = record

    def add(self, chunk_id: bytes, pack_number: int, offset: int, length: int, raw_length: int) -> bool:
        """Insert one chunk in order; False (and nothing changed) when the id is already indexed."""
        self._sort()
        bucket = self._buckets[_bucket_of(chunk_id)]
        ids = _Ids(bucket)
        position = bisect.bisect_left(ids, chunk_id)
        if position < len(ids) and ids[position] == chunk_id:
            return False
        start = position * RECORD.size
        bucket[start:start] = RECORD.pack(chunk_id, pack_number, offset, length, raw_length)
        if self._count >= 0:
            self._count += 1
        return True

    def lookup(self, chunk_id: bytes) -> Location | None:
        self._sort()
        bucket = self._buckets[_bucket_of(chunk_id)]
        ids = _Ids(bucket)
        position = bisect.bisect_left(ids, chunk_id)
        if position == len(ids) or ids[position] != chunk_id:
            return None
        _, pack, offset, length, raw_length = RECORD.unpack_from(bucket, position * RECORD.size)
        return Location(self._pack_ids[pack], pack, offset, length, raw_length)

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, bytes) and self.lookup(chunk_id) is not None

    def __len__(self) -> int:
        self._sort()
        if self._count < 0:
            self._count = sum(len(b) for b in self._buckets) // RECORD.size
        return self._count

    def records(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        """Every (chunk id, pack number, offset, length, raw length), in id order."""
        self._sort()
        for bucket in self._buckets:
            yield from RECORD.iter_unpack(bucket)

    def drop_packs(self, numbers: Iterable[int]) -> None:
        """Forget every chunk stored in these packs (after gc deleted them)."""
        doomed = set(numbers)
        self._sort()
        for i, bucket in enumerate(self._buckets):
            kept = [r for r in RECORD.iter_unpack(bucket) if r[1] not in doomed]
            if len(kept) != len(bucket) // RECORD.size:
                self._buckets[i] = bytearray(b"".join(RECORD.pack(*r) for r in kept))
        self._count = -1

    def _sort(self) -> None:
        """Sort the buckets bulk loading appended to; when an id is there twice, keep one record."""
        if not self._unsorted:
            return
        size = RECORD.size
        for number in self._unsorted:
            bucket = self._buckets[number]
            records = sorted(bytes(bucket[i:i + size]) for i in range(0, len(bucket), size))
            unique = [r for j, r in enumerate(records) if j == 0 or r[:_ID] != records[j - 1][:_ID]]
            self._buckets[number] = bytearray(b"".join(unique))
        self._unsorted.clear()
        self._count = -1


def _heads(records: memoryview) -> array[int]:
    """The first 16 bits of every record's id as numbers (in id order when the records are), gathered in C."""
    pairs = bytearray(2 * (len(records) // RECORD.size))
    pairs[0::2] = records[0::RECORD.size]
    pairs[1::2] = records[1::RECORD.size]
    heads = array("H")
    heads.frombytes(pairs)
    if _LITTLE_ENDIAN:
        heads.byteswap()  # the id's bytes are big-endian: its first byte is the high one
    return heads


def _bucket_of(chunk_id: bytes) -> int:
    return int.from_bytes(chunk_id[:2], "big") >> (16 - BUCKET_BITS)
