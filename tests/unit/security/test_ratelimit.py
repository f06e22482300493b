"""The in-process token bucket: the grant bound in every window, exact Retry-After, safety
under threads, bounded memory, and how settings pick a limiter."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.config import get_settings
from mloop.errors import ConfigError, InvalidInput
from mloop.security import InMemoryRateLimiter, RateLimiter, RedisRateLimiter, rate_limiter_for
from mloop.security._ratelimit import redact_url


@dataclass(frozen=True)
class Limit:
    rate: float
    burst: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


limits = st.builds(
    Limit,
    rate=st.floats(min_value=0.01, max_value=1000.0, allow_nan=False),
    burst=st.integers(min_value=1, max_value=50),
)
# each step: advance the clock by dt seconds, then try n acquires
steps = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), st.integers(0, 8)),
    min_size=1,
    max_size=60,
)


def _grant_times(limit: Limit, plan: list[tuple[float, int]]) -> list[float]:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    granted: list[float] = []
    for dt, attempts in plan:
        clock.now += dt
        for _ in range(attempts):
            if limiter.try_acquire("k", limit) is None:
                granted.append(clock.now)
    return granted


@settings(max_examples=200, deadline=None)
@given(limit=limits, plan=steps)
def test_no_window_grants_more_than_burst_plus_rate_times_its_length(
    limit: Limit, plan: list[tuple[float, int]]
) -> None:
    granted = _grant_times(limit, plan)
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            window = granted[j] - start
            assert j - i + 1 <= limit.burst + limit.rate * window + 1e-6


@settings(max_examples=200, deadline=None)
@given(limit=limits, plan=steps)
def test_retry_after_is_exactly_when_the_next_token_is_back(
    limit: Limit, plan: list[tuple[float, int]]
) -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    for dt, attempts in plan:
        clock.now += dt
        for _ in range(attempts):
            limiter.try_acquire("k", limit)
    # drain whatever is left, then the refusal says when to come back
    while (wait := limiter.try_acquire("k", limit)) is None:
        pass
    assert 0 < wait <= 1 / limit.rate + 1e-9
    if wait > 1e-3:
        clock.now += wait * 0.99
        assert limiter.try_acquire("k", limit) is not None
    clock.now += wait
    assert limiter.try_acquire("k", limit) is None


@settings(max_examples=100, deadline=None)
@given(limit=limits)
def test_a_fresh_bucket_grants_its_burst_at_once_then_refuses(limit: Limit) -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    results = [limiter.try_acquire("k", limit) for _ in range(limit.burst + 3)]
    assert results[: limit.burst] == [None] * limit.burst
    assert all(r is not None and r > 0 for r in results[limit.burst :])


@settings(max_examples=100, deadline=None)
@given(
    limit=limits,
    plan=st.lists(
        st.tuples(st.floats(0.0, 3.0, allow_nan=False), st.sampled_from("abcd")), max_size=80
    ),
)
def test_forgetting_full_buckets_changes_no_answer(
    limit: Limit, plan: list[tuple[float, str]]
) -> None:
    clock = Clock()
    tiny = InMemoryRateLimiter(clock=clock, max_buckets=1)
    roomy = InMemoryRateLimiter(clock=clock)
    for dt, bucket in plan:
        clock.now += dt
        a, b = tiny.try_acquire(bucket, limit), roomy.try_acquire(bucket, limit)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a == pytest.approx(b)


def test_buckets_are_independent_and_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock, max_buckets=10)
    limit = Limit(rate=1.0, burst=1)
    assert limiter.try_acquire("a", limit) is None
    assert limiter.try_acquire("a", limit) is not None
    assert limiter.try_acquire("b", limit) is None
    clock.now += 5  # every bucket is full again: none carries information
    for i in range(100):
        limiter.try_acquire(f"key-{i}", limit)
        clock.now += 1
    assert len(limiter) <= 11


def test_a_smaller_burst_applies_at_once() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    assert limiter.try_acquire("k", Limit(1.0, 10)) is None  # 9 left
    granted = sum(limiter.try_acquire("k", Limit(1.0, 2)) is None for _ in range(5))
    assert granted == 2


def test_threads_racing_on_one_bucket_never_over_grant() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())  # frozen clock: no refill at all
    limit = Limit(rate=1.0, burst=40)
    grants: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = [limiter.try_acquire("shared", limit) is None for _ in range(50)]
        with lock:
            grants.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(grants) == 40


def test_acquire_is_awaitable_and_the_limiter_fits_the_protocol() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    assert isinstance(limiter, RateLimiter)

    async def run() -> list[float | None]:
        return [await limiter.acquire("k", Limit(2.0, 1)) for _ in range(2)]

    first, second = asyncio.run(run())
    assert first is None
    assert second == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rate", "burst", "needle"),
    [
        (0.0, 5, "rate above 0"),
        (-1.0, 5, "rate above 0"),
        (float("nan"), 5, "rate above 0"),
        (float("inf"), 5, "finite rate"),
        (1.0, 0, "burst of at least 1"),
    ],
)
def test_a_limit_that_can_never_grant_is_refused(rate: float, burst: int, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        InMemoryRateLimiter().try_acquire("k", Limit(rate, burst))


def test_settings_pick_memory_without_redis_and_redis_with_it() -> None:
    assert isinstance(rate_limiter_for(get_settings()), InMemoryRateLimiter)
    limiter = rate_limiter_for(get_settings(redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.on_error == "local"
    closed = rate_limiter_for(get_settings(redis_url="redis://127.0.0.1:1/0"), on_error="closed")
    assert isinstance(closed, RedisRateLimiter)
    assert closed.on_error == "closed"


def test_the_redis_error_mode_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("MLOOP_RATE_LIMIT_ON_REDIS_ERROR", "open")
    limiter = rate_limiter_for()
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.on_error == "open"
    assert rate_limiter_for(on_error="closed").on_error == "closed"  # type: ignore[attr-defined]


def test_environment_variable_picks_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_REDIS_URL", "redis://127.0.0.1:1/0")
    assert isinstance(rate_limiter_for(), RedisRateLimiter)


def test_a_bad_redis_url_or_mode_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="redis://") as caught:
        RedisRateLimiter("http://user:s3cret@example.com")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigError, match="on_error must be one of"):
        RedisRateLimiter("redis://127.0.0.1:1", on_error="maybe")  # type: ignore[arg-type]


def test_passwords_never_reach_repr_or_messages() -> None:
    url = "redis://default:hunter2@cache.internal:6380/1"
    assert "hunter2" not in redact_url(url)
    assert redact_url(url) == "redis://default:***@cache.internal:6380/1"
    assert "hunter2" not in repr(RedisRateLimiter(url))
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_refusal_by_one_bucket_costs_the_others_nothing() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    per_key, per_deployment = Limit(1e-6, 5), Limit(1e-6, 1)
    both = [("key:alice", per_key), ("deployment:iris", per_deployment)]
    assert limiter.try_acquire_all(both) is None
    for _ in range(3):
        assert limiter.try_acquire_all(both) == pytest.approx(1e6)  # the deployment is dry
    granted = sum(limiter.try_acquire("key:alice", per_key) is None for _ in range(10))
    assert granted == 4  # 5 - the one granted request: the refusals took nothing


def test_a_bucket_named_twice_gives_one_token_and_none_gives_a_pass() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    limit = Limit(1e-6, 2)
    assert limiter.try_acquire_all([("k", limit), ("k", limit)]) is None
    assert limiter.try_acquire("k", limit) is None
    assert limiter.try_acquire("k", limit) is not None
    assert limiter.try_acquire_all([]) is None


@settings(max_examples=150, deadline=None)
@given(
    key_limit=limits,
    deployment_limit=limits,
    plan=st.lists(
        st.tuples(st.floats(0.0, 2.0, allow_nan=False), st.sampled_from(["a", "b"])),
        max_size=80,
    ),
)
def test_all_or_nothing_keeps_every_bucket_within_its_bound(
    key_limit: Limit, deployment_limit: Limit, plan: list[tuple[float, str]]
) -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(clock=clock)
    grants: dict[str, list[float]] = {"a": [], "b": [], "deployment": []}
    for dt, key in plan:
        clock.now += dt
        wait = limiter.try_acquire_all([(key, key_limit), ("deployment", deployment_limit)])
        if wait is None:
            grants[key].append(clock.now)
            grants["deployment"].append(clock.now)
        else:
            assert wait > 0
    for name, times in grants.items():
        limit = deployment_limit if name == "deployment" else key_limit
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= limit.burst + limit.rate * (times[j] - start) + 1e-6


def test_a_deployments_rate_limit_guard_is_a_limit() -> None:
    from mloop.serving._spec import RateLimit

    limiter = InMemoryRateLimiter(clock=Clock())
    limit = RateLimit(rate=0.5, burst=2)
    assert [limiter.try_acquire("k", limit) for _ in range(3)] == [None, None, 2.0]
