"""Free space of real ext2/3/4 filesystems made by mke2fs, checked against e2fsprogs' own view (dumpe2fs), and the
image backup that skips it: the restored filesystem is clean (e2fsck) and every file reads back the same, while the
data of deleted files (free space) is not read.

Never calling a used block free is the property that matters (a wrong answer would lose data), so each layout is
compared block by block: every block we call free, dumpe2fs calls free too.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from snapkeep.imagestore.filesystems import ReadAt, free_space
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.imagestore.sources import RawImageSource
from tests.integration.test_cli_images import ok_json, run

SYSTEM_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
TOOLS = {name: shutil.which(name, path=SYSTEM_PATH) for name in ("mke2fs", "debugfs", "dumpe2fs", "e2fsck")}
pytestmark = pytest.mark.skipif(not all(TOOLS.values()), reason="needs e2fsprogs (apt-get install e2fsprogs)")
MiB = 1024 * 1024


def tool(name: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS[name]), *map(str, args)], capture_output=True, text=True, check=check,
                          timeout=60)


def make_fs(path: Path, size: int, options: list[str], files: Path | None = None) -> None:
    with path.open("wb") as out:
        out.truncate(size)
    extra = ["-d", str(files)] if files is not None else []
    tool("mke2fs", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1", *options, *extra, path)


def populate(root: Path, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    root.mkdir()
    contents = {}
    for i in range(12):
        data = rng.randbytes(rng.randrange(1, 3 * MiB))
        (root / f"file{i}").write_bytes(data)
        contents[f"file{i}"] = data
    (root / "doomed").write_bytes(rng.randbytes(4 * MiB))
    return contents


def dumpe2fs_free_blocks(path: Path) -> list[tuple[int, int]]:
    out = tool("dumpe2fs", path).stdout
    ranges = []
    for line in re.findall(r"^\s+Free blocks: (.*)$", out, re.MULTILINE):
        for part in filter(None, (p.strip() for p in line.split(","))):
            first, _, last = part.partition("-")
            ranges.append((int(first), int(last or first) + 1))
    merged: list[tuple[int, int]] = []  # dumpe2fs lists them group by group; runs go on across groups
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def block_size_of(path: Path) -> int:
    return int(re.search(r"^Block size:\s+(\d+)", tool("dumpe2fs", "-h", path).stdout, re.MULTILINE).group(1))


def read_at(path: Path) -> ReadAt:
    def read(offset: int, length: int) -> bytes:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    return read


LAYOUTS = {
    "ext4 1k blocks, flex_bg, uninit groups": (64 * MiB, ["-t", "ext4"]),
    "ext4 4k blocks 64bit": (192 * MiB, ["-t", "ext4", "-b", "4096", "-O", "64bit"]),
    "ext4 4k, sparse_super2": (192 * MiB, ["-t", "ext4", "-b", "4096", "-O", "sparse_super2"]),
    "ext4 4k, no sparse_super, no flex_bg": (128 * MiB, ["-t", "ext4", "-b", "4096",
                                                          "-O", "^sparse_super,^resize_inode,^flex_bg"]),
    "ext3 1k blocks": (64 * MiB, ["-t", "ext3", "-b", "1024"]),
    "ext2 2k blocks, 16 MiB groups": (96 * MiB, ["-t", "ext2", "-b", "2048", "-g", "8192"]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_free_space_is_what_e2fsprogs_calls_free(tmp_path: Path, layout: str) -> None:
    size, options = LAYOUTS[layout]
    image = tmp_path / "fs.img"
    populate(tmp_path / "files", seed=len(layout))
    make_fs(image, size, options, tmp_path / "files")
    tool("debugfs", "-w", "-R", "rm /doomed", image)  # its blocks are free now, and still hold its data
    bs = block_size_of(image)
    theirs = dumpe2fs_free_blocks(image)
    found = free_space(read_at(image), size)
    assert found is not None and found.filesystem == "ext4"
    ours = [(start // bs, end // bs) for start, end in found.free]
    assert all(start % bs == 0 and end % bs == 0 for start, end in found.free)
    # Every block we call free is free for e2fsprogs.
    for start, end in ours:
        assert any(s <= start and end <= e for s, e in theirs), (start, end)
    # And we miss little: at most the 7 blocks a partly used bitmap byte can hide at each end of a run.
    total_theirs = sum(e - s for s, e in theirs)
    total_ours = sum(e - s for s, e in ours)
    assert total_ours >= total_theirs - 14 * len(theirs)
    assert total_ours * bs >= 4 * MiB  # the deleted file's space at least
    # Aligned to 512 KiB blocks, only whole blocks are left out.
    aligned = free_space(read_at(image), size, align=BLOCK_SIZE)
    assert aligned is not None and all(s % BLOCK_SIZE == 0 == e % BLOCK_SIZE for s, e in aligned.free)
    assert 0 < aligned.free_bytes <= found.free_bytes


@pytest.mark.parametrize("change, why", [
    (["ssv", "state", "0"], "not cleanly unmounted (or mounted now)"),
    (["ssv", "state", "3"], "errors found"),
    (["feature", "needs_recovery"], "a journal to replay"),
])
def test_a_filesystem_that_is_not_clean_is_read_whole(tmp_path: Path, change: list[str], why: str) -> None:
    image = tmp_path / "fs.img"
    make_fs(image, 64 * MiB, ["-t", "ext4"])
    assert free_space(read_at(image), 64 * MiB) is not None
    tool("debugfs", "-w", "-R", " ".join(change), image)
    assert free_space(read_at(image), 64 * MiB) is None, why


@pytest.mark.parametrize("options", [["-t", "ext4", "-O", "bigalloc", "-b", "4096", "-C", "16384"],
                                     ["-t", "ext4", "-O", "meta_bg,^resize_inode"]])
def test_layouts_read_otherwise_are_read_whole(tmp_path: Path, options: list[str]) -> None:
    image = tmp_path / "fs.img"
    make_fs(image, 128 * MiB, options)
    assert free_space(read_at(image), 128 * MiB) is None


def test_a_group_descriptor_pointing_past_the_filesystem_is_read_whole(tmp_path: Path) -> None:
    image = tmp_path / "fs.img"
    make_fs(image, 64 * MiB, ["-t", "ext2", "-b", "4096"])  # 32-byte descriptors in block 1
    assert free_space(read_at(image), 64 * MiB) is not None
    with image.open("r+b") as disk:
        disk.seek(4096 + 8)  # group 0's inode table: its last blocks would lie past the filesystem's end
        disk.write((64 * MiB // 4096 - 1).to_bytes(4, "little"))
    assert free_space(read_at(image), 64 * MiB) is None


def test_no_filesystem_or_a_truncated_one_is_read_whole(tmp_path: Path) -> None:
    noise = tmp_path / "noise.img"
    noise.write_bytes(random.Random(1).randbytes(4 * MiB))
    assert free_space(read_at(noise), 4 * MiB) is None
    image = tmp_path / "fs.img"
    make_fs(image, 64 * MiB, ["-t", "ext4"])
    os.truncate(image, 32 * MiB)  # the superblock promises blocks the disk does not have
    assert free_space(read_at(image), 32 * MiB) is None
    with RawImageSource(image, skip_free_space=True) as source:
        assert source.free_space is None and source.allocated_blocks() is not None  # holes only


def test_image_backup_skips_free_space_and_restores_a_clean_filesystem(tmp_path: Path) -> None:
    size = 96 * MiB
    contents = populate(tmp_path / "files", seed=7)
    image = tmp_path / "disk.img"
    make_fs(image, size, ["-t", "ext4", "-b", "4096"], tmp_path / "files")
    tool("debugfs", "-w", "-R", "rm /doomed", image)
    with image.open("r+b") as disk:  # no holes: a disk read from a device has none
        data = bytearray(disk.read())
        disk.seek(0)
        disk.write(data)
    blocks = size // BLOCK_SIZE
    with RawImageSource(image, skip_free_space=True) as source:
        assert source.free_space is not None
        wanted = source.allocated_blocks()
        assert wanted is not None and len(wanted) < blocks
        skipped = [b for b in range(blocks) if b not in set(wanted)]
    assert any(any(data[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]) for b in skipped)  # deleted data is left out

    repo = tmp_path / "repo"
    assert run("repo", "init", "--repo", repo).returncode == 0
    skipping = ok_json("image", "backup", "--repo", repo, image)
    assert skipping["BlocksRead"] == len(wanted) and skipping["FreeSpaceSkipped"] == len(skipped) * BLOCK_SIZE
    restored = tmp_path / "restored.img"
    ok_json("image", "restore", "--repo", repo, skipping["ImageId"], restored)
    assert tool("e2fsck", "-fn", restored, check=False).returncode == 0
    for name, expected in contents.items():
        if name != "doomed":
            out = subprocess.run([str(TOOLS["debugfs"]), "-R", f"cat /{name}", str(restored)], capture_output=True,
                                 check=True, timeout=60).stdout
            assert out == expected, name
    back = restored.read_bytes()
    for b in skipped:  # free space restores as zeros; everything else byte for byte
        assert not any(back[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE])
    assert all(back[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE] == data[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]
               for b in wanted)

    whole = ok_json("image", "backup", "--repo", repo, image, "--read-free-space")
    assert whole["BlocksRead"] == blocks and whole["FreeSpaceSkipped"] == 0
    ok_json("image", "restore", "--repo", repo, whole["ImageId"], restored)
    assert restored.read_bytes() == bytes(data)
    described = ok_json("image", "list", "--repo", repo)
    assert [json.dumps(d["ImageId"]) for d in described] == [json.dumps(skipping["ImageId"]),
                                                              json.dumps(whole["ImageId"])]
