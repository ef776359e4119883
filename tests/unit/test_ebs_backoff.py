"""The pure parts of the EBS block path: AIMD on the in-flight limit, jittered backoff, answer classification,
index runs, block-token pages and the checksum check."""

from __future__ import annotations

import base64
import hashlib
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.aws.ebs_blocks import (
    AdaptiveLimit,
    IndexRuns,
    _checksum_problem,
    _TokenPages,
    backoff_delay,
    classify,
)
from snapkeep.domain.errors import DependencyFailure
from snapkeep.imagestore.format import BLOCK_SIZE


def test_a_throttle_halves_the_limit_once_per_interval() -> None:
    limit = AdaptiveLimit(64, cut_interval=0.25)
    assert limit.current == 64
    assert limit.on_throttle(10.0) and limit.current == 32
    # the rest of the same burst does not cut again
    assert not limit.on_throttle(10.1) and not limit.on_throttle(10.24)
    assert limit.current == 32
    assert limit.on_throttle(10.25) and limit.current == 16
    for step in range(20):
        limit.on_throttle(11.0 + step)
    assert limit.current == 1 and limit.cuts == 2 + 20


def test_successes_add_back_about_one_per_window_up_to_the_maximum() -> None:
    limit = AdaptiveLimit(64, minimum=2)
    limit.on_throttle(0.0)
    assert limit.current == 32
    for _ in range(100):  # about three windows of successes: +1/limit each, about +1 per window
        limit.on_success()
    assert 34 <= limit.current <= 35
    for _ in range(10_000):
        limit.on_success()
    assert limit.current == 64
    for step in range(10):
        limit.on_throttle(float(step))
    assert limit.current == 2  # never below the minimum


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(4, minimum=5)
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(4, minimum=0)


@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_jittered_in_the_upper_half_of_an_exponential_ceiling(attempt: int, seed: int) -> None:
    delay = backoff_delay(attempt, random.Random(seed), base=0.1, cap=10.0)
    ceiling = min(10.0, 0.1 * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_spreads_requests_throttled_together() -> None:
    rng = random.Random(5)
    delays = {round(backoff_delay(4, rng), 6) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= 0.4 and max(delays) <= 0.8


@pytest.mark.parametrize("status,code,error,verdict", [
    (200, None, None, "ok"), (201, None, None, "ok"),
    (429, "ThrottlingException", None, "throttle"), (429, None, None, "throttle"),
    (400, "RequestThrottledException", None, "throttle"), (400, "ConcurrentLimitExceededException", None, "throttle"),
    (503, None, None, "throttle"), (500, "InternalServerException", None, "retry"), (502, None, None, "retry"),
    (0, None, "Connection reset by peer", "retry"), (400, "ValidationException", None, "fail"),
    (403, "AccessDeniedException", None, "fail"), (404, "ResourceNotFoundException", None, "fail"),
])
def test_answers_are_classified(status: int, code: str | None, error: str | None, verdict: str) -> None:
    assert classify(status, code, error) == verdict


def test_index_runs_hold_ascending_indexes_compactly() -> None:
    runs = IndexRuns()
    for index in [0, 1, 2, 7, 8, 100, 101, 102, 103]:
        runs.add(index)
    assert runs.ranges == [range(0, 3), range(7, 9), range(100, 104)]
    assert len(runs) == 9
    assert [i for i in range(-1, 110) if i in runs] == [0, 1, 2, 7, 8, 100, 101, 102, 103]
    assert "7" not in runs
    assert list(runs.without({1, 100}).sequence()) == [0, 2, 7, 8, 101, 102, 103]
    assert list(runs.without(()).sequence()) == list(runs.sequence())
    with pytest.raises(DependencyFailure, match="went backwards at block 5"):
        runs.add(5)


class Listing:
    """A listing of blocks 0, 2, 4, ... 398 in pages of 50, as StartingBlockIndex pages it."""

    def __init__(self, expires_in: float = 3600.0) -> None:
        self.calls: list[int | None] = []
        self.expires_in = expires_in
        self.generation = 0

    def __call__(self, start: int | None, next_token: str | None) -> tuple[list[tuple[int, str | None]], str | None,
                                                                          float, int]:
        self.calls.append(start)
        begin = start or 0
        indexes = [i for i in range(0, 400, 2) if i >= begin][:50]
        more = bool(indexes) and indexes[-1] < 398
        return ([(i, f"token-{i}-{self.generation}") for i in indexes], "more" if more else None,
                time.time() + self.expires_in, 1)


def test_token_pages_are_loaded_where_needed_and_the_oldest_forgotten() -> None:
    listing = Listing()
    pages = _TokenPages(listing, capacity=2)
    assert pages.token(0) == "token-0-0"
    assert pages.token(98) == "token-98-0" and pages.token(97) is None  # same page: no call
    assert listing.calls == [0]
    assert pages.token(100) == "token-100-0"
    assert pages.token(300) == "token-300-0"  # a third page: the first is forgotten
    assert listing.calls == [0, 100, 300]
    assert pages.token(2) == "token-2-0"
    assert listing.calls == [0, 100, 300, 2]
    assert pages.token(399) is None  # the last page reaches the end of the volume
    assert listing.calls == [0, 100, 300, 2]


def test_token_pages_are_listed_again_when_they_expire_or_are_refused() -> None:
    listing = Listing(expires_in=30.0)  # inside the refresh margin: stale at once
    pages = _TokenPages(listing, refresh_margin=60.0)
    pages.token(10)
    pages.token(10)
    assert listing.calls == [10, 10]
    fresh = Listing()
    pages = _TokenPages(fresh)
    assert pages.token(10) == "token-10-0"
    fresh.generation = 1
    assert pages.token(10, refresh=True) == "token-10-1"
    assert fresh.calls == [10, 10]


def test_the_checksum_check() -> None:
    data = bytes(range(256)) * (BLOCK_SIZE // 256)
    digest = hashlib.sha256(data).digest()
    good = base64.b64encode(digest).decode()
    assert _checksum_problem(good, BLOCK_SIZE, digest) is None
    assert "but the data's SHA-256 is" in (_checksum_problem(base64.b64encode(b"x" * 32).decode(), BLOCK_SIZE,
                                                             digest) or "")
    assert "no x-amz-Checksum" in (_checksum_problem(None, BLOCK_SIZE, digest) or "")
    assert "not base64" in (_checksum_problem("%%%", BLOCK_SIZE, digest) or "")
    assert "1000 bytes arrived" in (_checksum_problem(good, 1000, digest) or "")
