"""Packs: blobs plus an encrypted header at the end; named by the hash of their bytes; header found from the tail."""

from __future__ import annotations

import itertools
import os

import pytest
from blake3 import blake3

from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import BlobCodec, BlobType
from snapkeep.imagestore.packs import PackBuilder, header_from_pack, parse_header

CODEC = BlobCodec(os.urandom(32))


def build(count: int = 5) -> tuple[bytes, bytearray, list[tuple[bytes, bytes]]]:
    builder = PackBuilder()
    blobs = []
    for i in range(count):
        chunk_id = os.urandom(32)
        data = (b"text %d " % i) * 2000 if i % 2 else os.urandom(3000)
        builder.add(chunk_id, BlobType.CHUNK, CODEC.seal(BlobType.CHUNK, chunk_id, data), len(data))
        blobs.append((chunk_id, data))
    pack_id, pack, _ = builder.finish(CODEC)
    return pack_id, pack, blobs


def test_header_lists_every_blob_and_each_opens() -> None:
    pack_id, pack, blobs = build()
    assert pack_id == blake3(pack).digest()
    entries = header_from_pack(CODEC, memoryview(pack), "data/p")
    assert [e.blob_id for e in entries] == [b[0] for b in blobs]
    for entry, (chunk_id, data) in zip(entries, blobs, strict=True):
        assert entry.raw_length == len(data)
        sealed = pack[entry.offset:entry.offset + entry.length]
        assert CODEC.open(BlobType.CHUNK, chunk_id, bytes(sealed), where="t") == data
    assert entries[0].offset == 0
    assert all(a.offset + a.length == b.offset for a, b in itertools.pairwise(entries))


def test_builder_is_reusable_after_finish() -> None:
    builder = PackBuilder()
    builder.add(b"a" * 32, BlobType.CHUNK, CODEC.seal(BlobType.CHUNK, b"a" * 32, b"x"), 1)
    builder.finish(CODEC)
    assert len(builder) == 0
    assert builder.size == 0


def test_header_from_the_tail_only() -> None:
    _, pack, _blobs = build(40)
    tail = bytes(pack[-4096:])
    entries = parse_header(CODEC, tail, len(pack), "data/p")
    assert len(entries) == 40


def test_damaged_trailer_or_header_is_reported() -> None:
    _, pack, _ = build()
    broken = bytearray(pack)
    broken[-1] ^= 0x40
    with pytest.raises(DamagedObject):
        header_from_pack(CODEC, memoryview(broken), "data/p")
    broken = bytearray(pack)
    broken[-10] ^= 0x01
    with pytest.raises(DamagedObject, match="pack header"):
        header_from_pack(CODEC, memoryview(broken), "data/p")
    with pytest.raises(DamagedObject, match="too short"):
        header_from_pack(CODEC, memoryview(b"abc"), "data/p")
