"""Triggers and their firings in the metadata store, with every change in the audit log.

Writes go through the registry's write path (:func:`mloop.registry._db.write`): one
transaction holding the registry lock, with the audit entry inside it. Claiming an event
is such a write: it looks for the ``(trigger, event_key)`` row and inserts it only if
absent, so of several agents that see the same event at the same moment exactly one gets
the row; the unique constraint is the backstop (a refused insert is a lost race, not an
error).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from mloop._ids import new_id
from mloop._ids import now_ms as wall_clock_ms
from mloop.agent._trigger_spec import Trigger, trigger_name
from mloop.agent._trigger_tables import TriggerFiring, TriggerRow
from mloop.config import Settings
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, check, connect, write
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

TRIGGERS = cast(Table, TriggerRow.__table__)
FIRINGS = cast(Table, TriggerFiring.__table__)
STATUSES = ("running", "succeeded", "stopped", "failed", "skipped")
FINAL_STATUSES = ("succeeded", "stopped", "failed")


@dataclass(frozen=True)
class Firing:
    """One event of one trigger and its outcome (see :class:`TriggerFiring`)."""

    id: str
    trigger: str
    event_key: str
    kind: str
    event: dict[str, Any]
    pipeline: str
    params: dict[str, Any]
    fired_ms: int
    fired_by: str
    status: str
    reason: str | None
    execution_id: str | None
    finished_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StoredTrigger:
    """A trigger with what the store knows about it: who saved it, when, and its arming."""

    trigger: Trigger
    armed: dict[str, Any]
    created_by: str
    creation_time: int
    last_update_time: int


@dataclass(frozen=True)
class Event:
    """Something a trigger reacts to. ``key`` names it uniquely within the trigger (the alert
    id, the cron fire time, the dataset version); ``params`` go into the pipeline's
    parameters over the trigger's own."""

    key: str
    detail: dict[str, Any]
    params: dict[str, Any]


@contextmanager
def store_for(
    settings: Settings | None, store: MetadataStore | None = None
) -> Iterator[MetadataStore]:
    """``store``, the store ``settings`` name, or the configured one."""
    if store is not None or settings is None:
        with connect(store) as db:
            yield db
        return
    from mloop.registry._db import _open

    uri = settings.tracking_uri
    if not uri or uri.startswith(("http://", "https://")):
        uri = settings.resolved_db_uri
    yield _open(uri)


def authorize_triggers(actor: Actor) -> None:
    """A trigger runs the code it names with the agent's rights, so declaring, deleting
    or firing one takes the global ``admin`` role (API callers; a local caller holds the
    store itself and is trusted)."""
    check(actor, "admin", GLOBAL)


# -- triggers ---------------------------------------------------------------------------------


def save_trigger(
    trigger: Trigger | Mapping[str, Any],
    *,
    armed: Mapping[str, Any] | None = None,
    actor: Actor = None,
    now_ms: int | None = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> StoredTrigger:
    """Create ``trigger`` or replace the one with its name. Saving the same declaration
    again changes nothing (and adds no audit entry). A changed ``on`` re-arms the trigger
    with ``armed``; otherwise the earlier arming stays, so re-applying a file never makes
    a trigger fire for events it already handled or ignored."""
    parsed = Trigger.parse(trigger)
    spec = parsed.to_json()
    authorize_triggers(actor)
    who = actor_name(actor)
    now = wall_clock_ms() if now_ms is None else now_ms

    def work(conn: Connection) -> StoredTrigger:
        row = conn.execute(select(TRIGGERS).where(TRIGGERS.c.name == parsed.name)).first()
        if row is None:
            values = {
                "name": parsed.name,
                "kind": parsed.kind,
                "spec": spec,
                "enabled": parsed.enabled,
                "armed": dict(armed or {}),
                "created_by": who,
                "creation_time": now,
                "last_update_time": now,
            }
            conn.execute(TRIGGERS.insert(), values)
            _audit.append(
                conn,
                actor=who,
                action="trigger.create",
                target=f"trigger:{parsed.name}",
                before=None,
                after=spec,
            )
            return _stored(values)
        if row.spec == spec:
            return _stored(row._mapping)
        old = Trigger.parse(row.spec)
        rearm = old.on != parsed.on
        values = {
            "kind": parsed.kind,
            "spec": spec,
            "enabled": parsed.enabled,
            "armed": dict(armed or {}) if rearm else row.armed,
            "last_update_time": now,
        }
        conn.execute(update(TRIGGERS).where(TRIGGERS.c.name == parsed.name).values(values))
        _audit.append(
            conn,
            actor=who,
            action="trigger.update",
            target=f"trigger:{parsed.name}",
            before=row.spec,
            after=spec,
        )
        return _stored({**row._mapping, **values})

    with store_for(settings, store) as db:
        return write(db, work)


def get_stored_trigger(
    name: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> StoredTrigger:
    trigger_name(name)
    with store_for(settings, store) as db, db.read() as conn:
        row = conn.execute(select(TRIGGERS).where(TRIGGERS.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"trigger {name!r} does not exist; `mloop triggers list` shows the triggers, "
            "`mloop triggers apply FILE` creates them"
        )
    return _stored(row._mapping)


def list_stored_triggers(
    *, settings: Settings | None = None, store: MetadataStore | None = None
) -> list[StoredTrigger]:
    with store_for(settings, store) as db, db.read() as conn:
        rows = conn.execute(select(TRIGGERS).order_by(TRIGGERS.c.name)).all()
    return [_stored(r._mapping) for r in rows]


def delete_trigger(
    name: str,
    *,
    actor: Actor = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> None:
    """Remove a trigger; its firings stay in the history."""
    trigger_name(name)
    authorize_triggers(actor)
    who = actor_name(actor)

    def work(conn: Connection) -> None:
        row = conn.execute(select(TRIGGERS.c.spec).where(TRIGGERS.c.name == name)).first()
        if row is None:
            raise NotFound(f"trigger {name!r} does not exist; nothing to delete")
        conn.execute(delete(TRIGGERS).where(TRIGGERS.c.name == name))
        _audit.append(
            conn,
            actor=who,
            action="trigger.delete",
            target=f"trigger:{name}",
            before=row.spec,
            after=None,
        )

    with store_for(settings, store) as db:
        write(db, work)


# -- firings ----------------------------------------------------------------------------------


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

    with store_for(settings, store) as db:
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

    with store_for(settings, store) as db:
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
    with store_for(settings, store) as db, db.read() as conn:
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
    with store_for(settings, store) as db, db.read() as conn:
        rows = conn.execute(
            select(FIRINGS.c.event_key).where(
                (FIRINGS.c.trigger == trigger) & FIRINGS.c.event_key.in_(wanted)
            )
        )
        return {str(r.event_key) for r in rows}


def get_firing(
    firing_id: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> Firing:
    with store_for(settings, store) as db, db.read() as conn:
        row = conn.execute(select(FIRINGS).where(FIRINGS.c.id == firing_id)).first()
    if row is None:
        raise NotFound(f"firing {firing_id!r} does not exist")
    return _firing(row._mapping)


# -- rows -------------------------------------------------------------------------------------


def _stored(row: Mapping[Any, Any]) -> StoredTrigger:
    return StoredTrigger(
        trigger=Trigger.parse(row["spec"], source=f"stored trigger {row['name']!r}"),
        armed=dict(row["armed"] or {}),
        created_by=str(row["created_by"]),
        creation_time=int(row["creation_time"]),
        last_update_time=int(row["last_update_time"]),
    )


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
