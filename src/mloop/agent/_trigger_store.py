"""Triggers in the metadata store, with every change in the audit log, and the entities
their firings share (:class:`Firing`, :class:`Event`; claiming lives in
:mod:`._trigger_firings`).

Writes go through the registry's write path (:func:`mloop.registry._db.write`): one
transaction holding the registry lock, with the audit entry inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Table

from mloop._ids import now_ms as wall_clock_ms
from mloop.agent._trigger_spec import Trigger, trigger_name
from mloop.agent._trigger_tables import TriggerFiring, TriggerRow
from mloop.config import Settings
from mloop.errors import InvalidInput
from mloop.registry._db import Actor, check
from mloop.registry._named_specs import NamedSpecs, Row
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

log = logging.getLogger("mloop.agent.triggers")
TRIGGERS = cast(Table, TriggerRow.__table__)
FIRINGS = cast(Table, TriggerFiring.__table__)
_TRIGGERS = NamedSpecs(
    TRIGGERS,
    kind="trigger",
    missing=(
        "trigger {name!r} does not exist; `mloop triggers list` shows the triggers, "
        "`mloop triggers apply FILE` creates them"
    ),
    nothing_to_delete="trigger {name!r} does not exist; nothing to delete",
)


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
    authorize_triggers(actor)

    def columns(row: Row | None) -> dict[str, Any]:
        if row is None or Trigger.parse(row["spec"]).on != parsed.on:
            arming = dict(armed or {})
        else:
            arming = row["armed"]
        return {"kind": parsed.kind, "enabled": parsed.enabled, "armed": arming}

    stored = _TRIGGERS.save(
        parsed.name,
        parsed.to_json(),
        actor=actor,
        other_columns=columns,
        now_ms=wall_clock_ms() if now_ms is None else now_ms,
        store=store,
        settings=settings,
    )
    return _stored(stored)


def get_stored_trigger(
    name: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> StoredTrigger:
    return _stored(_TRIGGERS.get(trigger_name(name), store=store, settings=settings))


def list_stored_triggers(
    *,
    skip_invalid: bool = False,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[StoredTrigger]:
    """Every trigger, by name. With ``skip_invalid`` (the agent's view) a stored
    declaration this mloop cannot read any more is logged and left out instead of
    stopping every other trigger."""
    found = []
    for row in _TRIGGERS.rows(store=store, settings=settings):
        try:
            found.append(_stored(row))
        except InvalidInput as exc:
            if not skip_invalid:
                raise
            log.warning("trigger %s is left out: %s", row["name"], exc.message)
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
    _TRIGGERS.delete(name, actor=actor, store=store, settings=settings)


# -- rows -------------------------------------------------------------------------------------


def _stored(row: Row) -> StoredTrigger:
    return StoredTrigger(
        trigger=Trigger.parse(row["spec"], source=f"stored trigger {row['name']!r}"),
        armed=dict(row["armed"] or {}),
        created_by=str(row["created_by"]),
        creation_time=int(row["creation_time"]),
        last_update_time=int(row["last_update_time"]),
    )
