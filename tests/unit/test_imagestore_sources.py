"""Changed-block lists and the block arithmetic of sparse files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.imagestore.sources import RawImageSource, _blocks_of_extents, block_count, parse_changed_blocks


def test_parse_changed_blocks() -> None:
    assert parse_changed_blocks("3\n1\n\n# comment\n3  # again\n 0 \n", 4) == [0, 1, 3]
    assert parse_changed_blocks("", 4) == []


@pytest.mark.parametrize(("text", "fragment"), [("1\nx\n", "line 2"), ("-1", "not a block index"),
                                                 ("4", "beyond the disk's 4 blocks"), ("1.5", "line 1")])
def test_bad_changed_block_lists(text: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match=fragment):
        parse_changed_blocks(text, 4)


def test_block_count_and_extents() -> None:
    assert block_count(0) == 0
    assert block_count(1) == 1
    assert block_count(BLOCK_SIZE) == 1
    assert block_count(BLOCK_SIZE + 1) == 2
    extents = [(0, 10), (BLOCK_SIZE - 1, BLOCK_SIZE + 1), (5 * BLOCK_SIZE, 7 * BLOCK_SIZE)]
    blocks = _blocks_of_extents(extents)
    assert list(blocks) == [0, 1, 5, 6]
    assert len(blocks) == 4
    assert [blocks[i] for i in range(4)] == [0, 1, 5, 6]
    assert blocks[-1] == 6
    assert list(_blocks_of_extents([(0, 1), (BLOCK_SIZE, 3 * BLOCK_SIZE), (3 * BLOCK_SIZE, 3 * BLOCK_SIZE + 1)])) == [
        0, 1, 2, 3]
    assert list(_blocks_of_extents([])) == []


def test_malloc_tuning_is_accepted_by_glibc() -> None:
    import platform

    from snapkeep.imagestore.malloc import tune_malloc

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is expected


def test_prefetched_blocks_read_back_through_the_page_cache(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    data = os.urandom(6 * BLOCK_SIZE)
    image.write_bytes(data)
    buffer = memoryview(bytearray(BLOCK_SIZE))
    with RawImageSource(image, direct=False) as source:
        source.prefetch([0, 1, 2, 5])  # two runs: 0-2 and 5
        source.prefetch([])
        for block in (5, 0, 2):
            assert source.read_into(block, buffer) == (BLOCK_SIZE, None)
            assert buffer.tobytes() == data[block * BLOCK_SIZE:(block + 1) * BLOCK_SIZE]
