"""Named gates in the metadata store: evaluation rules kept as configuration.

``mloop gates save NAME gate.yaml`` and ``mloop apply`` (``kind: Gate``) store them;
``evaluate(gate="NAME")`` uses one and records its name, which a blessing requirement
can insist on. Saving and deleting need ``admin`` and are audited.
"""

from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from mloop._ids import now_ms
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.evaluation._spec import GateSpec
from mloop.evaluation._tables import BlessingRequirement, GateRow
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, check, connect, write
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

GATES = cast(Table, GateRow.__table__)
REQUIREMENTS = cast(Table, BlessingRequirement.__table__)
_GATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def gate_name(name: Any) -> str:
    if not isinstance(name, str) or not _GATE_NAME.match(name):
        raise InvalidInput(
            f"gate name {name!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def gate_spec_json(conn: Connection, name: str) -> dict[str, Any] | None:
    """The stored rules of gate ``name`` in their canonical JSON; None when absent."""
    spec = conn.execute(select(GATES.c.spec).where(GATES.c.name == name)).scalar_one_or_none()
    return None if spec is None else GateSpec.parse(spec).to_json()


def save_gate(
    name: str,
    spec: GateSpec | dict[str, Any],
    *,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> GateSpec:
    """Create or replace the gate ``name`` (saving the same rules again changes nothing)."""
    gate_name(name)
    parsed = GateSpec.parse(spec, source=f"gate {name}")
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)
    document = parsed.to_json()

    def work(conn: Connection) -> GateSpec:
        old = conn.execute(select(GATES.c.spec).where(GATES.c.name == name)).scalar_one_or_none()
        if old == document:
            return parsed
        now = now_ms()
        if old is None:
            conn.execute(
                GATES.insert(),
                {
                    "name": name,
                    "spec": document,
                    "created_by": who,
                    "creation_time": now,
                    "last_update_time": now,
                },
            )
        else:
            conn.execute(
                update(GATES)
                .where(GATES.c.name == name)
                .values(spec=document, last_update_time=now)
            )
        _audit.append(
            conn,
            actor=who,
            action="gate.create" if old is None else "gate.update",
            target=f"gate:{name}",
            before=old,
            after=document,
        )
        return parsed

    with connect(store) as db:
        return write(db, work)


def get_gate(name: str, *, store: MetadataStore | None = None) -> GateSpec:
    gate_name(name)
    with connect(store) as db, db.read() as conn:
        spec = conn.execute(select(GATES.c.spec).where(GATES.c.name == name)).scalar_one_or_none()
    if spec is None:
        raise NotFound(
            f"gate {name!r} does not exist; `mloop gates list` shows the stored gates, "
            "`mloop gates save NAME FILE` stores one (or pass a YAML file)"
        )
    return GateSpec.parse(spec, source=f"stored gate {name}")


def list_gates(*, store: MetadataStore | None = None) -> dict[str, GateSpec]:
    with connect(store) as db, db.read() as conn:
        rows = conn.execute(select(GATES.c.name, GATES.c.spec).order_by(GATES.c.name)).all()
    return {str(r.name): GateSpec.parse(r.spec) for r in rows}


def delete_gate(name: str, *, actor: Actor = None, store: MetadataStore | None = None) -> None:
    gate_name(name)
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)

    def work(conn: Connection) -> None:
        old = conn.execute(select(GATES.c.spec).where(GATES.c.name == name)).scalar_one_or_none()
        if old is None:
            raise NotFound(f"gate {name!r} does not exist, so there is nothing to delete")
        users = (
            conn.execute(select(REQUIREMENTS.c.model_name).where(REQUIREMENTS.c.gate_name == name))
            .scalars()
            .all()
        )
        if users:
            raise Conflict(
                f"gate {name!r} is required for blessings of {', '.join(users)}; change their "
                "requirement (mloop.evaluation.require_blessing) first"
            )
        conn.execute(delete(GATES).where(GATES.c.name == name))
        _audit.append(
            conn, actor=who, action="gate.delete", target=f"gate:{name}", before=old, after=None
        )

    with connect(store) as db:
        write(db, work)
