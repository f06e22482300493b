"""Query rate limits (MITRE ATLAS AML.M0004): token buckets, in-process or shared in Redis.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens per second; a request
takes one token or is refused with the seconds until one is back (the ``Retry-After``). So
in any window of ``t`` seconds a bucket grants at most ``burst + rate * t`` requests.

One inference-server process keeps its buckets in memory (:class:`InMemoryRateLimiter`).
Replicas behind a load balancer share theirs through Redis (:class:`RedisRateLimiter`):
refill and take run as one Lua script inside Redis, on Redis's own clock, so concurrent
replicas never over-grant and their clocks need not agree.

**When Redis is down** the limiter does what ``on_error`` says:

``"local"`` (default)
    keep limiting with an in-memory bucket per replica until Redis answers again: requests
    are still limited (each replica to the full budget, so N replicas allow up to N times
    it), and an outage of the limiter's store does not become an outage of inference;
``"closed"``
    refuse every request with a ``Retry-After`` of ``retry_interval`` seconds: nothing gets
    through unlimited, at the price of availability;
``"open"``
    let every request through unlimited.

After a failure Redis is not asked again for ``retry_interval`` seconds, so a dead Redis
costs one timeout per interval, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from mloop.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from mloop.config import Settings

logger = logging.getLogger(__name__)

OnError = Literal["local", "closed", "open"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("local", "closed", "open")
DEFAULT_ON_ERROR: OnError = "local"
KEY_PREFIX = "mloop:ratelimit:"
_EPSILON = 1e-9


class RateLimitLike(Protocol):
    """The parts of a deployment's ``RateLimit`` guard a limiter reads."""

    @property
    def rate(self) -> float: ...

    @property
    def burst(self) -> int: ...


@runtime_checkable
class RateLimiter(Protocol):
    """Something that hands out tokens from named buckets."""

    async def acquire(self, bucket: str, limit: RateLimitLike) -> float | None:
        """Take one token from ``bucket``: None when granted, else the seconds until a
        token is back (what a 429 response sends as ``Retry-After``)."""
        ...

    async def acquire_all(self, buckets: Sequence[tuple[str, RateLimitLike]]) -> float | None:
        """Take one token from every bucket, or from none: None when all had one, else the
        longest wait among those that did not. A request refused by the per-deployment
        bucket thus costs its API key's bucket nothing."""
        ...

    async def aclose(self) -> None:
        """Release connections; the limiter must not be used afterwards."""
        ...


def _checked_buckets(
    buckets: Sequence[tuple[str, RateLimitLike]],
) -> list[tuple[str, float, int]]:
    """``(name, rate, burst)`` per bucket, each name once (the first limit given wins)."""
    out: list[tuple[str, float, int]] = []
    seen: set[str] = set()
    for name, limit in buckets:
        rate, burst = check_limit(limit)
        if name not in seen:
            seen.add(name)
            out.append((name, rate, burst))
    return out


def check_limit(limit: RateLimitLike) -> tuple[float, int]:
    """``(rate, burst)`` after checking they make a bucket that can ever grant anything."""
    rate, burst = float(limit.rate), limit.burst
    if not rate > 0 or rate == float("inf"):
        raise InvalidInput(
            f"a rate limit needs a finite rate above 0 tokens per second, got {limit.rate!r}"
        )
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise InvalidInput(f"a rate limit needs a burst of at least 1 request, got {burst!r}")
    return rate, burst


class InMemoryRateLimiter:
    """Token buckets in this process: exact, thread- and task-safe, no I/O.

    ``clock`` (default :func:`time.monotonic`) is injectable so tests control time.
    Buckets that have refilled completely carry no information and are dropped once more
    than ``max_buckets`` exist, so one bucket per API key cannot grow without bound.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, float, int]] = {}  # tokens, t, rate, burst

    async def acquire(self, bucket: str, limit: RateLimitLike) -> float | None:
        return self.try_acquire_all([(bucket, limit)])

    async def acquire_all(self, buckets: Sequence[tuple[str, RateLimitLike]]) -> float | None:
        return self.try_acquire_all(buckets)

    def try_acquire(self, bucket: str, limit: RateLimitLike) -> float | None:
        """The synchronous form of :meth:`acquire` (it never waits for anything)."""
        return self.try_acquire_all([(bucket, limit)])

    def try_acquire_all(self, buckets: Sequence[tuple[str, RateLimitLike]]) -> float | None:
        """The synchronous form of :meth:`acquire_all`."""
        checked = _checked_buckets(buckets)
        with self._lock:
            now = self._clock()
            refilled: list[tuple[str, float, float, float, int]] = []
            wait = 0.0
            for name, rate, burst in checked:
                state = self._buckets.get(name)
                if state is None:
                    tokens, last = float(burst), now
                else:
                    tokens, last = state[0], state[1]
                    if now > last:
                        tokens = tokens + (now - last) * rate
                        last = now
                tokens = min(tokens, float(burst))  # the burst may have shrunk
                if tokens < 1.0 - _EPSILON:
                    wait = max(wait, (1.0 - tokens) / rate)
                refilled.append((name, tokens, last, rate, burst))
            granted = wait == 0.0
            for name, tokens, last, rate, burst in refilled:
                left = max(tokens - 1.0, 0.0) if granted else tokens
                self._buckets[name] = (left, last, rate, burst)
            if len(self._buckets) > self._max_buckets:
                self._sweep(now)
            return None if granted else wait

    def _sweep(self, now: float) -> None:
        """Forget buckets that are full again: a fresh bucket behaves the same."""
        full = [
            name
            for name, (tokens, last, rate, burst) in self._buckets.items()
            if tokens + (now - last) * rate >= burst
        ]
        for name in full:
            del self._buckets[name]

    def __len__(self) -> int:
        return len(self._buckets)

    async def aclose(self) -> None:
        with self._lock:
            self._buckets.clear()


# KEYS the buckets; ARGV rate (tokens/s) and burst per bucket, in pairs. Either every
# bucket gives a token or none does. Returns "0" when granted, else the longest wait in
# seconds. Numbers go through strings: Redis truncates Lua numbers to integers on the way
# out. Each key expires once its bucket would be full again. replicate_commands lets
# Redis 3.2-4 write after TIME (5+ always replicates effects).
TOKEN_BUCKET_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens, stamps = {}, {}
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tk = tonumber(state[1])
  local ts = tonumber(state[2])
  if tk == nil or ts == nil then
    tk = burst
    ts = now
  elseif now > ts then
    tk = tk + (now - ts) * rate
    ts = now
  end
  tk = math.min(tk, burst)
  if tk < 1 - 1e-9 then
    wait = math.max(wait, (1 - tk) / rate)
  end
  tokens[i] = tk
  stamps[i] = ts
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tk = tokens[i]
  if wait == 0 then
    tk = math.max(tk - 1, 0)
  end
  redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tk),
             'ts', string.format('%.17g', stamps[i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - tk) / rate * 1000) + 1000)
end
return string.format('%.17g', wait)
"""
TOKEN_BUCKET_SHA = hashlib.sha1(TOKEN_BUCKET_LUA.encode()).hexdigest()


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable redis url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _check_redis_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(
            f"redis_url must start with redis://, rediss:// or unix://, got "
            f"{redact_url(url)!r}; set MLOOP_REDIS_URL to e.g. redis://127.0.0.1:6379/0"
        )


class RedisRateLimiter:
    """Token buckets in Redis, shared by every replica that uses the same ``url``.

    Each :meth:`acquire` runs the bucket script once: ``EVALSHA``, or ``EVAL`` when Redis
    does not know the script yet (after a restart or ``SCRIPT FLUSH``). Concurrent
    requests share round trips: those that arrive while one is in flight go out together
    in the next pipeline.
    ``on_error`` decides what happens while Redis cannot be reached (see the module
    docstring); ``timeout`` bounds how long one request may wait for Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        on_error: OnError = DEFAULT_ON_ERROR,
        timeout: float = 1.0,
        retry_interval: float = 1.0,
        max_connections: int = 16,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_redis_url(url)
        if on_error not in ON_ERROR_CHOICES:
            raise ConfigError(
                f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}"
            )
        try:
            import redis.asyncio  # noqa: F401
        except ModuleNotFoundError as exc:  # pragma: no cover - the redis extra is missing
            raise ConfigError(
                "rate limits shared through Redis need the redis package: "
                "pip install 'mloop[redis]' (or unset MLOOP_REDIS_URL)"
            ) from exc
        self.url = url
        self.on_error: OnError = on_error
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.max_connections = max_connections
        self.prefix = prefix
        self._clock = clock
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pipeliner] = (
            weakref.WeakKeyDictionary()
        )  # a client belongs to one event loop
        self._fallback = InMemoryRateLimiter(clock=clock)
        self._down_until = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisRateLimiter({redact_url(self.url)!r}, on_error={self.on_error!r})"

    @property
    def degraded(self) -> bool:
        """True while Redis is considered down and ``on_error`` decides."""
        return self._clock() < self._down_until

    def _pipeliner(self) -> _Pipeliner:
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        with self._lock:
            pipeliner = self._clients.get(loop)
            if pipeliner is None:
                pool = aioredis.BlockingConnectionPool.from_url(
                    self.url,
                    max_connections=self.max_connections,
                    timeout=self.timeout,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    decode_responses=True,
                )
                pipeliner = _Pipeliner(aioredis.Redis(connection_pool=pool))
                self._clients[loop] = pipeliner
            return pipeliner

    async def acquire(self, bucket: str, limit: RateLimitLike) -> float | None:
        return await self.acquire_all([(bucket, limit)])

    async def acquire_all(self, buckets: Sequence[tuple[str, RateLimitLike]]) -> float | None:
        checked = _checked_buckets(buckets)
        if not checked:
            return None
        if self.degraded:
            return self._when_down(buckets)
        try:
            wait = float(await self._run(checked))
        except Exception as exc:
            if not self._is_outage(exc):
                raise
            was_down = self._down_until > float("-inf")
            self._down_until = self._clock() + self.retry_interval
            if not was_down:
                logger.warning(
                    "rate limiter: Redis at %s did not answer (%s: %s); on_error=%s until it "
                    "does (asked again every %.1f s)",
                    redact_url(self.url),
                    type(exc).__name__,
                    exc,
                    self.on_error,
                    self.retry_interval,
                )
            return self._when_down(buckets)
        if self._down_until > float("-inf"):
            self._down_until = float("-inf")
            logger.warning("rate limiter: Redis at %s answers again", redact_url(self.url))
        return None if wait <= 0 else wait

    async def _run(self, checked: Sequence[tuple[str, float, int]]) -> Any:
        keys = [self.prefix + name for name, _, _ in checked]
        args = [value for _, rate, burst in checked for value in (repr(rate), str(burst))]
        return await self._pipeliner().submit(keys, args)

    @staticmethod
    def _is_outage(exc: Exception) -> bool:
        from redis.exceptions import BusyLoadingError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        return isinstance(
            exc,
            RedisConnectionError
            | RedisTimeoutError
            | BusyLoadingError
            | OSError
            | asyncio.TimeoutError,
        )

    def _when_down(self, buckets: Sequence[tuple[str, RateLimitLike]]) -> float | None:
        if self.on_error == "open":
            return None
        if self.on_error == "closed":
            return max(self._down_until - self._clock(), _EPSILON)
        return self._fallback.try_acquire_all(buckets)

    async def aclose(self) -> None:
        with self._lock:
            pipeliners = list(self._clients.values())
            self._clients.clear()
        for pipeliner in pipeliners:
            with contextlib.suppress(RuntimeError):  # its event loop is gone: nothing to free
                await pipeliner.aclose()


class _Pipeliner:
    """Sends the bucket script for every waiting request in one pipeline per round trip.

    The first request goes out at once; requests that arrive while a pipeline is in flight
    wait for it to return and then go out together. Under load that turns N round trips
    into one (3-4x the throughput of one command per request), and alone it costs nothing.
    """

    MAX_BATCH = 256

    def __init__(self, client: Any) -> None:
        self.client = client  # bound to the event loop it was made in; never keeps it alive
        self.pending: list[tuple[list[str], list[str], asyncio.Future[Any]]] = []
        self.sender: asyncio.Task[None] | None = None

    def submit(self, keys: list[str], args: list[str]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append((keys, args, future))
        if self.sender is None:
            self.sender = loop.create_task(self._send_all())
        return future

    async def _send_all(self) -> None:
        try:
            while self.pending:
                batch = self.pending[: self.MAX_BATCH]
                del self.pending[: self.MAX_BATCH]
                await self._send(batch)
        finally:
            self.sender = None

    async def _send(self, batch: list[tuple[list[str], list[str], asyncio.Future[Any]]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            results = await self._pipeline(batch, "evalsha")
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # EVAL runs the script and caches it for the next EVALSHA
                retried = await self._pipeline([batch[i] for i in missing], "eval")
                for i, result in zip(missing, retried, strict=True):
                    results[i] = result
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller gave up (cancelled)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(
        self, batch: list[tuple[list[str], list[str], asyncio.Future[Any]]], command: str
    ) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        script = TOKEN_BUCKET_SHA if command == "evalsha" else TOKEN_BUCKET_LUA
        for keys, args, _ in batch:
            getattr(pipe, command)(script, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def aclose(self) -> None:
        if self.sender is not None:
            await asyncio.gather(self.sender, return_exceptions=True)
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


def rate_limiter_for(
    settings: Settings | None = None, *, on_error: OnError | None = None
) -> RateLimiter:
    """The limiter the settings ask for: Redis when ``redis_url`` (``MLOOP_REDIS_URL``) is
    set, so replicas share buckets; otherwise one in this process.

    ``on_error`` defaults to the ``rate_limit_on_redis_error`` setting
    (``MLOOP_RATE_LIMIT_ON_REDIS_ERROR``, ``"local"`` unless set).
    """
    if settings is None:
        from mloop.config import get_settings

        settings = get_settings()
    if not settings.redis_url:
        return InMemoryRateLimiter()
    return RedisRateLimiter(
        settings.redis_url, on_error=on_error or settings.rate_limit_on_redis_error
    )


__all__ = [
    "DEFAULT_ON_ERROR",
    "InMemoryRateLimiter",
    "RateLimitLike",
    "RateLimiter",
    "RedisRateLimiter",
    "check_limit",
    "rate_limiter_for",
]
