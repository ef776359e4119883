"""Format version 1 of the image repository: constants, object names and the envelope every stored blob wears.

Envelope (docs/repository-format.md has the byte table):

    magic "SKIR" | version u8 | blob type u8 | compression u8 | reserved u8 | nonce (12) | AES-256-GCM(payload) + tag

The 8 header bytes and the blob's id are the associated data, so a flipped header byte, a blob moved to another
id or presented as another type fails authentication. The payload is zstd level 1 unless that did not make it
smaller, then the plain bytes; the compression byte says which.
"""

from __future__ import annotations

import os
import struct
import threading
from enum import IntEnum

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapkeep.imagestore.errors import DamagedObject, UnsupportedFormat

FORMAT_VERSION = 1
BLOCK_SIZE = 512 * 1024
"""Chunks are EBS-aligned 512 KiB blocks; only the last block of a raw image may be shorter."""
MAGIC = b"SKIR"
HEADER = struct.Struct("<4sBBBB")
NONCE_SIZE = 12
TAG_SIZE = 16
ENVELOPE_OVERHEAD = HEADER.size + NONCE_SIZE + TAG_SIZE
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
DEFAULT_COMPRESSION_LEVEL = 1
ZERO_BLOCK = bytes(BLOCK_SIZE)

CONFIG_NAME = "config"
CONFIG_ID = b"config"
PACK_HEADER_ID = b"pack-header"
KEYS_PREFIX = "keys/"
DATA_PREFIX = "data/"
INDEX_PREFIX = "index/"
IMAGES_PREFIX = "images/"
LOCKS_PREFIX = "locks/"


class BlobType(IntEnum):
    CHUNK = 1
    PACK_HEADER = 2
    INDEX = 3
    MANIFEST = 4
    CONFIG = 5
    LOCK = 6


class Compression(IntEnum):
    NONE = 0
    ZSTD = 1


def pack_name(pack_id: bytes) -> str:
    text = pack_id.hex()
    return f"{DATA_PREFIX}{text[:2]}/{text}"


def pack_id_from_name(name: str) -> bytes | None:
    """The pack id a `data/xx/<64 hex>` name stands for, or None for anything else under data/."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] + "/" != DATA_PREFIX or len(parts[2]) != 64 or parts[2][:2] != parts[1]:
        return None
    try:
        return bytes.fromhex(parts[2])
    except ValueError:
        return None


def index_name(index_id: bytes) -> str:
    return f"{INDEX_PREFIX}{index_id.hex()}"


def image_name(image_id: str) -> str:
    return f"{IMAGES_PREFIX}{image_id}"


def lock_name(lock_id: bytes) -> str:
    return f"{LOCKS_PREFIX}{lock_id.hex()}"


def key_name(key_id: str) -> str:
    return f"{KEYS_PREFIX}{key_id}"


def hex_id_from_name(name: str, prefix: str, length: int) -> bytes | None:
    """The id bytes of `prefix<hex of length bytes>`, or None when the name is not of that form."""
    text = name[len(prefix):] if name.startswith(prefix) else ""
    if len(text) != 2 * length:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


class BlobCodec:
    """Seals and opens envelopes with the repository's blob key. Thread-safe (one zstd context per thread)."""

    def __init__(self, blob_key: bytes, compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> None:
        self._aead = AESGCM(blob_key)
        self._level = compression_level
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self._level, write_content_size=True)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor

    def sealed_size(self, data: bytes | bytearray | memoryview, *, compress: bool = True
                    ) -> tuple[int, Compression, bytes | bytearray | memoryview]:
        """The envelope length, compression and payload of `data`, for `seal_into` (compress once, write once)."""
        if compress and len(data):
            packed = self._compressor().compress(data)
            if len(packed) < len(data):
                return ENVELOPE_OVERHEAD + len(packed), Compression.ZSTD, packed
        return ENVELOPE_OVERHEAD + len(data), Compression.NONE, data

    def seal_into(self, blob_type: BlobType, blob_id: bytes, payload: bytes | bytearray | memoryview,
                  compression: Compression, out: memoryview) -> None:
        """Write the envelope of an already-compressed payload straight into `out` (exactly its length): the
        pack buffer, so the ciphertext is never a separate object that has to be copied in."""
        header = HEADER.pack(MAGIC, FORMAT_VERSION, blob_type, compression, 0)
        nonce = os.urandom(NONCE_SIZE)
        out[:HEADER.size] = header
        out[HEADER.size:HEADER.size + NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, payload, header + blob_id, out[HEADER.size + NONCE_SIZE:])

    def seal(self, blob_type: BlobType, blob_id: bytes, data: bytes | bytearray | memoryview,
             *, compress: bool = True) -> bytes:
        length, compression, payload = self.sealed_size(data, compress=compress)
        out = bytearray(length)
        self.seal_into(blob_type, blob_id, payload, compression, memoryview(out))
        return bytes(out)

    def _check_header(self, blob_type: BlobType, envelope: bytes | memoryview, where: str) -> tuple[bytes, int]:
        if len(envelope) < ENVELOPE_OVERHEAD:
            raise DamagedObject(where, f"envelope of {len(envelope)} bytes is shorter than the "
                                       f"{ENVELOPE_OVERHEAD}-byte minimum")
        header = bytes(envelope[:HEADER.size])
        magic, version, kind, compression, reserved = HEADER.unpack(header)
        if magic != MAGIC:
            raise DamagedObject(where, f"bad magic {magic!r} (expected {MAGIC!r})")
        if version != FORMAT_VERSION:
            if version > FORMAT_VERSION:
                raise UnsupportedFormat(f"{where}: written in format version {version}; this Snapkeep reads "
                                        f"version {FORMAT_VERSION}")
            raise DamagedObject(where, f"format version {version} is not a version Snapkeep ever wrote")
        if kind != blob_type:
            raise DamagedObject(where, f"blob type {kind} where a {blob_type.name} ({int(blob_type)}) was expected")
        if compression not in (Compression.NONE, Compression.ZSTD) or reserved != 0:
            raise DamagedObject(where, f"unknown compression {compression} or reserved byte {reserved}")
        return header, compression

    def open(self, blob_type: BlobType, blob_id: bytes, envelope: bytes | memoryview, *, where: str) -> bytes:
        """The plaintext of an envelope, or DamagedObject naming `where` and what is wrong."""
        header, compression = self._check_header(blob_type, envelope, where)
        nonce = envelope[HEADER.size:HEADER.size + NONCE_SIZE]
        try:
            payload = self._aead.decrypt(nonce, envelope[HEADER.size + NONCE_SIZE:], header + blob_id)
        except InvalidTag:
            raise DamagedObject(where, _TAMPERED) from None
        if compression == Compression.NONE:
            return payload
        try:
            return self._decompressor().decompress(payload)
        except zstandard.ZstdError as exc:  # authentic but undecodable: a writer bug, still damage to report
            raise DamagedObject(where, f"authentic but not valid zstd: {exc}") from exc

    def open_into(self, blob_type: BlobType, blob_id: bytes, envelope: memoryview, out: memoryview,
                  scratch: memoryview, *, where: str) -> int:
        """Like `open`, but the plaintext goes into `out` (a slot of the restore's write buffer) and compressed
        payloads are decrypted into `scratch`: no per-blob allocation. Returns the plaintext length."""
        header, compression = self._check_header(blob_type, envelope, where)
        nonce = envelope[HEADER.size:HEADER.size + NONCE_SIZE]
        ciphertext = envelope[HEADER.size + NONCE_SIZE:]
        length = len(ciphertext) - TAG_SIZE
        target = out if compression == Compression.NONE else scratch
        if length > len(target):
            raise DamagedObject(where, f"holds {length} bytes, more than the {len(target)} it may")
        try:
            self._aead.decrypt_into(nonce, ciphertext, header + blob_id, target[:length])
        except InvalidTag:
            raise DamagedObject(where, _TAMPERED) from None
        if compression == Compression.NONE:
            return length
        payload = scratch[:length]
        try:
            size = zstandard.frame_content_size(payload)
            if not 0 <= size <= len(out):
                raise DamagedObject(where, f"zstd frame of {size} bytes does not fit {len(out)}")
            done = 0
            with self._decompressor().stream_reader(payload) as reader:
                while done < size:
                    count = reader.readinto(out[done:size])
                    if not count:
                        break
                    done += count
                if done != size or reader.read(1):
                    raise DamagedObject(where, f"zstd frame does not hold the {size} bytes its header says")
        except zstandard.ZstdError as exc:
            raise DamagedObject(where, f"authentic but not valid zstd: {exc}") from exc
        return size


_TAMPERED = "authentication failed: its bytes were changed, or it was moved from another id"


def envelope_type(envelope: bytes | memoryview) -> int | None:
    """The blob type byte of an envelope, or None when it does not even start like one."""
    if len(envelope) < HEADER.size or bytes(envelope[:4]) != MAGIC:
        return None
    return int(envelope[5])
