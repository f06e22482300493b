"""Retraining triggers: what makes the agent run a pipeline, and what came of it.

The agent's tick calls :func:`run_due` with the time it acts at. For every enabled trigger
it asks which events are due (:mod:`._trigger_events`), claims each one in the metadata
store (:func:`._trigger_firings.claim_firing` — one row per ``(trigger, event key)``, so an
event fires once however many agents see it), runs the trigger's pipeline with
:func:`mloop.pipelines.run`, and records the outcome on the firing and in the audit log:
``succeeded``; ``stopped`` with the pipeline's reason (a refused gate stops the chain on
purpose); or ``failed`` with the error. A failing pipeline or an unreadable event source
never stops the other triggers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mloop._ids import now_ms as wall_clock_ms
from mloop.agent import _trigger_firings as firings
from mloop.agent import _trigger_store as store
from mloop.agent._trigger_events import arming, due_events, manual_event
from mloop.agent._trigger_spec import Trigger, load_triggers
from mloop.agent._trigger_store import Event, Firing
from mloop.config import Settings
from mloop.errors import MloopError
from mloop.registry._db import Actor, actor_name

log = logging.getLogger("mloop.agent.triggers")


# -- declaring triggers -----------------------------------------------------------------------


def save_trigger(
    trigger: Trigger | Mapping[str, Any],
    *,
    actor: Actor = None,
    now_ms: int | None = None,
    settings: Settings | None = None,
) -> Trigger:
    """Create or replace a trigger. It sees only events after it is saved (``now_ms``,
    default now): a schedule's earlier times, alerts fired before, and dataset versions
    that exist already never fire it. Re-saving it unchanged changes nothing."""
    parsed = Trigger.parse(trigger)
    now = wall_clock_ms() if now_ms is None else now_ms
    armed = arming(parsed, now_ms=now, settings=settings)
    saved = store.save_trigger(parsed, armed=armed, actor=actor, now_ms=now, settings=settings)
    return saved.trigger


def get_trigger(name: str, *, settings: Settings | None = None) -> Trigger:
    return store.get_stored_trigger(name, settings=settings).trigger


def list_triggers(*, settings: Settings | None = None) -> list[Trigger]:
    """Every trigger, by name."""
    return [s.trigger for s in store.list_stored_triggers(settings=settings)]


def set_trigger_enabled(
    name: str, enabled: bool, *, actor: Actor = None, settings: Settings | None = None
) -> Trigger:
    """Switch a trigger on or off; its arming stays, so events that came while it was off
    and are still due (a dataset version, an unclaimed alert) fire when it is back on."""
    current = get_trigger(name, settings=settings)
    if current.enabled == enabled:
        return current
    changed = current.model_copy(update={"enabled": enabled})
    saved = store.save_trigger(changed, actor=actor, settings=settings)
    return saved.trigger


def delete_trigger(name: str, *, actor: Actor = None, settings: Settings | None = None) -> None:
    """Remove a trigger; its firings stay in the history."""
    store.delete_trigger(name, actor=actor, settings=settings)


def apply_triggers(
    source: str | Path | Iterable[Trigger | Mapping[str, Any]],
    *,
    actor: Actor = None,
    now_ms: int | None = None,
    settings: Settings | None = None,
) -> list[tuple[str, str]]:
    """Save every trigger of a YAML file (or of an iterable): ``(name, "created" |
    "updated" | "unchanged")`` for each, in order. All are checked before any is saved."""
    triggers = (
        load_triggers(source)
        if isinstance(source, str | Path)
        else [Trigger.parse(t, source=f"trigger {n}") for n, t in enumerate(source, start=1)]
    )
    existing = {s.trigger.name: s.trigger for s in store.list_stored_triggers(settings=settings)}
    outcome = []
    for trigger in triggers:
        before = existing.get(trigger.name)
        save_trigger(trigger, actor=actor, now_ms=now_ms, settings=settings)
        if before is None:
            outcome.append((trigger.name, "created"))
        else:
            same = before.to_json() == trigger.to_json()
            outcome.append((trigger.name, "unchanged" if same else "updated"))
    return outcome


def list_firings(
    trigger: str | None = None,
    *,
    status: str | None = None,
    limit: int = 50,
    settings: Settings | None = None,
) -> list[Firing]:
    """What triggers did, newest first."""
    return firings.list_firings(trigger, status=status, limit=limit, settings=settings)


# -- firing -----------------------------------------------------------------------------------


def run_due(*, now_ms: int, settings: Settings | None = None) -> list[Firing]:
    """Fire every event due at ``now_ms`` that no agent has claimed yet, and run its
    pipeline; the firings this call made (finished, or ``skipped`` in a cooldown)."""
    fired: list[Firing] = []
    who = _agent_name()
    for stored in store.list_stored_triggers(skip_invalid=True, settings=settings):
        trigger = stored.trigger
        if not trigger.enabled:
            continue
        try:
            events = due_events(trigger, stored.armed, now_ms=now_ms, settings=settings)
            claimed = firings.claimed_keys(trigger.name, (e.key for e in events), settings=settings)
        except Exception as exc:  # one broken source must not stop the other triggers
            log.warning("trigger %s: cannot tell which events are due: %s", trigger.name, exc)
            continue
        for event in events:
            if event.key in claimed:
                continue
            firing = _fire(trigger, event, now_ms=now_ms, actor=who, settings=settings)
            if firing is not None:
                fired.append(firing)
    return fired


def fire_trigger(
    name: str,
    *,
    now_ms: int | None = None,
    actor: Actor = None,
    settings: Settings | None = None,
    on_event: Callable[[str, str], None] | None = None,
) -> Firing:
    """Run a trigger's pipeline now, whatever its event (``mloop triggers fire NAME``);
    recorded as a ``manual`` firing. Works on a disabled trigger too. ``on_event(step,
    status)`` follows the pipeline's steps (as :func:`mloop.pipelines.run` calls it)."""
    store.authorize_triggers(actor)
    trigger = get_trigger(name, settings=settings)
    who = actor_name(actor)
    event = manual_event(trigger, who=who, settings=settings)
    now = wall_clock_ms() if now_ms is None else now_ms
    firing = _fire(trigger, event, now_ms=now, actor=who, settings=settings, on_event=on_event)
    assert firing is not None  # a manual key is new every time
    return firing


def _fire(
    trigger: Trigger,
    event: Event,
    *,
    now_ms: int,
    actor: str,
    settings: Settings | None,
    on_event: Callable[[str, str], None] | None = None,
) -> Firing | None:
    firing = firings.claim_firing(trigger, event, now_ms=now_ms, actor=actor, settings=settings)
    if firing is None or firing.status != "running":
        return firing  # another agent has it, or it was skipped in the cooldown
    log.info("trigger %s fired on %s: running %s", trigger.name, event.key, trigger.pipeline)
    started = time.monotonic()
    status, reason, execution_id = run_pipeline(trigger.pipeline, firing.params, on_event)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    return firings.finish_firing(
        firing.id,
        status,
        reason=reason,
        execution_id=execution_id,
        now_ms=now_ms + elapsed_ms,  # on the caller's clock, which tests may set
        actor=actor,
        settings=settings,
    )


def run_pipeline(
    reference: str,
    params: Mapping[str, Any],
    on_event: Callable[[str, str], None] | None = None,
) -> tuple[str, str | None, str | None]:
    """Run the pipeline ``reference`` and say how it ended: ``(status, reason,
    execution id)``, status one of succeeded / stopped / failed. Never raises for what the
    pipeline does; the reason carries the error."""
    try:
        from mloop.pipelines import StopPipeline, run
    except ImportError as exc:  # pragma: no cover - a broken installation
        return "failed", f"mloop.pipelines cannot be imported: {exc}", None
    try:
        execution = run(reference, dict(params), on_event=on_event)
    except StopPipeline as exc:
        return "stopped", _reason(exc), None
    except MloopError as exc:
        return "failed", exc.message, None
    except Exception as exc:
        log.exception("pipeline %s raised", reference)
        return "failed", f"{type(exc).__name__}: {exc}", None
    status = str(execution.status)
    if status not in ("succeeded", "stopped", "failed"):
        return "failed", f"the pipeline ended {status!r}, not succeeded, stopped or failed", None
    reason = execution.reason if status != "succeeded" else None
    return status, reason, str(execution.id)


def _reason(exc: BaseException) -> str:
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, Sequence) and not isinstance(reasons, str) and reasons:
        return "; ".join(str(r) for r in reasons)
    return str(exc) or type(exc).__name__


def _agent_name() -> str:
    import os
    import socket

    return f"agent@{socket.gethostname()}:{os.getpid()}"
