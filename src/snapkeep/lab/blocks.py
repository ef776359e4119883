"""Sparse 512 KiB block maps: the data the lab gives EBS volumes and snapshots.

A volume of a few GiB with a handful of written blocks costs a handful of `bytes` objects. Snapshots copy the
map (a dict copy that shares the immutable block bytes), so freezing a volume is cheap and point-in-time.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping

BLOCK_SIZE = 524288
"""Bytes per block: what the EBS direct APIs report as BlockSize."""

GIB = 1024**3
BLOCKS_PER_GIB = GIB // BLOCK_SIZE

ZERO_BLOCK = bytes(BLOCK_SIZE)

CHECKSUM_ALGORITHM = "SHA256"


def sha256_b64(data: bytes) -> str:
    """AWS's x-amz-Checksum for ChecksumAlgorithm SHA256: the base64 of the raw SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def block_count(size_gib: int) -> int:
    """How many block indexes a volume of `size_gib` GiB has."""
    return size_gib * BLOCKS_PER_GIB


class BlockMap:
    """Sparse map of block index -> exactly BLOCK_SIZE bytes; unwritten blocks read as zeros.

    Not thread-safe by itself: the lab serialises writers with one lock. Digests are cached in a dict that
    copies share while their content is the same (a write gives the writer a fresh one), so a snapshot, its
    copies and the volumes restored from it are hashed once between them.
    """

    __slots__ = ("_blocks", "_digests", "_version")

    def __init__(self, blocks: Mapping[int, bytes] | None = None) -> None:
        self._blocks: dict[int, bytes] = dict(blocks) if blocks else {}
        self._digests: dict[int, str] = {}
        self._version = 0
        for index, data in self._blocks.items():
            _check_block(index, data)

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, index: object) -> bool:
        return index in self._blocks

    @property
    def version(self) -> int:
        """Bumped by every write: a digest computed on a copy is remembered only if nothing changed since."""
        return self._version

    def cached_digest(self, size_bytes: int) -> str | None:
        return self._digests.get(size_bytes)

    def remember_digest(self, size_bytes: int, digest: str, version: int) -> None:
        if version == self._version:
            self._digests[size_bytes] = digest

    def get(self, index: int) -> bytes | None:
        return self._blocks.get(index)

    def indexes(self) -> list[int]:
        """Written block indexes in ascending order."""
        return sorted(self._blocks)

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(index, data) in ascending index order."""
        for index in self.indexes():
            yield index, self._blocks[index]

    def copy(self) -> BlockMap:
        """A copy that shares the block bytes (immutable), so it costs one dict copy."""
        clone = BlockMap()
        clone._blocks = dict(self._blocks)
        clone._digests = self._digests
        return clone

    def put(self, index: int, data: bytes) -> None:
        """Replace one whole block."""
        _check_block(index, data)
        self._blocks[index] = bytes(data)
        self._changed()

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` at byte `offset`, read-modify-writing the partial blocks at either end."""
        if offset < 0:
            raise ValueError(f"offset: must be >= 0, got {offset}")
        position = 0
        while position < len(data):
            absolute = offset + position
            index, within = divmod(absolute, BLOCK_SIZE)
            take = min(BLOCK_SIZE - within, len(data) - position)
            chunk = data[position : position + take]
            if take == BLOCK_SIZE:
                block = bytes(chunk)
            else:
                current = bytearray(self._blocks.get(index, ZERO_BLOCK))
                current[within : within + take] = chunk
                block = bytes(current)
            self._blocks[index] = block
            position += take
        if data:
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._digests = {}

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from byte `offset`, zeros where nothing was written."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        out = bytearray()
        position = offset
        end = offset + length
        while position < end:
            index, within = divmod(position, BLOCK_SIZE)
            take = min(BLOCK_SIZE - within, end - position)
            block = self._blocks.get(index)
            out += block[within : within + take] if block is not None else bytes(take)
            position += take
        return bytes(out)

    def digest(self, size_bytes: int) -> str:
        """Hex SHA-256 of the first `size_bytes` bytes as if read end to end, zeros where unwritten.

        Zero runs are hashed from one shared zero block, so nothing of the volume's size is allocated.
        """
        cached = self._digests.get(size_bytes)
        if cached is not None:
            return cached
        hasher = hashlib.sha256()
        full_blocks, tail = divmod(size_bytes, BLOCK_SIZE)
        zero_view = memoryview(ZERO_BLOCK)
        next_index = 0
        for index in self.indexes():
            if index >= full_blocks:
                break
            for _ in range(index - next_index):
                hasher.update(zero_view)
            hasher.update(self._blocks[index])
            next_index = index + 1
        for _ in range(full_blocks - next_index):
            hasher.update(zero_view)
        if tail:
            last = self._blocks.get(full_blocks)
            hasher.update(last[:tail] if last is not None else bytes(tail))
        result = hasher.hexdigest()
        self._digests[size_bytes] = result
        return result


def _check_block(index: int, data: bytes) -> None:
    if index < 0:
        raise ValueError(f"block index: must be >= 0, got {index}")
    if len(data) != BLOCK_SIZE:
        raise ValueError(f"block {index}: must be exactly {BLOCK_SIZE} bytes, got {len(data)}")
