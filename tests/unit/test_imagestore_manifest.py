"""Manifests and block maps: encoding, incremental merge against a dict model, damage."""

from __future__ import annotations

import os
from array import array
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.imagestore.manifest import BlockMap, Disk, Manifest, check_image_id, new_image_id

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def chunk(n: int) -> bytes:
    return n.to_bytes(4, "big") * 8


def block_map(model: dict[int, bytes]) -> BlockMap:
    result = BlockMap()
    for index in sorted(model):
        result.append(index, model[index])
    return result


def test_block_map_basics() -> None:
    m = block_map({0: chunk(1), 5: chunk(2), 9: chunk(1)})
    assert len(m) == 3
    assert m.get(5) == chunk(2)
    assert m.get(4) is None
    assert list(m.items()) == [(0, chunk(1)), (5, chunk(2)), (9, chunk(1))]
    with pytest.raises(ValueError):
        m.append(9, chunk(3))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(0, 300), st.integers(0, 5), max_size=80),
    st.dictionaries(st.integers(0, 320), st.one_of(st.none(), st.integers(0, 5)), max_size=40),
    st.integers(1, 330),
)
def test_with_changes_matches_a_dict_model(base: dict[int, int], changes: dict[int, int | None], count: int) -> None:
    parent = block_map({i: chunk(v) for i, v in base.items()})
    expected = {i: chunk(v) for i, v in base.items()}
    for index, value in changes.items():
        if value is None:
            expected.pop(index, None)
        else:
            expected[index] = chunk(value)
    expected = {i: c for i, c in expected.items() if i < count}
    merged = parent.with_changes({i: None if v is None else chunk(v) for i, v in changes.items()}, count)
    assert dict(merged.items()) == expected
    assert list(merged.indexes) == sorted(expected)
    assert dict(parent.items()) == {i: chunk(v) for i, v in base.items()}  # the parent is untouched


def test_block_map_encoding_round_trip_and_damage() -> None:
    m = block_map({3: chunk(1), 4: chunk(2), 70000: chunk(3)})
    encoded = m.encode()
    decoded, used = BlockMap.decode(memoryview(encoded + b"tail"), "w")
    assert decoded == m
    assert used == len(encoded)
    with pytest.raises(DamagedObject, match="longer than"):
        BlockMap.decode(memoryview(encoded[:-1]), "w")
    unordered = BlockMap(array("Q", [5, 5]), bytearray(64)).encode()
    with pytest.raises(DamagedObject, match="ascending"):
        BlockMap.decode(memoryview(unordered), "w")


def sample_manifest() -> Manifest:
    return Manifest(
        image_id=new_image_id(),
        created=NOW,
        disks=[Disk("/dev/xvda", 3 * BLOCK_SIZE + 100, block_map({0: chunk(1), 3: chunk(9)})),
               Disk("data", BLOCK_SIZE, BlockMap())],
        parent=new_image_id(),
        delete_after=NOW + timedelta(days=90),
        tags={"env": "prod"},
        source={"InstanceId": "i-0123", "InstanceType": "t3.micro"},
        stats={"blocks_read": 2},
    )


def test_manifest_round_trip() -> None:
    manifest = sample_manifest()
    decoded = Manifest.decode(manifest.image_id, manifest.encode(), "images/x")
    assert decoded == manifest
    assert decoded.disks[0].block_count == 4
    assert decoded.size == 4 * BLOCK_SIZE + 100


def test_manifest_under_another_name_or_with_trailing_bytes_is_damage() -> None:
    manifest = sample_manifest()
    with pytest.raises(DamagedObject, match="holds image"):
        Manifest.decode(new_image_id(), manifest.encode(), "images/y")
    with pytest.raises(DamagedObject, match="after its last block map"):
        Manifest.decode(manifest.image_id, manifest.encode() + b"x", "images/x")
    with pytest.raises(DamagedObject):
        Manifest.decode(manifest.image_id, manifest.encode()[:30], "images/x")


def test_a_block_beyond_the_disk_is_damage() -> None:
    manifest = sample_manifest()
    manifest.disks[1].block_map.append(1, chunk(1))  # the disk has one block: index 0
    with pytest.raises(DamagedObject, match="beyond its size"):
        Manifest.decode(manifest.image_id, manifest.encode(), "images/x")


def test_image_ids() -> None:
    image_id = new_image_id()
    assert check_image_id(image_id) == image_id
    assert new_image_id() != image_id
    with pytest.raises(InvalidParameterValue, match="32 lower-case hex"):
        check_image_id(os.urandom(16).hex().upper() + "Z")
