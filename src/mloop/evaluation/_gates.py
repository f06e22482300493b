"""Named gates in the metadata store: evaluation rules kept as configuration.

``mloop gates save NAME gate.yaml`` and ``mloop apply`` (``kind: Gate``) store them;
``evaluate(gate="NAME")`` uses one and records its name, which a blessing requirement
can insist on. Saving and deleting need ``admin`` and are audited.
"""

from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import Connection, Table, select

from mloop.errors import Conflict, InvalidInput
from mloop.evaluation._spec import GateSpec
from mloop.evaluation._tables import BlessingRequirement, GateRow
from mloop.registry._db import Actor, check
from mloop.registry._named_specs import NamedSpecs
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

GATES = cast(Table, GateRow.__table__)
REQUIREMENTS = cast(Table, BlessingRequirement.__table__)
_GATES = NamedSpecs(
    GATES,
    kind="gate",
    missing=(
        "gate {name!r} does not exist; `mloop gates list` shows the stored gates, "
        "`mloop gates save NAME FILE` stores one (or pass a YAML file)"
    ),
    nothing_to_delete="gate {name!r} does not exist, so there is nothing to delete",
)
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
    _GATES.save(name, parsed.to_json(), actor=actor, store=store)
    return parsed


def get_gate(name: str, *, store: MetadataStore | None = None) -> GateSpec:
    row = _GATES.get(gate_name(name), store=store)
    return GateSpec.parse(row["spec"], source=f"stored gate {name}")


def list_gates(*, store: MetadataStore | None = None) -> dict[str, GateSpec]:
    return {str(row["name"]): GateSpec.parse(row["spec"]) for row in _GATES.rows(store=store)}


def delete_gate(name: str, *, actor: Actor = None, store: MetadataStore | None = None) -> None:
    gate_name(name)
    check(actor, "admin", GLOBAL)

    def refuse_if_required(conn: Connection) -> None:
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

    _GATES.delete(name, actor=actor, before_delete=refuse_if_required, store=store)
