"""The partition table of a raw disk (GPT or MBR), so free-space detection can look inside each partition.

Only a table that checks out is used; anything else answers None, and the disk is read whole:
* GPT (UEFI 2.10, section 5.3): the protective MBR (a partition of type 0xEE), the header at LBA 1 ("EFI PART",
  its CRC32 over `header size` bytes with the CRC field zeroed), the entry array (its CRC32), and every used
  entry inside the usable LBAs. Sectors of 512 bytes (EBS volumes and most disks; a 4096-byte-sector disk is
  read whole).
* MBR: the 0x55AA signature at byte 510 and the four primary entries at byte 446 (16 bytes each: status 0x00 or
  0x80, CHS, type, CHS, first LBA and sector count, little-endian). Extended partitions (types 0x05, 0x0F, 0x85)
  are not followed: the logical partitions inside are read whole.
Partitions must lie inside the disk and must not overlap.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

ReadAt = Callable[[int, int], bytes]
"""read_at(offset, length): `length` bytes of the disk from byte `offset` (fewer only at its end)."""
MBR_SIZE = 512
MBR_SIGNATURE = b"\x55\xaa"
MBR_ENTRIES = 446
MBR_ENTRY = struct.Struct("<B3sB3sII")
MBR_PROTECTIVE = 0xEE
MBR_EXTENDED = (0x05, 0x0F, 0x85)
GPT_SIGNATURE = b"EFI PART"
GPT_HEADER_MIN = 92
GPT_MAX_ENTRIES = 4096
GPT_SECTOR = 512


@dataclass(frozen=True, order=True)
class Partition:
    """A partition as bytes of the disk: [start, start + length); `number` as the table numbers it (from 1)."""

    start: int
    length: int
    number: int


def partitions(read_at: ReadAt, disk_size: int) -> tuple[str, list[Partition]] | None:
    """("gpt" or "mbr", the partitions in disk order), or None when the disk has no table that checks out."""
    mbr = read_at(0, MBR_SIZE)
    if len(mbr) < MBR_SIZE or mbr[510:512] != MBR_SIGNATURE:
        return None
    entries = [MBR_ENTRY.unpack_from(mbr, MBR_ENTRIES + 16 * i) for i in range(4)]
    if any(kind == MBR_PROTECTIVE for _, _, kind, _, _, _ in entries):
        found = _gpt(read_at, disk_size, GPT_SECTOR)
        return None if found is None else ("gpt", found)
    found = []
    for number, (status, _, kind, _, first, count) in enumerate(entries, 1):
        if kind == 0 or count == 0 or kind in MBR_EXTENDED:
            continue
        if status not in (0x00, 0x80) or first == 0 or (first + count) * MBR_SIZE > disk_size:
            return None
        found.append(Partition(first * MBR_SIZE, count * MBR_SIZE, number))
    found.sort()
    return ("mbr", found) if found and _disjoint(found) else None


def _gpt(read_at: ReadAt, disk_size: int, sector: int) -> list[Partition] | None:
    header = read_at(sector, sector)
    if len(header) < GPT_HEADER_MIN or header[:8] != GPT_SIGNATURE:
        return None
    size, crc = struct.unpack_from("<II", header, 12)
    if not GPT_HEADER_MIN <= size <= sector or zlib.crc32(header[:16] + bytes(4) + header[20:size]) != crc:
        return None
    first_usable, last_usable = struct.unpack_from("<QQ", header, 40)
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if not (0 < count <= GPT_MAX_ENTRIES and 128 <= entry_size <= 1024 and entry_size % 8 == 0
            and entries_lba >= 2 and first_usable <= last_usable and (last_usable + 1) * sector <= disk_size):
        return None
    array = read_at(entries_lba * sector, count * entry_size)
    if len(array) != count * entry_size or zlib.crc32(array) != entries_crc:
        return None
    found = []
    for index in range(count):
        at = index * entry_size
        if array[at:at + 16] == bytes(16):  # type GUID zero: an unused entry
            continue
        first, last = struct.unpack_from("<QQ", array, at + 32)
        if not first_usable <= first <= last <= last_usable:
            return None
        found.append(Partition(first * sector, (last - first + 1) * sector, index + 1))
    found.sort()
    return found if _disjoint(found) else None


def _disjoint(ordered: list[Partition]) -> bool:
    """True when partitions in disk order do not overlap."""
    return all(a.start + a.length <= b.start for a, b in pairwise(ordered))
