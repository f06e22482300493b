"""Triggers in the metadata store, with every change in the audit log, and the entities
their firings share (:class:`Firing`, :class:`Event`; claiming lives in
:mod:`._trigger_firings`).

Writes go through the registry's write path (:func:`mloop.registry._db.write`): one
transaction holding the registry lock, with the audit entry inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from mloop._ids import now_ms as wall_clock_ms
from mloop.agent._trigger_spec import Trigger, trigger_name
from mloop.agent._trigger_tables import TriggerFiring, TriggerRow
from mloop.config import Settings
from mloop.errors import InvalidInput, NotFound
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, check, connect, write
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

log = logging.getLogger("mloop.agent.triggers")
TRIGGERS = cast(Table, TriggerRow.__table__)
FIRINGS = cast(Table, TriggerFiring.__table__)


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


def store_for(
    settings: Settings | None, store: MetadataStore | None = None
) -> AbstractContextManager[MetadataStore]:
    """``store``, the store ``settings`` name, or the configured one."""
    return connect(store, settings)


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
    *,
    skip_invalid: bool = False,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[StoredTrigger]:
    """Every trigger, by name. With ``skip_invalid`` (the agent's view) a stored
    declaration this mloop cannot read any more is logged and left out instead of
    stopping every other trigger."""
    with store_for(settings, store) as db, db.read() as conn:
        rows = conn.execute(select(TRIGGERS).order_by(TRIGGERS.c.name)).all()
    found = []
    for row in rows:
        try:
            found.append(_stored(row._mapping))
        except InvalidInput as exc:
            if not skip_invalid:
                raise
            log.warning("trigger %s is left out: %s", row.name, exc.message)
    return found


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


# -- rows -------------------------------------------------------------------------------------


def _stored(row: Mapping[Any, Any]) -> StoredTrigger:
    return StoredTrigger(
        trigger=Trigger.parse(row["spec"], source=f"stored trigger {row['name']!r}"),
        armed=dict(row["armed"] or {}),
        created_by=str(row["created_by"]),
        creation_time=int(row["creation_time"]),
        last_update_time=int(row["last_update_time"]),
    )
