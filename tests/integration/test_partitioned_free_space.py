"""Free space inside partitioned disks: GPT and MBR tables around real ext4 filesystems made by mke2fs.

The tables are written here, byte by byte from the specifications, and read back by util-linux's partx (libblkid),
so the parser is checked against another implementation, not against this file's writer. Each filesystem's free
space is compared block by block with dumpe2fs on a copy of its partition. A backup through the CLI restores the
disk byte for byte where it matters: the tables, a partition without a filesystem, and every file of the ext4
partition (e2fsck clean, debugfs reads them back), while the deleted file's data in free space is not read.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest

from snapkeep.imagestore.filesystems import free_space
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.imagestore.partitions import Partition, partitions
from tests.integration.test_cli_images import ok_json, run
from tests.integration.test_filesystem_free_space import (
    SYSTEM_PATH,
    TOOLS,
    block_size_of,
    dumpe2fs_free_blocks,
    make_fs,
    populate,
    read_at,
    tool,
)

PARTX = shutil.which("partx", path=SYSTEM_PATH)
pytestmark = pytest.mark.skipif(not all(TOOLS.values()) or PARTX is None,
                                reason="needs e2fsprogs and util-linux's partx")
MiB = 1024 * 1024
SECTOR = 512
LINUX_FS = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")


def gpt_disk(path: Path, size: int, parts: list[tuple[int, bytes]], *, entries: int = 128) -> None:
    """A disk of `size` bytes with a protective MBR, primary and backup GPT, and `parts` (start byte, content)."""
    last_lba = size // SECTOR - 1
    array = bytearray(entries * 128)
    for index, (start, content) in enumerate(parts):
        first = start // SECTOR
        last = first + -(-len(content) // SECTOR) - 1
        struct.pack_into("<16s16sQQQ", array, index * 128, LINUX_FS.bytes_le, uuid.uuid4().bytes_le, first, last, 0)
    array_sectors = len(array) // SECTOR

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        body = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, current, backup,
                                     2 + array_sectors, last_lba - 1 - array_sectors, uuid.uuid4().bytes_le,
                                     entries_lba, entries, 128, zlib.crc32(array)))
        struct.pack_into("<I", body, 16, zlib.crc32(body))
        return bytes(body) + bytes(SECTOR - len(body))

    mbr = bytearray(SECTOR)
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, min(last_lba, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as out:
        out.truncate(size)
        out.write(mbr + header(1, last_lba, 2) + array)
        for start, content in parts:
            out.seek(start)
            out.write(content)
        out.seek((last_lba - array_sectors) * SECTOR)
        out.write(array + header(last_lba, 1, last_lba - array_sectors))


def mbr_disk(path: Path, size: int, parts: list[tuple[int, bytes, int]]) -> None:
    """A disk with an MBR of primary partitions (start byte, content, type)."""
    mbr = bytearray(SECTOR)
    for index, (start, content, kind) in enumerate(parts):
        struct.pack_into("<B3sB3sII", mbr, 446 + 16 * index, 0, b"\0\0\0", kind, b"\0\0\0", start // SECTOR,
                         -(-len(content) // SECTOR))
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as out:
        out.truncate(size)
        out.write(mbr)
        for start, content, _ in parts:
            out.seek(start)
            out.write(content)


def partx(path: Path) -> list[tuple[int, int, int]]:
    """(number, start byte, length) of each partition, as util-linux reads the table."""
    out = subprocess.run([str(PARTX), "--show", "--noheadings", "--bytes", "-o", "NR,START,SECTORS",
                          str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [tuple(int(v) for v in line.split()) for line in out.splitlines() if line.strip()]
    return [(number, start * SECTOR, sectors * SECTOR) for number, start, sectors in rows]


@pytest.fixture(scope="module")
def ext4(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A 48 MiB ext4 filesystem holding files and the data of a deleted one, cleanly unmounted."""
    base = tmp_path_factory.mktemp("ext4")
    contents = populate(base / "files", 11)
    image = base / "fs.img"
    make_fs(image, 48 * MiB, ["-t", "ext4", "-b", "4096"], base / "files")
    tool("debugfs", "-w", "-R", "rm /doomed", image)  # populate() keeps it out of `contents`
    return image, contents


def expected_free(fs_image: Path, offset: int) -> list[tuple[int, int]]:
    """dumpe2fs's free blocks of the filesystem, as byte ranges of a disk holding it at `offset`."""
    size = block_size_of(fs_image)
    return [(offset + start * size, offset + end * size) for start, end in dumpe2fs_free_blocks(fs_image)]


def inside(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(first <= start and end <= last for first, last in ranges)


@pytest.mark.parametrize("scheme", ["gpt", "mbr"])
def test_free_space_is_found_inside_the_ext4_partition_only(ext4: tuple[Path, dict[str, bytes]], tmp_path: Path,
                                                            scheme: str) -> None:
    fs_image, _ = ext4
    fs = fs_image.read_bytes()
    other = bytes(8 * MiB)  # a partition of zeros without a filesystem: never called free
    disk = tmp_path / "disk.img"
    size = 64 * MiB
    fs_start, other_start = 1 * MiB + 3 * SECTOR, 52 * MiB  # an odd offset: alignment is the disk's, not the fs's
    if scheme == "gpt":
        gpt_disk(disk, size, [(fs_start, fs), (other_start, other)])
    else:
        mbr_disk(disk, size, [(fs_start, fs, 0x83), (other_start, other, 0x83)])
    assert partx(disk) == [(1, fs_start, len(fs)), (2, other_start, len(other))]
    assert partitions(read_at(disk), size) == (scheme, [Partition(fs_start, len(fs), 1),
                                                        Partition(other_start, len(other), 2)])

    found = free_space(read_at(disk), size, align=BLOCK_SIZE)
    assert found is not None and found.filesystem == f"{scheme}: ext4 in partition 1"
    truth = expected_free(fs_image, fs_start)
    assert found.free  # the deleted file's data at least
    for start, end in found.free:
        assert start % BLOCK_SIZE == 0 and end % BLOCK_SIZE == 0
        assert fs_start <= start and end <= fs_start + len(fs)
        for block in range(start, end, BLOCK_SIZE):
            assert inside(truth, block, block + BLOCK_SIZE), f"block at {block} is in use"
    whole_free_blocks = sum((end // BLOCK_SIZE) - -(-start // BLOCK_SIZE) for start, end in truth
                            if end // BLOCK_SIZE > -(-start // BLOCK_SIZE))
    assert found.free_bytes >= (whole_free_blocks - 8) * BLOCK_SIZE  # nearly all that can be skipped is


@pytest.mark.parametrize("damage", ["header-crc", "entries-crc", "overlap", "beyond-disk", "no-protective-mbr"])
def test_a_table_that_does_not_check_out_means_reading_everything(ext4: tuple[Path, dict[str, bytes]],
                                                                  tmp_path: Path, damage: str) -> None:
    fs = ext4[0].read_bytes()
    disk = tmp_path / "disk.img"
    size = 64 * MiB
    parts = [(1 * MiB, fs)]
    if damage == "overlap":
        parts.append((40 * MiB, bytes(4 * MiB)))  # starts inside the 48 MiB filesystem's partition
    gpt_disk(disk, size, parts)
    data = bytearray(disk.read_bytes())
    if damage == "header-crc":
        data[SECTOR + 40] ^= 1  # first usable LBA, under the header's CRC
    elif damage == "entries-crc":
        data[2 * SECTOR + 40] ^= 1  # the first entry's last LBA, under the array's CRC
    elif damage == "beyond-disk":
        data = data[:60 * MiB]  # the table says the disk is 64 MiB
    elif damage == "no-protective-mbr":
        data[446 + 4] = 0x83
    disk.write_bytes(bytes(data))
    table = partitions(read_at(disk), len(data))
    if damage == "no-protective-mbr":  # then it is an MBR disk whose one partition starts with the GPT header
        assert table == ("mbr", [Partition(SECTOR, len(data) - SECTOR, 1)])
    else:
        assert table is None
    assert free_space(read_at(disk), len(data), align=BLOCK_SIZE) is None


def test_an_unclean_filesystem_in_a_partition_is_read_whole(ext4: tuple[Path, dict[str, bytes]],
                                                            tmp_path: Path) -> None:
    fs = bytearray(ext4[0].read_bytes())
    struct.pack_into("<H", fs, 1024 + 0x3A, 0)  # state: not clean (mounted, or crashed)
    disk = tmp_path / "disk.img"
    gpt_disk(disk, 64 * MiB, [(1 * MiB, bytes(fs))])
    assert partitions(read_at(disk), 64 * MiB) is not None
    assert free_space(read_at(disk), 64 * MiB, align=BLOCK_SIZE) is None


def test_backup_and_restore_of_a_partitioned_disk(ext4: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    fs_image, contents = ext4
    fs = fs_image.read_bytes()
    raw = bytes(range(256)) * (4 * MiB // 256)  # a partition of data without a filesystem: kept byte for byte
    disk, size = tmp_path / "disk.img", 64 * MiB
    fs_start, raw_start = 1 * MiB, 52 * MiB
    gpt_disk(disk, size, [(fs_start, fs), (raw_start, raw)])
    repo = tmp_path / "repo"
    assert run("repo", "init", "--repo", repo).returncode == 0
    backup = ok_json("image", "backup", "--repo", repo, disk)
    assert backup["FreeSpaceSkipped"] > 0
    listed = ok_json("image", "list", "--repo", repo)
    assert listed[0]["Source"]["filesystem"] == "gpt: ext4 in partition 1"
    restored = tmp_path / "restored.img"
    ok_json("image", "restore", "--repo", repo, backup["ImageId"], restored)

    original, back = disk.read_bytes(), restored.read_bytes()
    assert len(back) == size
    assert back[:fs_start] == original[:fs_start]  # protective MBR, primary GPT
    assert back[raw_start:] == original[raw_start:]  # the raw partition and the backup GPT
    assert partx(restored) == partx(disk)
    copy = tmp_path / "restored-fs.img"
    copy.write_bytes(back[fs_start:fs_start + len(fs)])
    assert tool("e2fsck", "-fn", copy, check=False).returncode == 0
    for name, data in contents.items():
        dumped = tmp_path / f"out-{name}"
        tool("debugfs", "-R", f"dump /{name} {dumped}", copy)
        assert dumped.read_bytes() == data, name
    skipped = backup["FreeSpaceSkipped"]
    differing = sum(1 for at in range(0, size, BLOCK_SIZE) if back[at:at + BLOCK_SIZE] != original[at:at + BLOCK_SIZE])
    assert 0 < differing <= skipped // BLOCK_SIZE  # only skipped (free) blocks may differ: the deleted file's data
