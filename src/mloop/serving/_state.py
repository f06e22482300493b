"""The state an inference server's handlers share: the served deployment (swapped live
when a stored deployment gets a new revision) and the guards' machinery — the API-key
cache, the rate limiter, metrics, the prediction and feedback logs, tracing.

A stored deployment is polled every ``deployment_poll_interval`` seconds; a new revision is
loaded beside the old one and swapped in, so changes apply without a restart and without
dropping a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import (
    MloopError,
    NotFound,
    RateLimited,
    StoreError,
    Unauthenticated,
)
from mloop.serving._served import DeploymentSource, ServedDeployment
from mloop.serving._shadow_process import Mirror, Outcome, ShadowProcess

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.registry import Principal
    from mloop.security._ratelimit import RateLimiter
    from mloop.serving._feedback import FeedbackLog
    from mloop.serving._metrics import ServingMetrics
    from mloop.serving._predlog import PredictionLog
    from mloop.serving._tracing import RequestLogger, Tracing
    from mloop.store import MetadataStore

log = logging.getLogger("mloop.serving")

SERVER_NAME = "mloop"
EXTENSIONS = ["binary_tensor_data"]
ROUTE_KEY = "x-mloop-route-key"
ATYPICAL_HEADER = "X-Mloop-Atypical"
SAFE_ID = re.compile(r"[\x21-\x7e]{1,128}")
_PRINCIPAL_TTL = 5.0
JSON_TYPE = "application/json"


def json_response(
    document: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        headers=dict(headers or {}),
        media_type=JSON_TYPE,
    )


def error_response(exc: MloopError, request_id: str | None = None) -> Response:
    """The one error shape: ``{"error": message}`` with the error's HTTP status."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="mloop"'
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return json_response({"error": exc.message}, exc.http_status, headers)


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _freeze_heap(*, collect: bool) -> None:
    """Move everything loaded so far (libraries, models) out of the garbage collector's
    sight: a full collection would otherwise walk that whole heap now and then, stalling
    every request in flight for tens of milliseconds (the p99). ``collect`` (after a new
    revision was loaded) unfreezes and collects first, so what the old revision held is
    freed even where it forms cycles; at startup that would add 0.1 s to the cold start
    to free a few loading leftovers.

    Young objects are collected every 10,000 allocations instead of 700: parsing a
    1,000-row JSON tensor allocates 1,000 lists, so the default ran a collection in every
    such request (8 % of the throughput on 1,000-row requests)."""
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


class ServingState:
    """Everything the request handlers share: the served deployment and the guards'
    machinery (auth cache, rate limiter, metrics, logs, tracing)."""

    def __init__(
        self,
        source: DeploymentSource,
        *,
        settings: Settings,
        host: str,
        store: MetadataStore | None,
        metrics: ServingMetrics,
        prediction_log: PredictionLog | None,
        feedback_log: FeedbackLog | None,
        rate_limiter: RateLimiter,
        tracing: Tracing,
        request_logger: RequestLogger,
        poll_interval: float,
        log_fsync: str = "interval",
    ) -> None:
        self.source = source
        self.settings = settings
        self.host = host
        self.store = store
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.feedback_log = feedback_log
        self.rate_limiter = rate_limiter
        self.tracing = tracing
        self.request_logger = request_logger
        self.poll_interval = poll_interval
        self.current: ServedDeployment | None = None
        self.arriving = 0
        self.in_flight = 0
        self._principals: dict[bytes, tuple[float, Principal]] = {}
        self._checking: dict[bytes, asyncio.Future[Principal]] = {}
        self.log_fsync = log_fsync
        self._shadows: ShadowProcess | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- the deployment ---------------------------------------------------------------------

    def served(self, name: str) -> ServedDeployment:
        current = self.current
        if current is None:
            raise StoreError("the deployment is still loading; retry in a moment")
        if name != current.name:
            raise NotFound(
                f"model {name!r} is not served here; this server serves {current.name!r}"
            )
        return current

    async def refresh(self) -> bool:
        """Load the stored deployment again if its revision moved; True when swapped."""
        current = self.current
        revision = await run_in_threadpool(self.source.revision)
        if current is not None and revision == current.revision:
            return False
        loaded = await run_in_threadpool(self.source.load)
        self.current = loaded
        self.source.forget_unused(loaded)
        _freeze_heap(collect=True)
        log.info("serving %s revision %d", loaded.name, loaded.revision)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
            except Exception:  # keep serving the revision we have
                log.warning("reloading deployment %s failed", self.source.target, exc_info=True)

    def mirror(self, mirror: Mirror, capacity: int) -> bool:
        """Hand a copy of a request to the shadow process (started on first use); False
        when ``capacity`` mirrors are still unanswered, so this one is skipped."""
        if capacity <= 0:
            return False
        return self._shadow_process().mirror(mirror, capacity)

    def _shadow_process(self) -> ShadowProcess:
        if self._shadows is None:
            self._shadows = ShadowProcess(
                self.settings,
                log_predictions=self.prediction_log is not None,
                log_fsync=self.log_fsync,
                observe=self._observe_shadow,
            )
        return self._shadows

    def _observe_shadow(self, outcome: Outcome) -> None:
        deployment, model, version, seconds, status = outcome
        self.metrics.observe_request(deployment, model, version, "shadow", seconds, status)

    def alone(self) -> bool:
        """Whether the request asking is the only work this process has: no other request
        in flight or being read, and nothing else ready to run on the event loop (another
        connection's bytes waiting to be parsed). Then a small prediction runs inline."""
        if self.in_flight > 1 or self.arriving:
            return False
        ready = getattr(asyncio.get_running_loop(), "_ready", None)  # CPython's run queue
        # A loop that hides its queue (uvloop): other requests may be ready, so never alone
        # (the request then goes through the batch queue, a few microseconds more when it
        # really was alone, instead of never batching).
        return ready is not None and len(ready) == 0

    def count_arrival(self, delta: int) -> None:
        self.arriving += delta
        if delta < 0 and self.current is not None:
            for model in self.current.all_models:
                model.batcher.nudge()

    # -- guards -----------------------------------------------------------------------------

    def auth_on(self, served: ServedDeployment) -> bool:
        mode = served.guards.auth if served.guards.auth != "auto" else self.settings.server_auth
        if mode == "on":
            return True
        if mode == "off":
            return False
        return not self._loopback

    @functools.cached_property
    def _loopback(self) -> bool:
        return is_loopback(self.host)

    async def authenticate(self, request: Request, served: ServedDeployment) -> Principal | None:
        """The caller (None with auth off), allowed to ``predict`` on this deployment."""
        if not self.auth_on(served):
            return None
        from mloop.registry._roles import Resource, authorize

        principal = await self._principal(request)
        authorize(principal, "predict", Resource.deployment(served.name))
        return principal

    async def _principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated(
                "this deployment requires an API key: send `Authorization: Bearer mloop_…`; "
                "create one with `mloop keys create USER`"
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(
                "the Authorization header must read `Bearer mloop_<key id>_<secret>`"
            )
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        cached = self._principals.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._checking.get(digest)
        if pending is None:  # one check per key at a time: concurrent callers share it
            pending = asyncio.ensure_future(self._check_key(digest, token))
            self._checking[digest] = pending
            pending.add_done_callback(lambda _: self._checking.pop(digest, None))
        return await asyncio.shield(pending)

    async def _check_key(self, digest: bytes, token: str) -> Principal:
        from mloop.registry._identity import authenticate

        principal = await run_in_threadpool(authenticate, token, store=self.store)
        if len(self._principals) > 10_000:
            self._principals.clear()
        self._principals[digest] = (time.monotonic() + _PRINCIPAL_TTL, principal)
        return principal

    async def limit(
        self, request: Request, served: ServedDeployment, principal: Principal | None
    ) -> str:
        guards = served.guards
        buckets: list[tuple[str, Any]] = []
        if guards.rate_limit_per_key is not None:
            who = (
                f"key:{principal.key_id}"
                if principal is not None and principal.key_id
                else f"client:{request.client.host if request.client else 'unknown'}"
            )
            buckets.append((f"{served.name}:{who}", guards.rate_limit_per_key))
        if guards.rate_limit_per_deployment is not None:
            buckets.append((f"{served.name}:deployment", guards.rate_limit_per_deployment))
        if not buckets:
            return "off"
        retry_after = await self.rate_limiter.acquire_all(buckets)
        if retry_after is not None:
            raise RateLimited(
                f"rate limit of deployment {served.name!r} reached; retry after "
                f"{retry_after:.2f} s",
                retry_after=retry_after,
            )
        return "allowed"

    # -- startup and shutdown ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        _freeze_heap(collect=False)
        if self.current is not None and self.current.shadows:
            self._shadow_process()  # start loading the shadows now, not on the first request
        if self.source.stored and self.poll_interval > 0:
            self._poller = asyncio.create_task(self._poll())
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        """Drain: stop polling, let shadows finish (briefly), flush the logs."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._shadows is not None:  # its queued mirrors are answered and logged first
            await self._shadows.aclose()
        if self.prediction_log is not None:
            await run_in_threadpool(self.prediction_log.close)
        if self.feedback_log is not None:
            await run_in_threadpool(self.feedback_log.close)
        await self.rate_limiter.aclose()
        self.tracing.shutdown()
        self.metrics.close()
