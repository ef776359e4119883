"""gc's plan: only unreferenced packs, older than the safety margin, whose retention has passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.gc import PackFacts, plan_gc

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MARGIN = timedelta(hours=1)


def pack(name: str, *, referenced: bool = False, age: timedelta = timedelta(days=1), indexed: bool = True,
         retain_until: datetime | None = None, size: int = 100) -> PackFacts:
    return PackFacts(name, size, NOW - age, indexed, referenced, retain_until)


def test_plan_sorts_each_pack_into_exactly_one_outcome() -> None:
    packs = [
        pack("data/aa/referenced", referenced=True, age=timedelta(days=400)),
        pack("data/bb/young", age=timedelta(minutes=59), indexed=False),
        pack("data/cc/retained", retain_until=NOW + timedelta(days=3)),
        pack("data/dd/expired-retention", retain_until=NOW - timedelta(seconds=1), size=7),
        pack("data/ee/crash-leftover", indexed=False, age=timedelta(hours=2), size=11),
    ]
    plan = plan_gc(packs, NOW, MARGIN)
    assert [p.name for p in plan.delete] == ["data/dd/expired-retention", "data/ee/crash-leftover"]
    assert [p.name for p in plan.keep_recent] == ["data/bb/young"]
    assert [p.name for p in plan.keep_retained] == ["data/cc/retained"]
    assert plan.referenced == 1
    assert plan.bytes_freed == 18
    assert plan.rewrite_index  # one doomed pack is indexed


def test_only_unindexed_leftovers_need_no_index_rewrite() -> None:
    plan = plan_gc([pack("data/ee/x", indexed=False)], NOW, MARGIN)
    assert len(plan.delete) == 1
    assert not plan.rewrite_index


def test_the_margin_boundary() -> None:
    assert plan_gc([pack("a", age=MARGIN)], NOW, MARGIN).delete
    assert not plan_gc([pack("a", age=MARGIN - timedelta(seconds=1))], NOW, MARGIN).delete
    assert plan_gc([pack("a", age=timedelta(0))], NOW, timedelta(0)).delete


def test_negative_margin_is_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="safety_margin"):
        plan_gc([], NOW, timedelta(seconds=-1))
