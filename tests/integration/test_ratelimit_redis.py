"""Rate limits shared through a real Redis: two limiter instances (two replicas) share one
bucket, concurrent acquires never over-grant, the script survives a SCRIPT FLUSH, and a
Redis outage does what ``on_error`` says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
import redis

from mloop.security import RedisRateLimiter
from tests.fixtures.redis import RedisServer

T = TypeVar("T")


@dataclass(frozen=True)
class Limit:
    rate: float
    burst: int


# refills one token in about 11 days: within a test, a bucket only ever empties
NO_REFILL = 1e-6


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro()

    return asyncio.run(main())


def test_two_replicas_share_one_bucket(redis_url: str, redis_prefix: str) -> None:
    a = RedisRateLimiter(redis_url, prefix=redis_prefix)
    b = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limit = Limit(rate=NO_REFILL, burst=3)

    async def scenario() -> tuple[list[float | None], list[float | None], float | None]:
        try:
            first = [await a.acquire("key:alice", limit) for _ in range(2)]
            second = [await b.acquire("key:alice", limit) for _ in range(2)]
            other = await b.acquire("key:bob", limit)
            return first, second, other
        finally:
            await a.aclose()
            await b.aclose()

    first, second, other = run(scenario)
    assert first == [None, None]
    assert second[0] is None  # the third token, taken by the other replica
    assert second[1] is not None
    assert second[1] == pytest.approx(1 / NO_REFILL, rel=1e-3)  # Retry-After: one token's time
    assert other is None  # another key has its own bucket


def test_concurrent_acquires_from_two_replicas_never_over_grant(
    redis_url: str,
    redis_prefix: str,
) -> None:
    limit = Limit(rate=NO_REFILL, burst=25)
    replicas = [RedisRateLimiter(redis_url, prefix=redis_prefix) for _ in range(2)]

    async def scenario() -> list[float | None]:
        try:
            calls = [replicas[i % 2].acquire("deployment:iris", limit) for i in range(200)]
            return list(await asyncio.gather(*calls))
        finally:
            for limiter in replicas:
                await limiter.aclose()

    results = run(scenario)
    assert sum(r is None for r in results) == 25
    assert all(r is None or r > 0 for r in results)


def test_replicas_in_separate_threads_and_event_loops_never_over_grant(
    redis_url: str,
    redis_prefix: str,
) -> None:
    limit = Limit(rate=NO_REFILL, burst=30)
    grants: list[int] = []
    lock = threading.Lock()

    def replica() -> None:
        limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)

        async def burst() -> int:
            try:
                answers = await asyncio.gather(*(limiter.acquire("k", limit) for _ in range(40)))
                return sum(a is None for a in answers)
            finally:
                await limiter.aclose()

        granted = asyncio.run(burst())
        with lock:
            grants.append(granted)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 4
    assert sum(grants) == 30


def test_tokens_come_back_at_the_configured_rate(redis_url: str, redis_prefix: str) -> None:
    """Redis keeps the fractional token count, so a high rate refills between calls."""
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limit = Limit(rate=1000.0, burst=1)

    async def scenario() -> tuple[float | None, float | None]:
        try:
            first = await limiter.acquire("k", limit)
            await limiter.acquire("k", limit)  # empties the bucket
            # poll with a deadline: the bucket refills within a few milliseconds
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            again = await limiter.acquire("k", limit)
            while again is not None and loop.time() < deadline:
                await asyncio.sleep(again)
                again = await limiter.acquire("k", limit)
            return first, again
        finally:
            await limiter.aclose()

    first, again = run(scenario)
    assert first is None
    assert again is None


def test_the_bucket_key_expires_once_the_bucket_would_be_full(
    redis_url: str,
    redis_prefix: str,
) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)

    async def scenario() -> None:
        try:
            await limiter.acquire("k", Limit(rate=10.0, burst=5))
        finally:
            await limiter.aclose()

    run(scenario)
    admin = redis.Redis.from_url(redis_url)
    ttl_ms = admin.pttl(f"{redis_prefix}k")
    admin.close()
    assert 0 < ttl_ms <= 1100 + 100  # one token to refill (100 ms) + 1 s of slack


def test_the_script_is_loaded_again_after_a_script_flush(own_redis: RedisServer) -> None:
    limiter = RedisRateLimiter(own_redis.url)
    limit = Limit(rate=NO_REFILL, burst=6)
    admin = redis.Redis.from_url(own_redis.url)

    async def scenario() -> tuple[float | None, list[float | None]]:
        try:
            first = await limiter.acquire("k", limit)  # EVALSHA misses, EVAL loads it
            admin.script_flush()
            # one pipeline of EVALSHAs that all miss, then one of EVALs
            rest = await asyncio.gather(*(limiter.acquire("k", limit) for _ in range(8)))
            return first, list(rest)
        finally:
            await limiter.aclose()

    first, rest = run(scenario)
    assert first is None
    assert sum(r is None for r in rest) == 5
    assert not limiter.degraded
    admin.close()


def test_a_caller_that_gives_up_does_not_disturb_the_others(
    redis_url: str,
    redis_prefix: str,
) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limit = Limit(rate=NO_REFILL, burst=100)

    async def scenario() -> list[float | None]:
        try:
            tasks = [asyncio.ensure_future(limiter.acquire("k", limit)) for _ in range(20)]
            await asyncio.sleep(0)
            tasks[3].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(done[3], asyncio.CancelledError)
            return [d for i, d in enumerate(done) if i != 3]
        finally:
            await limiter.aclose()

    assert run(scenario) == [None] * 19


@pytest.mark.parametrize("mode", ["local", "closed", "open"])
def test_a_redis_outage_does_what_on_error_says_and_recovers(
    own_redis: RedisServer,
    mode: str,
) -> None:
    limiter = RedisRateLimiter(own_redis.url, on_error=mode, retry_interval=0.0)  # type: ignore[arg-type]
    limit = Limit(rate=NO_REFILL, burst=2)

    async def during_outage() -> list[float | None]:
        return [await limiter.acquire("k", limit) for _ in range(4)]

    async def scenario() -> tuple[list[float | None], list[float | None]]:
        try:
            assert await limiter.acquire("warm", limit) is None  # Redis is up
            own_redis.stop()
            down = await during_outage()
            own_redis.restart()
            up = [await limiter.acquire("k", limit) for _ in range(3)]
            return down, up
        finally:
            await limiter.aclose()

    down, up = run(scenario)
    if mode == "local":  # still limited, by this replica's own bucket
        assert down[:2] == [None, None]
        assert all(r is not None and r > 0 for r in down[2:])
    elif mode == "closed":
        assert all(r is not None and r > 0 for r in down)
    else:
        assert down == [None] * 4
    # back on the shared bucket (a restarted Redis starts empty, so full buckets)
    assert up[:2] == [None, None]
    assert up[2] is not None


def test_a_dead_redis_is_not_asked_again_until_the_retry_interval_passes(
    own_redis: RedisServer,
) -> None:
    now = [0.0]
    limiter = RedisRateLimiter(
        own_redis.url, on_error="closed", retry_interval=30.0, clock=lambda: now[0]
    )
    limit = Limit(rate=NO_REFILL, burst=5)

    async def scenario() -> tuple[float | None, float | None, bool, float | None]:
        try:
            own_redis.stop()
            refused = await limiter.acquire("k", limit)
            own_redis.restart()
            still_refused = await limiter.acquire("k", limit)  # not asked: inside the interval
            degraded = limiter.degraded
            now[0] += 31.0
            back = await limiter.acquire("k", limit)
            return refused, still_refused, degraded, back
        finally:
            await limiter.aclose()

    refused, still_refused, degraded, back = run(scenario)
    assert refused == pytest.approx(30.0)
    assert still_refused == pytest.approx(30.0)
    assert degraded
    assert back is None


def test_all_or_nothing_across_replicas(redis_url: str, redis_prefix: str) -> None:
    """A key's tokens are not spent on requests the shared deployment bucket refuses."""
    a = RedisRateLimiter(redis_url, prefix=redis_prefix)
    b = RedisRateLimiter(redis_url, prefix=redis_prefix)
    per_key, per_deployment = Limit(NO_REFILL, 5), Limit(NO_REFILL, 3)

    async def scenario() -> tuple[list[float | None], int]:
        try:
            calls = [
                (a if i % 2 else b).acquire_all(
                    [
                        (f"key:{'alice' if i % 3 else 'bob'}", per_key),
                        ("deployment", per_deployment),
                    ]
                )
                for i in range(40)
            ]
            answers = list(await asyncio.gather(*calls))
            left_for_alice = 0
            while await a.acquire("key:alice", per_key) is None:
                left_for_alice += 1
            return answers, left_for_alice
        finally:
            await a.aclose()
            await b.aclose()

    answers, left_for_alice = run(scenario)
    assert sum(x is None for x in answers) == 3
    granted_to_alice = sum(x is None for i, x in enumerate(answers) if i % 3)
    assert left_for_alice == 5 - granted_to_alice
