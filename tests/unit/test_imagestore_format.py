"""The envelope every stored blob wears: round trips, the compression flag, and that every byte is authenticated."""

from __future__ import annotations

import os

import pytest

from snapkeep.imagestore.errors import DamagedObject, UnsupportedFormat
from snapkeep.imagestore.format import (
    ENVELOPE_OVERHEAD,
    HEADER,
    MAGIC,
    BlobCodec,
    BlobType,
    Compression,
    envelope_type,
    hex_id_from_name,
    pack_id_from_name,
    pack_name,
)

KEY = bytes(range(32))
CHUNK_ID = bytes(32 * [7])


def codec() -> BlobCodec:
    return BlobCodec(KEY)


def test_compressible_payload_is_stored_zstd_and_round_trips() -> None:
    data = b"the same sentence again and again. " * 3000
    sealed = codec().seal(BlobType.CHUNK, CHUNK_ID, data)
    assert sealed[:4] == MAGIC
    assert sealed[6] == Compression.ZSTD
    assert len(sealed) < len(data) // 10
    assert codec().open(BlobType.CHUNK, CHUNK_ID, sealed, where="t") == data


def test_incompressible_payload_is_stored_raw_with_the_flag_saying_so() -> None:
    data = os.urandom(64 * 1024)
    sealed = codec().seal(BlobType.CHUNK, CHUNK_ID, data)
    assert sealed[6] == Compression.NONE
    assert len(sealed) == len(data) + ENVELOPE_OVERHEAD
    assert codec().open(BlobType.CHUNK, CHUNK_ID, sealed, where="t") == data


def test_accepts_buffers_and_empty_payloads() -> None:
    data = bytearray(b"abc" * 100)
    assert codec().open(BlobType.INDEX, b"i", codec().seal(BlobType.INDEX, b"i", memoryview(data)), where="t") == data
    assert codec().open(BlobType.LOCK, b"l", codec().seal(BlobType.LOCK, b"l", b""), where="t") == b""


def test_every_envelope_byte_flipped_is_detected() -> None:
    for data in (b"compressible " * 40, os.urandom(200)):
        sealed = codec().seal(BlobType.MANIFEST, b"image-id", data)
        for position in range(len(sealed)):
            damaged = bytearray(sealed)
            damaged[position] ^= 0x01
            with pytest.raises(DamagedObject):
                codec().open(BlobType.MANIFEST, b"image-id", bytes(damaged), where="images/x")


def test_a_blob_presented_under_another_id_or_type_or_key_fails() -> None:
    sealed = codec().seal(BlobType.CHUNK, CHUNK_ID, b"payload")
    with pytest.raises(DamagedObject, match="authentication failed"):
        codec().open(BlobType.CHUNK, bytes(32), sealed, where="moved")
    with pytest.raises(DamagedObject, match="blob type 1"):
        codec().open(BlobType.INDEX, CHUNK_ID, sealed, where="retyped")
    with pytest.raises(DamagedObject, match="authentication failed"):
        BlobCodec(bytes(32)).open(BlobType.CHUNK, CHUNK_ID, sealed, where="other key")


def test_truncated_and_foreign_objects_are_damage() -> None:
    sealed = codec().seal(BlobType.CHUNK, CHUNK_ID, b"payload")
    with pytest.raises(DamagedObject, match="shorter"):
        codec().open(BlobType.CHUNK, CHUNK_ID, sealed[:ENVELOPE_OVERHEAD - 1], where="t")
    with pytest.raises(DamagedObject, match="bad magic"):
        codec().open(BlobType.CHUNK, CHUNK_ID, b"PK\x03\x04" + sealed[4:], where="t")
    assert envelope_type(sealed) == BlobType.CHUNK
    assert envelope_type(b"nope") is None


def test_a_newer_format_version_asks_for_a_newer_reader() -> None:
    sealed = bytearray(codec().seal(BlobType.CHUNK, CHUNK_ID, b"payload"))
    sealed[:HEADER.size] = HEADER.pack(MAGIC, 2, BlobType.CHUNK, 0, 0)
    with pytest.raises(UnsupportedFormat, match="version 2"):
        codec().open(BlobType.CHUNK, CHUNK_ID, bytes(sealed), where="t")


def test_each_seal_uses_a_fresh_nonce() -> None:
    one, two = (codec().seal(BlobType.CHUNK, CHUNK_ID, b"same") for _ in range(2))
    assert one[8:20] != two[8:20]
    assert one != two


def test_object_names() -> None:
    pack_id = bytes(range(32))
    name = pack_name(pack_id)
    assert name == f"data/00/{pack_id.hex()}"
    assert pack_id_from_name(name) == pack_id
    assert pack_id_from_name(f"data/01/{pack_id.hex()}") is None  # wrong directory
    assert pack_id_from_name("data/00/xyz") is None
    assert hex_id_from_name("index/" + "ab" * 32, "index/", 32) == bytes([0xAB]) * 32
    assert hex_id_from_name("index/abc", "index/", 32) is None
    assert hex_id_from_name("index/" + "zz" * 32, "index/", 32) is None
