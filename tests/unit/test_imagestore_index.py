"""Index files and the compact in-memory ChunkIndex: round trips, lookups, supersession data, memory per chunk."""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.index import COUNT, ENTRY, PACK_RECORD, ChunkIndex, IndexFile, PackRecord


def sample_file(chunks: int = 10, packs: int = 2) -> IndexFile:
    index_file = IndexFile(IndexFile.new_id(), supersedes=[os.urandom(32)])
    for _ in range(packs):
        index_file.packs.append(PackRecord(os.urandom(32), 16 << 20, 1_800_000_000))
    for i in range(chunks):
        index_file.entries.append((os.urandom(32), i % packs, i * 1000, 900, 524288))
    return index_file


def test_index_file_round_trip() -> None:
    original = sample_file()
    decoded = IndexFile.decode(original.index_id, original.encode(), "index/x")
    assert decoded.packs == original.packs
    assert list(decoded.entries) == sorted(original.entries)
    assert decoded.entries[0] == sorted(original.entries)[0]
    assert len(decoded.entries) == 10
    assert decoded.supersedes == original.supersedes


def test_truncated_or_inconsistent_index_files_are_damage() -> None:
    data = sample_file().encode()
    with pytest.raises(DamagedObject):
        IndexFile.decode(b"x", data[:-5], "index/x")
    with pytest.raises(DamagedObject):
        IndexFile.decode(b"x", data + b"\0", "index/x")
    bad = IndexFile(b"x", [PackRecord(os.urandom(32), 1, 0)], [(os.urandom(32), 3, 0, 1, 1)])
    with pytest.raises(DamagedObject, match="beyond its pack table"):
        IndexFile.decode(b"x", bad.encode(), "index/x")


def test_load_lookup_and_pack_table() -> None:
    index_file = sample_file(chunks=50, packs=3)
    index = ChunkIndex()
    index.load(index_file)
    assert len(index) == 50
    assert index.pack_count == 3
    for chunk_id, pack, offset, length, raw in index_file.entries:
        location = index.lookup(chunk_id)
        assert location is not None
        assert location.pack_id == index_file.packs[pack].pack_id
        assert (location.offset, location.length, location.raw_length) == (offset, length, raw)
    assert index.lookup(os.urandom(32)) is None
    assert os.urandom(32) not in index


def test_a_pack_in_two_files_is_one_pack_with_the_longer_retention() -> None:
    pack = os.urandom(32)
    index = ChunkIndex()
    index.load(IndexFile(b"a", [PackRecord(pack, 10, 100)], [(os.urandom(32), 0, 0, 50, 60)]))
    index.load(IndexFile(b"b", [PackRecord(pack, 10, 500)], []))
    index.load(IndexFile(b"c", [PackRecord(pack, 10, 300)], []))
    assert index.pack_count == 1
    assert index.retain_until(0) == 500


def test_add_keeps_order_and_refuses_duplicates() -> None:
    index = ChunkIndex()
    number = index.add_pack(os.urandom(32), 100)
    ids = [os.urandom(32) for _ in range(300)]
    for i, chunk_id in enumerate(ids):
        assert index.add(chunk_id, number, i, 10, 20)
    assert not index.add(ids[5], number, 999, 1, 1)
    assert index.lookup(ids[5]).offset == 5  # type: ignore[union-attr]
    assert [r[0] for r in index.records()] == sorted(ids)
    assert len(index) == 300


def test_duplicate_ids_across_files_keep_one_record() -> None:
    chunk = os.urandom(32)
    index = ChunkIndex()
    index.load(IndexFile(b"a", [PackRecord(os.urandom(32), 10, 0)], [(chunk, 0, 0, 50, 60)]))
    index.load(IndexFile(b"b", [PackRecord(os.urandom(32), 10, 0)], [(chunk, 0, 7, 50, 60)]))
    assert len(index) == 1
    assert index.lookup(chunk) is not None


def test_drop_packs_forgets_their_chunks() -> None:
    index_file = sample_file(chunks=40, packs=2)
    index = ChunkIndex()
    index.load(index_file)
    index.drop_packs([0])
    assert len(index) == 20
    for chunk_id, pack, *_ in index_file.entries:
        assert (chunk_id in index) == (pack == 1)


@settings(max_examples=30, deadline=None)
@given(st.sets(st.binary(min_size=32, max_size=32), max_size=200), st.sets(st.binary(min_size=32, max_size=32),
                                                                             max_size=20))
def test_lookup_finds_exactly_what_was_added(present: set[bytes], probes: set[bytes]) -> None:
    index = ChunkIndex()
    number = index.add_pack(b"p" * 32, 1)
    half = sorted(present)[: len(present) // 2]
    index.load(IndexFile(b"i", [PackRecord(b"p" * 32, 1, 0)], [(c, 0, 0, 1, 1) for c in half]))
    for chunk_id in sorted(present)[len(present) // 2:]:
        index.add(chunk_id, number, 0, 1, 1)
    for chunk_id in present | probes:
        assert (index.lookup(chunk_id) is not None) == (chunk_id in present)
    assert len(index) == len(present)


def test_memory_grows_by_at_most_64_bytes_per_unique_chunk() -> None:
    count = 200_000
    per_pack = 32  # a 16 MiB pack holds about 32 incompressible 512 KiB chunks; more when they compress
    index_file = IndexFile(IndexFile.new_id())
    index_file.packs = [PackRecord(os.urandom(32), 16 << 20, 0) for _ in range(count // per_pack)]
    ids = os.urandom(32 * count)
    index_file.entries = [(ids[i * 32:i * 32 + 32], i // per_pack, (i % per_pack) * 530_000, 524_324, 524_288)
                          for i in range(count)]
    encoded = index_file.encode()
    del index_file, ids
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        index = ChunkIndex()
        index.load(IndexFile.decode(b"i" * 32, encoded, "index/i"))
        assert len(index) == count
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_chunk = (after - before) / count
    assert per_chunk <= 64, f"{per_chunk:.1f} bytes per chunk"
    # While loading, no per-entry objects pile up: the transient peak stays within twice the bound.
    assert (peak - before) / count <= 128, f"peak {(peak - before) / count:.1f} bytes per chunk"
    probe = next(index.records())
    assert index.lookup(probe[0]) is not None


def _encoded_without_sorting(index_file: IndexFile) -> bytes:
    """What a writer that forgot to sort (or wrote an id twice) would store."""
    return b"".join([COUNT.pack(len(index_file.packs)), *(PACK_RECORD.pack(*p) for p in index_file.packs),
                     COUNT.pack(len(index_file.entries)), *(ENTRY.pack(*e) for e in index_file.entries),
                     COUNT.pack(0)])


def test_entries_out_of_order_or_twice_are_damage() -> None:
    pack = PackRecord(os.urandom(32), 1, 0)
    low, high = b"\x01" * 32, b"\x02" * 32
    for entries in ([(high, 0, 0, 1, 1), (low, 0, 1, 1, 1)], [(low, 0, 0, 1, 1), (low, 0, 1, 1, 1)]):
        data = _encoded_without_sorting(IndexFile(b"x", [pack], entries))
        with pytest.raises(DamagedObject, match="not in ascending chunk id order"):
            IndexFile.decode(b"x", data, "index/x")
    in_order = _encoded_without_sorting(IndexFile(b"x", [pack], [(low, 0, 0, 1, 1), (high, 0, 1, 1, 1)]))
    assert len(IndexFile.decode(b"x", in_order, "index/x").entries) == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3),
                          st.sampled_from([b"\x00\x00", b"\x80\x00", b"\x80\x0f", b"\xff\xff", b"\x12\x34"])),
                min_size=1, max_size=6))
def test_decoded_files_load_as_their_entries_would(files: list[tuple[int, int, bytes]]) -> None:
    """The bulk load of decoded (sorted) files gives the same index as adding their entries one by one: packs
    renumbered across files, shared packs, ids in several files (one record kept), crowded and empty buckets
    (ids drawn from few prefixes so that files share buckets, small pieces going into place and large ones
    appended), the first and the last bucket."""
    shared_pack = PackRecord(b"\xaa" * 32, 100, 0)
    decoded, plain = ChunkIndex(), ChunkIndex()
    seen: list[bytes] = []
    for count, packs, prefix in files:
        index_file = IndexFile(IndexFile.new_id(), [shared_pack] + [PackRecord(os.urandom(32), 10, 0)
                                                                    for _ in range(packs - 1)])
        chunk_ids = {prefix + os.urandom(30) for _ in range(count)} | {b"\xff" * 32, b"\x00" * 32}
        chunk_ids |= set(seen[:3])  # some ids again, from earlier files
        index_file.entries = [(chunk_id, i % packs, i * 7, 5, 9) for i, chunk_id in enumerate(sorted(chunk_ids))]
        seen.extend(sorted(chunk_ids))
        decoded.load(IndexFile.decode(index_file.index_id, index_file.encode(), "index/x"))
        plain.load(index_file)  # a list of entries: the one-by-one path
    assert list(decoded.records()) == list(plain.records())
    assert list(decoded.packs()) == list(plain.packs())
    assert len(decoded) == len(set(seen))
    for chunk_id in seen:
        assert decoded.lookup(chunk_id) == plain.lookup(chunk_id)


def test_a_small_file_goes_into_place_in_sorted_buckets() -> None:
    """A few new ids in a bucket that holds others go between them: first, middle and last, with the bucket left
    sorted and every id found."""
    pack = PackRecord(os.urandom(32), 10, 0)
    big = IndexFile(b"a", [pack], [(bytes([0x80, i]) + os.urandom(30), 0, i, 1, 1) for i in range(0, 15, 2)])
    small = IndexFile(b"b", [pack], [(bytes([0x80, i]) + os.urandom(30), 0, i, 2, 2) for i in (1, 7, 14)])
    index = ChunkIndex()
    for index_file in (big, small):
        index.load(IndexFile.decode(index_file.index_id, index_file.encode(), "index/x"))
    ids = [record[0] for record in index.records()]
    assert ids == sorted(chunk_id for chunk_id, *_ in big.entries + small.entries)
    assert all(index.lookup(chunk_id) is not None for chunk_id in ids)
