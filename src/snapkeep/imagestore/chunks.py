"""Chunk ids: keyed BLAKE3 over the block's SHA-256 digest, and the all-zero test.

Hashing the 32-byte SHA-256 digest rather than the block lets the EBS path reuse the checksum GetSnapshotBlock
returns (one hash pass per block instead of two), and the local path computes SHA-256 once with SHA-NI. The key,
derived from the master key, keeps ids from confirming guesses about content: a plaintext hash never appears in
the repository.
"""

from __future__ import annotations

import hashlib

from blake3 import blake3

from snapkeep.imagestore.format import ZERO_BLOCK

CHUNK_ID_SIZE = 32


class ChunkIdentifier:
    def __init__(self, chunk_id_key: bytes) -> None:
        if len(chunk_id_key) != 32:
            raise ValueError("the chunk-id key must be 32 bytes")
        self._key = chunk_id_key

    def from_digest(self, sha256_digest: bytes) -> bytes:
        """The chunk id of a block whose SHA-256 is already known (the EBS checksum, verified)."""
        if len(sha256_digest) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        return blake3(sha256_digest, key=self._key).digest()

    def of(self, data: bytes | bytearray | memoryview) -> bytes:
        return self.from_digest(hashlib.sha256(data).digest())


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when every byte is zero: a C comparison (memcmp) against the preallocated zero block, never a per-byte
    Python loop, and no copy of the block (`bytes.startswith` takes any buffer; comparing a memoryview with `==`
    goes element by element, 100x slower)."""
    if len(data) <= len(ZERO_BLOCK):
        return ZERO_BLOCK.startswith(data)
    return bytes(data).count(0) == len(data)
