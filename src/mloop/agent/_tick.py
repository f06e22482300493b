"""One round of the agent, and the loop that repeats it.

A tick first takes (or renews) the leader lease; only the leader acts: it advances the
running rollouts, then fires the retraining triggers that are due
(:func:`mloop.agent._triggers.run_due`). Run as many agents as you like — replicas of a
service, or ``mloop agent tick`` from cron on several machines: at any moment one leads,
and a leader that stalls past its lease is fenced out (see :mod:`._lease`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mloop._ids import now_ms as wall_clock_ms
from mloop.agent._lease import DEFAULT_LEASE, Lease, NotLeader, acquire_lease, get_lease
from mloop.agent._lease import release_lease as _release
from mloop.agent._rollout_store import RolloutEvent
from mloop.config import Settings
from mloop.errors import InvalidInput

log = logging.getLogger("mloop.agent")
DEFAULT_TTL_S = 30.0


def default_holder() -> str:
    """This agent's name in leases and the audit log: ``agent@HOST:PID``."""
    return f"agent@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class TickReport:
    """What one tick did. ``leader`` says whether this agent led (when not, ``leader_holder``
    names who does and nothing else was done); ``errors`` are the failures that did not
    stop the tick (one rollout or trigger that could not be handled)."""

    now_ms: int
    holder: str
    leader: bool
    lease: Lease | None
    leader_holder: str | None
    events: list[RolloutEvent] = field(default_factory=list)
    firings: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "now_ms": self.now_ms,
            "holder": self.holder,
            "leader": self.leader,
            "leader_holder": self.leader_holder,
            "token": None if self.lease is None else self.lease.token,
            "events": [e.to_dict() for e in self.events],
            "firings": [f.to_dict() if hasattr(f, "to_dict") else str(f) for f in self.firings],
            "errors": list(self.errors),
        }


def tick(
    *,
    now_ms: int | None = None,
    holder: str | None = None,
    settings: Settings | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    lease_name: str = DEFAULT_LEASE,
    triggers: bool = True,
) -> TickReport:
    """One round: lead or step aside, then (as leader) advance rollouts and fire triggers."""
    from mloop.agent._rollouts import advance_rollouts

    now = wall_clock_ms() if now_ms is None else now_ms
    who = holder or default_holder()
    lease = acquire_lease(lease_name, who, ttl_s, now, settings=settings)
    if lease is None:
        current = get_lease(lease_name, settings=settings)
        return TickReport(now, who, False, None, None if current is None else current.holder)
    errors: list[str] = []
    events: list[RolloutEvent] = []
    firings: list[Any] = []
    try:
        events = advance_rollouts(now, settings, fence=lease, actor=who, errors=errors)
    except NotLeader as exc:
        errors.append(str(exc))
        return TickReport(now, who, False, None, None, events, firings, errors)
    if triggers:
        firings = _fire_triggers(now, settings, errors)
    return TickReport(now, who, True, lease, who, events, firings, errors)


def _fire_triggers(now: int, settings: Settings | None, errors: list[str]) -> list[Any]:
    from mloop.agent import _triggers

    try:
        return list(_triggers.run_due(now_ms=now, settings=settings))
    except Exception as exc:  # triggers failing must not stop rollouts at the next tick
        log.exception("firing triggers failed")
        errors.append(f"triggers: {type(exc).__name__}: {exc}")
        return []


def release_lease(
    holder: str,
    *,
    settings: Settings | None = None,
    lease_name: str = DEFAULT_LEASE,
) -> bool:
    """Give up leadership now if ``holder`` has it (what a stopping agent does)."""
    current = get_lease(lease_name, settings=settings)
    if current is None or current.holder != holder:
        return False
    return _release(current, settings=settings)


def run_agent(
    *,
    interval_s: float = 5.0,
    max_ticks: int | None = None,
    holder: str | None = None,
    settings: Settings | None = None,
    ttl_s: float | None = None,
    stop: threading.Event | None = None,
    on_tick: Callable[[TickReport], None] | None = None,
    clock: Callable[[], int] = wall_clock_ms,
) -> int:
    """Tick every ``interval_s`` until ``stop`` is set, ``max_ticks`` ticks ran, or
    Ctrl-C; the number of ticks. The lease lives three intervals (at least 30 s), so a
    leader that misses two ticks keeps its role, and is released on the way out so another
    agent takes over at once."""
    if isinstance(interval_s, bool) or not isinstance(interval_s, int | float) or interval_s < 0:
        raise InvalidInput(f"interval {interval_s!r} must be zero or more seconds")
    if max_ticks is not None and max_ticks < 1:
        raise InvalidInput(f"max ticks {max_ticks} must be at least 1")
    who = holder or default_holder()
    ttl = ttl_s if ttl_s is not None else max(DEFAULT_TTL_S, 3 * interval_s)
    stop = stop or threading.Event()
    ticks = 0
    try:
        while not stop.is_set():
            report = tick(now_ms=clock(), holder=who, settings=settings, ttl_s=ttl)
            ticks += 1
            if on_tick is not None:
                on_tick(report)
            if max_ticks is not None and ticks >= max_ticks:
                break
            stop.wait(interval_s)
    finally:
        try:
            release_lease(who, settings=settings)
        except Exception:  # shutting down: the lease expires by itself
            log.warning("could not release the agent lease; it expires in %.0f s", ttl)
    return ticks


__all__ = ["TickReport", "default_holder", "release_lease", "run_agent", "tick"]
