"""Claiming trigger events and recording what came of them, in the metadata store.

Claiming an event is a registry write (:func:`mloop.registry._db.write`): one transaction
holding the registry lock, which looks for the ``(trigger, event_key)`` row and inserts it
only if absent, with its audit entry. Of several agents that see the same event at the
same moment exactly one gets the row; the unique constraint is the backstop (a refused
insert is a lost race, not an error).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select, update

from mloop._ids import new_id
from mloop._ids import now_ms as wall_clock_ms
from mloop.agent._trigger_spec import Trigger, trigger_name
from mloop.agent._trigger_store import FIRINGS, Event, Firing
from mloop.config import Settings
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, connect, write
from mloop.store import MetadataStore

STATUSES = ("running", "succeeded", "stopped", "failed", "skipped")
FINAL_STATUSES = ("succeeded", "stopped", "failed")


def claim_firing(
    trigger: Trigger,
    event: Event,
    *,
    now_ms: int,
    actor: Actor = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> Firing | None:
    """The new firing of ``event``, or None when another agent (or an earlier tick) has
    claimed it. Inside the trigger's cooldown the event is claimed as ``skipped``, so it
    is not looked at again and the history says why nothing ran."""
    who = actor_name(actor)
    params = {**trigger.params, **event.params}
    row = {
        "id": new_id(),
        "trigger": trigger.name,
        "event_key": event.key,
        "kind": trigger.kind if not event.key.startswith("manual:") else "manual",
        "event": event.detail,
        "pipeline": trigger.pipeline,
        "params": params,
        "fired_ms": now_ms,
        "fired_by": who,
        "status": "running",
        "reason": None,
        "execution_id": None,
        "finished_ms": None,
    }

    def work(conn: Connection) -> Firing | None:
        taken = conn.execute(
            select(FIRINGS.c.id).where(
                (FIRINGS.c.trigger == trigger.name) & (FIRINGS.c.event_key == event.key)
            )
        ).first()
        if taken is not None:
            return None
        cooldown = trigger.cooldown_ms
        if cooldown and row["kind"] != "manual":
            last = conn.execute(
                select(FIRINGS.c.fired_ms)
                .where((FIRINGS.c.trigger == trigger.name) & (FIRINGS.c.status != "skipped"))
                .order_by(FIRINGS.c.fired_ms.desc())
                .limit(1)
            ).scalar()
            if last is not None and now_ms - int(last) < cooldown:
                row.update(
                    status="skipped",
                    finished_ms=now_ms,
                    reason=f"within the cooldown of {trigger.cooldown} after the firing at "
                    f"{_utc(int(last))}",
                )
        conn.execute(FIRINGS.insert(), row)
        _audit.append(
            conn,
            actor=who,
            action="trigger.fire",
            target=f"trigger:{trigger.name}",
            before=None,
            after=_audit_view(row),
        )
        return _firing(row)

    with connect(store, settings) as db:
        try:
            return write(db, work)
        except Conflict:  # the unique constraint: another agent inserted it first
            return None


def finish_firing(
    firing_id: str,
    status: str,
    *,
    reason: str | None = None,
    execution_id: str | None = None,
    now_ms: int | None = None,
    actor: Actor = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> Firing:
    """Record how a running firing ended."""
    if status not in FINAL_STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(FINAL_STATUSES)}")
    who = actor_name(actor)
    finished = wall_clock_ms() if now_ms is None else now_ms

    def work(conn: Connection) -> Firing:
        row = conn.execute(select(FIRINGS).where(FIRINGS.c.id == firing_id)).first()
        if row is None:
            raise NotFound(f"firing {firing_id!r} does not exist")
        if row.status != "running":
            raise Conflict(f"firing {firing_id} has ended already ({row.status})")
        values = {
            "status": status,
            "reason": reason,
            "execution_id": execution_id,
            "finished_ms": finished,
        }
        conn.execute(update(FIRINGS).where(FIRINGS.c.id == firing_id).values(values))
        merged = {**row._mapping, **values}
        _audit.append(
            conn,
            actor=who,
            action=f"trigger.{status}",
            target=f"trigger:{row.trigger}",
            before={"firing": firing_id, "status": "running"},
            after=_audit_view(merged),
        )
        return _firing(merged)

    with connect(store, settings) as db:
        return write(db, work)


def list_firings(
    trigger: str | None = None,
    *,
    status: str | None = None,
    limit: int = 50,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[Firing]:
    """Firings, newest first; of one trigger, and of one status, when given."""
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
    query = select(FIRINGS).order_by(FIRINGS.c.fired_ms.desc(), FIRINGS.c.id.desc()).limit(limit)
    if trigger is not None:
        query = query.where(FIRINGS.c.trigger == trigger_name(trigger))
    if status is not None:
        query = query.where(FIRINGS.c.status == status)
    with connect(store, settings) as db, db.read() as conn:
        return [_firing(r._mapping) for r in conn.execute(query)]


def claimed_keys(
    trigger: str,
    keys: Iterable[str],
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> set[str]:
    """Which of ``keys`` ``trigger`` has claimed already (to skip them without a write)."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    with connect(store, settings) as db, db.read() as conn:
        rows = conn.execute(
            select(FIRINGS.c.event_key).where(
                (FIRINGS.c.trigger == trigger) & FIRINGS.c.event_key.in_(wanted)
            )
        )
        return {str(r.event_key) for r in rows}


def get_firing(
    firing_id: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> Firing:
    with connect(store, settings) as db, db.read() as conn:
        row = conn.execute(select(FIRINGS).where(FIRINGS.c.id == firing_id)).first()
    if row is None:
        raise NotFound(f"firing {firing_id!r} does not exist")
    return _firing(row._mapping)


# -- rows -------------------------------------------------------------------------------------


def _firing(row: Mapping[Any, Any]) -> Firing:
    return Firing(
        id=str(row["id"]),
        trigger=str(row["trigger"]),
        event_key=str(row["event_key"]),
        kind=str(row["kind"]),
        event=dict(row["event"] or {}),
        pipeline=str(row["pipeline"]),
        params=dict(row["params"] or {}),
        fired_ms=int(row["fired_ms"]),
        fired_by=str(row["fired_by"]),
        status=str(row["status"]),
        reason=row["reason"],
        execution_id=row["execution_id"],
        finished_ms=None if row["finished_ms"] is None else int(row["finished_ms"]),
    )


def _audit_view(row: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("id", "event_key", "kind", "event", "pipeline", "status", "reason", "execution_id")
    return {key: row[key] for key in keep if row.get(key) is not None}


def _utc(ms: int) -> str:
    from mloop.agent._trigger_schedule import iso_utc

    return iso_utc(ms)
