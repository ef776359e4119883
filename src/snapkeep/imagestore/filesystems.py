"""Free space of a filesystem on a disk, so a full image backup of a raw image or block device reads only the
blocks the filesystem uses; the rest restores as zeros (Veeam calls this BitLooker).

Only what can be read safely is used: an ext4 (or ext2/ext3) filesystem, at the start of the disk or in a
partition of a GPT or MBR table that checks out (`partitions`), that was cleanly unmounted (state "clean", no
journal to replay; a mounted or crashed filesystem is neither, since the kernel marks the on-disk superblock while
mounted) and has no feature that changes how its block bitmaps are read (meta_bg, bigalloc, snapshots,
compression). Anything else, or anything that does not add up, answers None: read every block. A block bitmap
whose group was never initialised (BLOCK_UNINIT) is replaced by that group's metadata, as the kernel does.

Layout (little-endian), from the ext4 disk layout: the superblock is the 1024 bytes at byte 1024; the group
descriptors start in the block after the superblock's; bit i of group g's block bitmap (least significant bit
first) is block `first_data_block + g * blocks_per_group + i`, 1 = in use.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from snapkeep.imagestore.partitions import ReadAt, partitions

SUPERBLOCK_OFFSET = 1024
EXT_MAGIC = 0xEF53
STATE_CLEAN, STATE_ERRORS = 0x1, 0x2
# incompat: compression, needs_recovery, journal_dev, meta_bg refuse; the others do not touch block bitmaps.
INCOMPAT_REFUSED = 0x1 | 0x4 | 0x8 | 0x10
INCOMPAT_KNOWN = 0x2 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000
INCOMPAT_64BIT = 0x80
# ro_compat: has_snapshot and bigalloc refuse (other bitmap meaning); the rest are known and harmless.
RO_COMPAT_REFUSED = 0x80 | 0x200
RO_COMPAT_KNOWN = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x400 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000
RO_COMPAT_SPARSE_SUPER = 0x1
COMPAT_SPARSE_SUPER2 = 0x200
BG_BLOCK_UNINIT = 0x2
_FREE_BYTES = re.compile(rb"\x00+")


@dataclass(frozen=True)
class FreeSpace:
    """What a filesystem leaves unused: byte ranges [start, end) of the disk, ascending and disjoint."""

    filesystem: str
    free: list[tuple[int, int]]

    @property
    def free_bytes(self) -> int:
        return sum(end - start for start, end in self.free)

    def used(self, disk_size: int) -> list[tuple[int, int]]:
        """The complement: byte ranges that may hold data."""
        return _complement(self.free, 0, disk_size)


@dataclass(frozen=True)
class _Ext4:
    block_size: int
    blocks_count: int
    first_data_block: int
    blocks_per_group: int
    inodes_per_group: int
    inode_size: int
    desc_size: int
    groups: int
    reserved_gdt_blocks: int
    sparse_super: bool
    sparse_super2: bool
    backup_groups: tuple[int, int]


def free_space(read_at: ReadAt, disk_size: int, *, align: int = 1) -> FreeSpace | None:
    """The free space of the filesystem at the start of the disk, or of those in its partitions, in whole
    `align`-byte units of the disk (a partly used unit is used); None when there is none this module can read
    safely. Everything outside the filesystems found (partition tables, gaps, other partitions) counts as used."""
    try:
        whole = _ext4_at(read_at, 0, disk_size)
        if whole is not None:
            return FreeSpace("ext4", _aligned(whole, align))
        table = partitions(read_at, disk_size)
        if table is None:
            return None
        scheme, found = table
        free: list[tuple[int, int]] = []
        numbers = []
        for partition in found:
            inside = _ext4_at(read_at, partition.start, partition.length)
            if inside is not None:
                free += inside
                numbers.append(str(partition.number))
        if not numbers:
            return None
        return FreeSpace(f"{scheme}: ext4 in partition {', '.join(numbers)}", _aligned(sorted(free), align))
    except (struct.error, ValueError):  # short reads, out-of-range fields: not a filesystem to trust
        return None


def _ext4_at(read_at: ReadAt, start: int, length: int) -> list[tuple[int, int]] | None:
    """The free byte ranges (of the disk) of a clean ext4 filesystem in [start, start + length), or None."""
    def read(offset: int, count: int) -> bytes:
        return read_at(start + offset, max(0, min(count, length - offset)))

    fs = _ext4_superblock(read(SUPERBLOCK_OFFSET, 1024), length)
    if fs is None:
        return None
    free = _ext4_free_space(read, fs)
    return None if free is None else [(start + first, start + end) for first, end in free]


def _aligned(free: list[tuple[int, int]], align: int) -> list[tuple[int, int]]:
    """Whole `align`-byte units inside each range; ranges that hold none are dropped."""
    units = [(-(-start // align) * align, end // align * align) for start, end in free]
    return [(start, end) for start, end in units if start < end]


def _ext4_superblock(sb: bytes, disk_size: int) -> _Ext4 | None:
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    state = struct.unpack_from("<H", sb, 0x3A)[0]
    if not state & STATE_CLEAN or state & STATE_ERRORS:
        return None
    (blocks_lo, first_data_block, log_block, log_cluster, per_group, clusters_per_group,
     inodes_per_group) = struct.unpack_from("<I12xIIIIII", sb, 0x04)
    rev_level = struct.unpack_from("<I", sb, 0x4C)[0]
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    if incompat & INCOMPAT_REFUSED or incompat & ~INCOMPAT_KNOWN or ro_compat & RO_COMPAT_REFUSED \
            or ro_compat & ~RO_COMPAT_KNOWN:
        return None
    if not 0 <= log_block <= 6 or log_cluster != log_block or clusters_per_group != per_group:
        return None
    block_size = 1024 << log_block
    is_64bit = bool(incompat & INCOMPAT_64BIT)
    blocks_hi = struct.unpack_from("<I", sb, 0x150)[0] if is_64bit else 0
    blocks_count = blocks_lo | blocks_hi << 32
    desc_size = struct.unpack_from("<H", sb, 0xFE)[0] if is_64bit else 32
    inode_size = struct.unpack_from("<H", sb, 0x58)[0] if rev_level >= 1 else 128
    if not (0 < per_group <= 8 * block_size and first_data_block == (1 if block_size == 1024 else 0)
            and blocks_count > first_data_block and blocks_count * block_size <= disk_size
            and desc_size in ((32,) if not is_64bit else (32, 64, 128, 256, 512, 1024))
            and inodes_per_group > 0 and 128 <= inode_size <= block_size and inode_size & (inode_size - 1) == 0):
        return None
    groups = -(-(blocks_count - first_data_block) // per_group)
    reserved_gdt = struct.unpack_from("<H", sb, 0xCE)[0]
    backups = struct.unpack_from("<II", sb, 0x24C)
    return _Ext4(block_size, blocks_count, first_data_block, per_group, inodes_per_group, inode_size, desc_size,
                 groups, reserved_gdt, bool(ro_compat & RO_COMPAT_SPARSE_SUPER), bool(compat & COMPAT_SPARSE_SUPER2),
                 (backups[0], backups[1]))


def _has_super(fs: _Ext4, group: int) -> bool:
    if group == 0:
        return True
    if fs.sparse_super2:
        return group in fs.backup_groups
    if not fs.sparse_super or group == 1:
        return True
    for base in (3, 5, 7):
        power = base
        while power < group:
            power *= base
        if power == group:
            return True
    return False


def _ext4_free_space(read_at: ReadAt, fs: _Ext4) -> list[tuple[int, int]] | None:
    bs = fs.block_size
    gdt_blocks = -(-fs.groups * fs.desc_size // bs)
    table = read_at((fs.first_data_block + 1) * bs, gdt_blocks * bs)
    if len(table) < fs.groups * fs.desc_size:
        return None
    inode_table_blocks = -(-fs.inodes_per_group * fs.inode_size // bs)
    bitmaps: list[tuple[int, int]] = []  # (bitmap block, flags) per group
    metadata: list[tuple[int, int]] = []  # block ranges [start, end) every group's bitmaps and tables occupy
    for group in range(fs.groups):
        at = group * fs.desc_size
        block_bitmap, inode_bitmap, inode_table = struct.unpack_from("<III", table, at)
        flags = struct.unpack_from("<H", table, at + 0x12)[0]
        if fs.desc_size >= 64:
            hi = struct.unpack_from("<III", table, at + 0x20)
            block_bitmap, inode_bitmap, inode_table = (block_bitmap | hi[0] << 32, inode_bitmap | hi[1] << 32,
                                                       inode_table | hi[2] << 32)
        for start, length in ((block_bitmap, 1), (inode_bitmap, 1), (inode_table, inode_table_blocks)):
            if not (fs.first_data_block <= start and start + length <= fs.blocks_count):
                return None
            metadata.append((start, start + length))
        bitmaps.append((block_bitmap, flags))
    metadata.sort()
    backup_blocks = 1 + gdt_blocks + fs.reserved_gdt_blocks
    free_blocks: list[tuple[int, int]] = []
    for group, (bitmap_block, flags) in enumerate(bitmaps):
        first = fs.first_data_block + group * fs.blocks_per_group
        last = min(first + fs.blocks_per_group, fs.blocks_count)
        if flags & BG_BLOCK_UNINIT:
            used = [(first, first + backup_blocks)] if _has_super(fs, group) else []
            used += [(max(s, first), min(e, last)) for s, e in metadata if s < last and e > first]
            free_blocks += _complement(sorted(used), first, last)
            continue
        bitmap = read_at(bitmap_block * bs, bs)
        if len(bitmap) < bs:
            return None
        span = (last - first + 7) // 8  # bits past the last block are padding
        for match in _FREE_BYTES.finditer(bitmap, 0, span):
            start, end = first + 8 * match.start(), min(first + 8 * match.end(), last)
            if start < end:
                free_blocks.append((start, end))
    free: list[tuple[int, int]] = []
    for start, end in sorted(free_blocks):
        if free and start * bs <= free[-1][1]:
            free[-1] = (free[-1][0], max(free[-1][1], end * bs))
        else:
            free.append((start * bs, end * bs))
    return free


def _complement(ranges: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    """What ascending `ranges` leave of [first, last)."""
    gaps: list[tuple[int, int]] = []
    position = first
    for start, end in ranges:
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < last:
        gaps.append((position, last))
    return gaps
