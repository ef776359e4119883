"""Packs: many sealed blobs in one object, sized for S3 request costs, with an encrypted header at the end.

    blob envelope 0 | blob envelope 1 | ... | header envelope | header envelope length (u32 LE)

The header lists (id, type, offset, length, raw length) of every blob, so the index can be rebuilt from the
packs alone. A pack is named by the BLAKE3 hash of all its bytes, so any changed byte shows without a key.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from blake3 import blake3

from snapkeep.blobstores.base import BlobStore
from snapkeep.blobstores.local import aligned_buffer
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import BLOCK_SIZE, ENVELOPE_OVERHEAD, PACK_HEADER_ID, BlobCodec, BlobType

PACK_ENTRY = struct.Struct("<32sBIII")
TRAILER = struct.Struct("<I")
MAX_PACK_SIZE = 2**32 - 1
TAIL_GUESS = 64 * 1024
"""Bytes read from a pack's end to find its header in one request (most headers are a few KiB)."""


@dataclass(frozen=True)
class PackEntry:
    blob_id: bytes
    blob_type: int
    offset: int
    length: int
    raw_length: int


def pack_id_of(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data).digest()


class PackBuilder:
    """Collects sealed blobs for one pack. Not thread-safe: the repository's pack writer serialises `add`."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._entries: list[PackEntry] = []

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def entries(self) -> list[PackEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, blob_id: bytes, blob_type: BlobType, envelope: bytes, raw_length: int) -> PackEntry:
        entry = PackEntry(blob_id, int(blob_type), len(self._data), len(envelope), raw_length)
        if entry.offset + entry.length > MAX_PACK_SIZE:
            raise ValueError("a pack cannot exceed 4 GiB")
        self._data += envelope
        self._entries.append(entry)
        return entry

    def finish(self, codec: BlobCodec) -> tuple[bytes, bytearray, list[PackEntry]]:
        """The pack's id, bytes and entries; the builder is empty afterwards."""
        header = b"".join(PACK_ENTRY.pack(e.blob_id, e.blob_type, e.offset, e.length, e.raw_length)
                          for e in self._entries)
        sealed = codec.seal(BlobType.PACK_HEADER, PACK_HEADER_ID, header)
        data, entries = self._data, self._entries
        data += sealed
        data += TRAILER.pack(len(sealed))
        self._data, self._entries = bytearray(), []
        return pack_id_of(data), data, entries


class PackBuffer:
    """One pack assembled in place in a page-aligned buffer that is reused pack after pack.

    Block workers reserve a slot and seal their envelope straight into it, so a pack costs no reallocation, no
    concatenation and (reused) no fresh pages; the aligned buffer lets the local store write it with O_DIRECT.
    The buffer always keeps room for the header, so `fits` may close a pack of very many tiny blobs before it
    reaches the pack size.
    """

    def __init__(self, pack_size: int) -> None:
        self._buffer = aligned_buffer(pack_size + BLOCK_SIZE + 64 * 1024)
        self.view = memoryview(self._buffer)
        self.size = 0
        self.entries: list[PackEntry] = []
        self.pending = 0
        """Slots reserved but not yet filled; the pack is written only once this is back to zero."""
        self.closed = False

    def fits(self, length: int) -> bool:
        header = (len(self.entries) + 1) * PACK_ENTRY.size + ENVELOPE_OVERHEAD + TRAILER.size
        return self.size + length + header <= len(self.view)

    def reserve(self, blob_id: bytes, blob_type: BlobType, length: int, raw_length: int) -> memoryview:
        """The slot the caller seals one envelope of `length` bytes into (call `fits` first)."""
        if not self.fits(length):
            raise ValueError("the blob does not fit this pack buffer")
        self.entries.append(PackEntry(blob_id, int(blob_type), self.size, length, raw_length))
        self.size += length
        return self.view[self.size - length:self.size]

    def finish(self, codec: BlobCodec) -> tuple[bytes, memoryview, list[PackEntry]]:
        """Seal the header and trailer after the blobs: the pack's id, its bytes (a view of the buffer, valid
        until `reset`) and its entries."""
        header = b"".join(PACK_ENTRY.pack(e.blob_id, e.blob_type, e.offset, e.length, e.raw_length)
                          for e in self.entries)
        sealed = codec.seal(BlobType.PACK_HEADER, PACK_HEADER_ID, header)
        end = self.size + len(sealed) + TRAILER.size
        self.view[self.size:self.size + len(sealed)] = sealed
        TRAILER.pack_into(self.view, end - TRAILER.size, len(sealed))
        data = self.view[:end]
        return pack_id_of(data), data, self.entries

    def reset(self) -> None:
        self.size = self.pending = 0
        self.entries = []
        self.closed = False


def parse_header(codec: BlobCodec, tail: bytes | memoryview, pack_size: int, where: str) -> list[PackEntry]:
    """The entries of a pack from its last bytes (`tail` ends where the pack ends; the whole pack will do)."""
    if len(tail) < TRAILER.size + ENVELOPE_OVERHEAD or pack_size < len(tail):
        raise DamagedObject(where, f"{pack_size} bytes is too short to hold a pack header")
    (header_length,) = TRAILER.unpack(tail[-TRAILER.size:])
    if not ENVELOPE_OVERHEAD <= header_length <= pack_size - TRAILER.size:
        raise DamagedObject(where, f"header length {header_length} does not fit a pack of {pack_size} bytes")
    if header_length + TRAILER.size > len(tail):
        raise _NeedMore(header_length + TRAILER.size)
    start = len(tail) - TRAILER.size - header_length
    plain = codec.open(BlobType.PACK_HEADER, PACK_HEADER_ID, tail[start:len(tail) - TRAILER.size],
                       where=f"{where} (pack header)")
    if len(plain) % PACK_ENTRY.size:
        raise DamagedObject(where, f"pack header of {len(plain)} bytes is not a whole number of entries")
    blobs_end = pack_size - TRAILER.size - header_length
    entries = []
    for blob_id, blob_type, offset, length, raw_length in PACK_ENTRY.iter_unpack(plain):
        if offset + length > blobs_end or length < ENVELOPE_OVERHEAD:
            raise DamagedObject(where, f"pack header entry {blob_id.hex()[:16]} lies outside the pack's blobs")
        entries.append(PackEntry(blob_id, blob_type, offset, length, raw_length))
    return entries


class _NeedMore(Exception):
    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def read_header(store: BlobStore, codec: BlobCodec, name: str, pack_size: int) -> list[PackEntry]:
    """A pack's entries with one ranged read in the common case (two when the header is unusually long)."""
    want = min(pack_size, TAIL_GUESS)
    for _ in range(2):
        tail = store.get_range(name, pack_size - want, want)
        if len(tail) != want:
            raise DamagedObject(name, f"expected {pack_size} bytes, the store returned a shorter object")
        try:
            return parse_header(codec, tail, pack_size, name)
        except _NeedMore as more:
            want = more.length
    raise DamagedObject(name, "pack header could not be read")


def header_from_pack(codec: BlobCodec, data: bytes | memoryview, where: str) -> list[PackEntry]:
    try:
        return parse_header(codec, data, len(data), where)
    except _NeedMore:  # pragma: no cover - the whole pack always holds its header
        raise DamagedObject(where, "pack header length points before the start of the pack") from None
