"""Chunk ids are keyed BLAKE3 over the block's SHA-256; the zero test is exact."""

from __future__ import annotations

import hashlib
import mmap
import os

from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.imagestore.chunks import ChunkIdentifier, is_zero
from snapkeep.imagestore.format import BLOCK_SIZE

KEY = os.urandom(32)


def test_chunk_id_is_keyed_blake3_of_the_sha256() -> None:
    data = b"block content" * 1000
    digest = hashlib.sha256(data).digest()
    ids = ChunkIdentifier(KEY)
    assert ids.of(data) == blake3(digest, key=KEY).digest()
    assert ids.from_digest(digest) == ids.of(data)
    assert ids.of(data) != digest  # the plaintext hash is not the id


def test_another_repository_key_gives_other_ids() -> None:
    data = b"x" * 4096
    assert ChunkIdentifier(KEY).of(data) != ChunkIdentifier(os.urandom(32)).of(data)


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64))
def test_distinct_blocks_have_distinct_ids(a: bytes, b: bytes) -> None:
    ids = ChunkIdentifier(KEY)
    assert (ids.of(a) == ids.of(b)) == (a == b)


def test_is_zero() -> None:
    block = bytearray(BLOCK_SIZE)
    assert is_zero(block)
    block[-1] = 1
    assert not is_zero(block)
    assert is_zero(bytes(1000))
    assert not is_zero(bytes(999) + b"\x01")
    assert is_zero(b"")
    # Views (of an mmap, as the backup's page-aligned buffers are) and data longer than a block.
    buffer = mmap.mmap(-1, BLOCK_SIZE)
    assert is_zero(memoryview(buffer)) and is_zero(memoryview(buffer)[:4096])
    buffer[BLOCK_SIZE - 1] = 1
    assert not is_zero(memoryview(buffer)) and is_zero(memoryview(buffer)[:-1])
    assert is_zero(bytes(BLOCK_SIZE + 1)) and not is_zero(bytes(BLOCK_SIZE) + b"\x02")
