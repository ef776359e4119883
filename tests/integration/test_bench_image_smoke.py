"""The image benchmark's image builder at a small size: real mkfs.ext4, real files, real changed-block lists.

The benchmark's figures mean something only if each changed-block list names exactly the blocks that differ from
the base, and if the changes are file data (the filesystem stays consistent). restic and borg are not run here.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 512 * 1024
SIZE = 64 * 1024 * 1024


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_image_backup", ROOT / "bench" / "image_backup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_bench()
pytestmark = pytest.mark.skipif(
    any(bench.find_program(name) is None for name in ("mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck")),
    reason="e2fsprogs (mkfs.ext4, debugfs, dumpe2fs, e2fsck) is not installed")


def blocks_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[offset:offset + BLOCK] for offset in range(0, len(data), BLOCK)]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return bench.build_images(tmp_path_factory.mktemp("bench-image"), SIZE, 7)


def listed(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("which", ["successor", "sibling"])
def test_changed_block_list_names_exactly_the_blocks_that_differ(images: Any, which: str) -> None:
    base = blocks_of(images.base)
    derived = blocks_of(getattr(images, which))
    changed = listed(getattr(images, f"{which}_changed"))
    assert len(base) == len(derived) == SIZE // BLOCK
    assert changed == sorted(set(changed))
    assert len(changed) == max(1, round(len(base) / 100))
    for index, (old, new) in enumerate(zip(base, derived, strict=True)):
        assert (old != new) == (index in changed), f"block {index}"
        if index in changed:
            assert old.count(0) != len(old), f"block {index}: a changed block must lie in allocated file data"


def test_successor_and_sibling_change_different_blocks(images: Any) -> None:
    successor = set(listed(images.successor_changed))
    sibling = set(listed(images.sibling_changed))
    assert successor and sibling and not successor & sibling


def test_every_image_is_a_consistent_ext4_filesystem_with_the_generated_files(images: Any, tmp_path: Path) -> None:
    for path in (images.base, images.successor, images.sibling):
        check = subprocess.run([bench.find_program("e2fsck"), "-fn", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    info = images.info
    assert 0.4 < info["filesystem_used"] < 0.75
    assert 0 < info["blocks_nonzero"] < info["blocks"]
    # A file read back from the image holds what the generator wrote for it.
    listing = subprocess.run([bench.find_program("debugfs"), "-R", "ls -p /text/d000", str(images.base)],
                             capture_output=True, text=True, check=True).stdout
    first = sorted(line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6 and line.split("/")[5])
    assert any(name.endswith(".txt") for name in first)
    target = tmp_path / "file.txt"
    name = next(name for name in first if name.endswith(".txt"))
    subprocess.run([bench.find_program("debugfs"), "-R", f"dump /text/d000/{name} {target}",
                    str(images.base)], capture_output=True, check=True)
    text = target.read_bytes()
    assert text and text.count(0) == 0 and text.isascii()


def test_changed_blocks_floor_is_the_zstd3_size_of_those_blocks(images: Any) -> None:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3)
    blocks = blocks_of(images.successor)
    expected = sum(len(compressor.compress(blocks[index]))
                   for index in listed(images.successor_changed))
    assert images.info["successor_changed_zstd3_bytes"] == expected


def test_the_generators_are_deterministic_for_a_seed() -> None:
    first, second = bench.Corpus(3), bench.Corpus(3)
    for kind in ("text", "source", "binary", "random", "disk"):
        assert first.of_kind(kind, random.Random(1), 10000) == second.of_kind(kind, random.Random(1), 10000)
    assert bench.Corpus(4).text(random.Random(1), 10000) != first.text(random.Random(1), 10000)


def test_built_images_are_reused_only_when_the_recipe_matches(tmp_path: Path) -> None:
    built = bench.build_images(tmp_path, 32 * 1024 * 1024, 1)
    stamp = built.base.stat().st_mtime_ns
    again = bench.build_images(tmp_path, 32 * 1024 * 1024, 1)
    assert again.base.stat().st_mtime_ns == stamp and again.info == built.info
    other = bench.build_images(tmp_path, 32 * 1024 * 1024, 2)
    assert other.info["seed"] == 2 and other.base.stat().st_mtime_ns != stamp
    shutil.rmtree(tmp_path / "images")


def test_disk_floor_reads_every_pack_and_writes_the_bytes_asked(tmp_path: Path) -> None:
    packs = tmp_path / "data"
    (packs / "ab").mkdir(parents=True)
    for number, size in enumerate((3 * 1024 * 1024, 9 * 1024 * 1024 + 4096)):
        (packs / "ab" / f"pack{number}").write_bytes(random.Random(number).randbytes(size))
    scratch = tmp_path / "floor.scratch"
    seconds = bench.disk_floor(packs, 12 * 1024 * 1024, scratch)
    assert 0 < seconds < 60
    assert not scratch.exists()
    with pytest.raises(bench.BenchError, match="disk-floor measurement failed"):
        bench.disk_floor(packs, 4 * 1024 * 1024, tmp_path / "missing" / "floor.scratch")
