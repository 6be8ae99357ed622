"""The bucket math of the API rate limits (plugyard.ratelimit.RateLimiter, GCRA)."""

from __future__ import annotations

import pytest

from plugyard.ratelimit import KeySet, RateLimiter, retry_after
from plugyard.settings import from_env


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_with_the_wait_until_the_next_request() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 5, clock=clock)
    decisions = [limiter.take("k") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)
    refused = limiter.take("k")
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(0.5)
    assert retry_after(refused) == 1
    # Refused requests cost nothing: after the wait exactly one more is allowed.
    clock.now += 0.5
    assert limiter.take("k").allowed
    assert not limiter.take("k").allowed


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 3, clock=clock)
    for _ in range(3):
        assert limiter.take("k").allowed
    clock.now += 0.2  # two requests' worth
    assert [limiter.take("k").allowed for _ in range(3)] == [True, True, False]
    clock.now += 3600  # an hour idle: the bucket holds the burst, not more
    assert [limiter.take("k").allowed for _ in range(4)] == [True, True, True, False]


def test_reset_is_the_time_until_the_bucket_is_full_again() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 10, clock=clock)
    first = limiter.take("k")
    assert first.reset_s == pytest.approx(1.0)
    for _ in range(3):
        last = limiter.take("k")
    assert last.reset_s == pytest.approx(4.0)
    assert last.remaining == 6


def test_keys_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock=clock)
    assert limiter.take("a").allowed
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
    assert limiter.take("b").allowed


def test_a_slow_rate_waits_whole_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(0.1, 1, clock=clock)
    assert limiter.take("k").allowed
    refused = limiter.take("k")
    assert refused.retry_after_s == pytest.approx(10.0)
    assert retry_after(refused) == 10


def test_force_charges_over_the_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock)
    assert limiter.take("k").allowed
    assert limiter.take("k", force=True).allowed
    refused = limiter.take("k")
    assert refused.retry_after_s == pytest.approx(2.0)


def test_the_map_is_bounded_and_idle_keys_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.take(i)
    assert len(limiter) == 100
    # The most recently used keys are kept (and still limited).
    assert limiter.take(999).allowed
    assert not limiter.take(999).allowed
    clock.now += 10  # every bucket is full again: each request drops idle keys as it goes
    for _ in range(60):
        limiter.take("fresh")
        clock.now += 1.0
    assert len(limiter) <= 1


def test_key_set_is_bounded_and_forgets_the_least_recently_used() -> None:
    keys = KeySet(3)
    for k in "abc":
        keys.add(k)
    assert "a" in keys  # now most recently used
    keys.add("d")
    assert len(keys) == 3
    assert "b" not in keys
    assert "a" in keys
    keys.discard("a")
    assert "a" not in keys


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(0.0, 1, 1), (-1.0, 1, 1), (1.0, 0, 1), (1.0, 1, 0)])
def test_bad_parameters_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        RateLimiter(rate, burst, max_keys=max_keys)


def test_settings_from_the_environment() -> None:
    base = {"DATABASE_URL": "postgresql://x/y"}
    default = from_env(base).rate_limit
    assert (default.per_s, default.burst, default.client_per_s, default.client_burst) == (
        50.0,
        200,
        50.0,
        200,
    )
    custom = from_env({**base, "PLUGYARD_RATE_LIMIT_PER_S": "5", "PLUGYARD_RATE_LIMIT_BURST": "7"}).rate_limit
    # The client limit follows the token limit unless set on its own.
    assert (custom.per_s, custom.burst, custom.client_per_s, custom.client_burst) == (5.0, 7, 5.0, 7)
    off = from_env({**base, "PLUGYARD_RATE_LIMIT_PER_S": "0"}).rate_limit
    assert off.per_s == 0
    assert off.client_per_s == 0
    for bad in ({"PLUGYARD_RATE_LIMIT_PER_S": "-1"}, {"PLUGYARD_RATE_LIMIT_BURST": "0"}):
        with pytest.raises(ValueError, match="RATE_LIMIT"):
            from_env({**base, **bad})
