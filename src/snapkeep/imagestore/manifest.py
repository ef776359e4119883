"""One manifest per image backup: what was backed up (the caller's source description), each disk's size and
block map, the parent, creation time, retention and tags. Written last; never rewritten.

Plaintext (then sealed as a MANIFEST blob whose id is the image id):

    JSON length (u32 LE) | JSON document (UTF-8) | block map of disk 0 | block map of disk 1 | ...

A block map is `count (u64 LE) | count block indexes (u64 LE, ascending) | count chunk ids (32 bytes each)`:
sorted arrays, so copying a parent's map and replacing the changed blocks costs slices, not a Python loop per
block. An index that is absent is an all-zero block.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import struct
import sys
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapkeep.domain.clock import iso_z, parse_iso
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue, ResourceNotFound
from snapkeep.imagestore.chunks import CHUNK_ID_SIZE
from snapkeep.imagestore.errors import DamagedObject, UnsupportedFormat
from snapkeep.imagestore.format import BLOCK_SIZE

MANIFEST_VERSION = 1
IMAGE_ID_SIZE = 16
_JSON_LENGTH = struct.Struct("<I")
_COUNT = struct.Struct("<Q")
_IMAGE_ID = re.compile(r"^[0-9a-f]{32}$")
_LITTLE = sys.byteorder == "little"


def new_image_id() -> str:
    return os.urandom(IMAGE_ID_SIZE).hex()


def check_image_id(image_id: str, field_name: str = "image_id") -> str:
    if not isinstance(image_id, str) or not _IMAGE_ID.match(image_id):
        raise InvalidParameterValue(f"{field_name}: must be 32 lower-case hex digits, got {image_id!r}",
                                    field=field_name)
    return image_id


class BlockMap:
    """Present blocks of one disk: ascending block indexes and, in the same order, their chunk ids."""

    def __init__(self, indexes: array[int] | None = None, ids: bytearray | None = None) -> None:
        self.indexes: array[int] = indexes if indexes is not None else array("Q")
        self.ids = ids if ids is not None else bytearray()
        if len(self.ids) != CHUNK_ID_SIZE * len(self.indexes):
            raise ValueError("a block map needs one 32-byte chunk id per block index")

    def __len__(self) -> int:
        return len(self.indexes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlockMap) and self.indexes == other.indexes and self.ids == other.ids

    def append(self, index: int, chunk_id: bytes) -> None:
        """Add a block after every block already present (the order the backup pipeline produces them in)."""
        if self.indexes and index <= self.indexes[-1]:
            raise ValueError(f"block {index} is not after block {self.indexes[-1]}")
        self.indexes.append(index)
        self.ids += chunk_id

    def chunk_id_at(self, position: int) -> bytes:
        start = position * CHUNK_ID_SIZE
        return bytes(self.ids[start:start + CHUNK_ID_SIZE])

    def get(self, index: int) -> bytes | None:
        position = bisect.bisect_left(self.indexes, index)
        if position < len(self.indexes) and self.indexes[position] == index:
            return self.chunk_id_at(position)
        return None

    def items(self) -> Iterator[tuple[int, bytes]]:
        for position, index in enumerate(self.indexes):
            yield index, self.chunk_id_at(position)

    def chunk_ids(self) -> Iterator[bytes]:
        view = memoryview(self.ids)
        for start in range(0, len(view), CHUNK_ID_SIZE):
            yield bytes(view[start:start + CHUNK_ID_SIZE])

    def with_changes(self, changes: Mapping[int, bytes | None], block_count: int) -> BlockMap:
        """A copy where each changed block holds its new chunk (None: now zero), cut to `block_count` blocks."""
        indexes, ids = array("Q"), bytearray()
        position = 0
        for index in sorted(changes):
            found = bisect.bisect_left(self.indexes, index, lo=position)
            indexes.extend(self.indexes[position:found])
            ids += self.ids[position * CHUNK_ID_SIZE:found * CHUNK_ID_SIZE]
            if found < len(self.indexes) and self.indexes[found] == index:
                found += 1
            chunk_id = changes[index]
            if chunk_id is not None:
                indexes.append(index)
                ids += chunk_id
            position = found
        indexes.extend(self.indexes[position:])
        ids += self.ids[position * CHUNK_ID_SIZE:]
        end = bisect.bisect_left(indexes, block_count)
        del indexes[end:]
        del ids[end * CHUNK_ID_SIZE:]
        return BlockMap(indexes, ids)

    def encode(self) -> bytes:
        indexes = array("Q", self.indexes)
        if not _LITTLE:  # pragma: no cover - big-endian hosts
            indexes.byteswap()
        return b"".join((_COUNT.pack(len(indexes)), indexes.tobytes(), bytes(self.ids)))

    @staticmethod
    def decode(view: memoryview, where: str) -> tuple[BlockMap, int]:
        """The map at the start of `view` and how many bytes it took."""
        if len(view) < _COUNT.size:
            raise DamagedObject(where, "block map is truncated")
        (count,) = _COUNT.unpack_from(view, 0)
        end_indexes = _COUNT.size + 8 * count
        end = end_indexes + CHUNK_ID_SIZE * count
        if end > len(view):
            raise DamagedObject(where, f"block map of {count} blocks is longer than the manifest")
        indexes = array("Q")
        indexes.frombytes(view[_COUNT.size:end_indexes])
        if not _LITTLE:  # pragma: no cover
            indexes.byteswap()
        if any(indexes[i] >= indexes[i + 1] for i in range(len(indexes) - 1)):
            raise DamagedObject(where, "block map indexes are not strictly ascending")
        return BlockMap(indexes, bytearray(view[end_indexes:end])), end


@dataclass
class Disk:
    name: str
    size: int
    """Bytes; the last block may be short when the size is not a multiple of the block size."""
    block_map: BlockMap = field(default_factory=BlockMap)

    @property
    def block_count(self) -> int:
        return -(-self.size // BLOCK_SIZE)


@dataclass
class Manifest:
    image_id: str
    created: datetime
    disks: list[Disk]
    parent: str | None = None
    delete_after: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def disk(self, name: str) -> Disk | None:
        return next((d for d in self.disks if d.name == name), None)

    def pick_disk(self, name: str | None, field: str = "disk") -> Disk:
        """The disk named, or the only one; a clear error naming the disks otherwise."""
        names = ", ".join(d.name for d in self.disks)
        if name is None:
            if len(self.disks) != 1:
                raise MissingParameterValue(f"{field}: image backup {self.image_id} has {len(self.disks)} disks "
                                            f"({names}); name one", field=field)
            return self.disks[0]
        found = self.disk(name)
        if found is None:
            raise ResourceNotFound(f"{field}: image backup {self.image_id} has no disk {name!r} (it has {names})",
                                   field=field)
        return found

    @property
    def size(self) -> int:
        return sum(d.size for d in self.disks)

    def header(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "id": self.image_id,
            "created": iso_z(self.created),
            "parent": self.parent,
            "delete_after": iso_z(self.delete_after) if self.delete_after else None,
            "tags": self.tags,
            "source": self.source,
            "disks": [{"name": d.name, "size": d.size, "block_size": BLOCK_SIZE, "blocks": len(d.block_map)}
                      for d in self.disks],
            "stats": self.stats,
        }

    def encode(self) -> bytes:
        document = json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode("utf-8")
        return b"".join([_JSON_LENGTH.pack(len(document)), document, *(d.block_map.encode() for d in self.disks)])

    @staticmethod
    def decode(image_id: str, data: bytes, where: str) -> Manifest:
        view = memoryview(data)
        try:
            (length,) = _JSON_LENGTH.unpack_from(view, 0)
            document = json.loads(bytes(view[_JSON_LENGTH.size:_JSON_LENGTH.size + length]))
            version = int(document["version"])
            if version > MANIFEST_VERSION:
                raise UnsupportedFormat(f"{where}: manifest version {version}; this Snapkeep reads "
                                        f"{MANIFEST_VERSION}")
            if document["id"] != image_id:
                raise DamagedObject(where, f"holds image {document['id']!r}, not {image_id}")
            position = _JSON_LENGTH.size + length
            disks = []
            for entry in document["disks"]:
                if int(entry["block_size"]) != BLOCK_SIZE:
                    raise UnsupportedFormat(f"{where}: block size {entry['block_size']} is not {BLOCK_SIZE}")
                block_map, used = BlockMap.decode(view[position:], where)
                position += used
                disk = Disk(str(entry["name"]), int(entry["size"]), block_map)
                if block_map.indexes and block_map.indexes[-1] >= disk.block_count:
                    raise DamagedObject(where, f"disk {disk.name} maps a block beyond its size")
                disks.append(disk)
            if position != len(view):
                raise DamagedObject(where, "manifest has bytes after its last block map")
            return Manifest(
                image_id=image_id,
                created=parse_iso(document["created"]),
                disks=disks,
                parent=document.get("parent"),
                delete_after=parse_iso(document["delete_after"]) if document.get("delete_after") else None,
                tags=dict(document.get("tags") or {}),
                source=dict(document.get("source") or {}),
                stats={k: int(v) for k, v in (document.get("stats") or {}).items()},
            )
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise DamagedObject(where, f"manifest is not readable: {exc}") from None
