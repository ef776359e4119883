"""Where a restore reads from and which region it goes to: the pure rules behind RestoreFrom."""

from __future__ import annotations

import pytest

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.domain.restore_metadata import region_of_zone, restore_region, restore_source


@pytest.mark.parametrize(("zone", "region"), [
    ("us-east-1a", "us-east-1"), ("eu-west-1c", "eu-west-1"), ("us-west-2-lax-1a", "us-west-2"),
    ("ap-southeast-2b", "ap-southeast-2"), ("us-gov-west-1a", "us-gov-west-1"),
])
def test_region_of_zone(zone: str, region: str) -> None:
    assert region_of_zone(zone) == region


def test_region_of_something_that_is_no_zone_is_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="not an availability zone"):
        region_of_zone("Zone-1")


def test_restore_region_follows_the_zone_asked_for() -> None:
    assert restore_region("EBS", {"availabilityZone": "us-east-1b"}, "eu-west-1") == "us-east-1"
    assert restore_region("EC2", {"Placement": '{"AvailabilityZone": "us-east-1a"}'}, "eu-west-1") == "us-east-1"
    assert restore_region("EC2", {"AvailabilityZone": "eu-west-1a"}, "us-east-1") == "eu-west-1"
    assert restore_region("EC2", {}, "eu-west-1") == "eu-west-1"


def source(meta: dict[str, str], *, cold: bool = False, image: bool = True, kind: str = "EBS") -> str:
    return restore_source(kind, meta, point_region="eu-west-1", storage_class="COLD" if cold else "WARM",
                          has_image_backup=image)


def test_warm_points_read_snapshots_and_cold_points_their_image_backup() -> None:
    assert source({}) == "Snapshot"
    assert source({}, cold=True) == "ImageBackup"
    assert source({"RestoreFrom": "ImageBackup"}) == "ImageBackup"
    assert source({"RestoreFrom": "Snapshot", "availabilityZone": "eu-west-1a"}) == "Snapshot"


@pytest.mark.parametrize(("meta", "cold", "image", "words"), [
    ({"RestoreFrom": "ImageBackup"}, False, False, "has no image backup"),
    ({"RestoreFrom": "Snapshot"}, True, True, "cold storage"),
    ({}, True, False, "no image backup"),
    ({"availabilityZone": "us-east-1a"}, False, True, "RestoreFrom ImageBackup"),
    ({"availabilityZone": "us-east-1a"}, False, False, "no image backup, which could change region"),
])
def test_what_cannot_work_is_refused_with_the_way_out(meta: dict[str, str], cold: bool, image: bool,
                                                      words: str) -> None:
    with pytest.raises(InvalidParameterValue, match=words):
        source(meta, cold=cold, image=image)


def test_an_image_backup_may_go_to_another_region() -> None:
    assert source({"availabilityZone": "us-east-1a"}, cold=True) == "ImageBackup"
    assert source({"RestoreFrom": "ImageBackup", "availabilityZone": "us-east-1a"}) == "ImageBackup"
