"""Blessings: the latest gated verdict on a model version, and the aliases that need one.

A verdict is found by the version's package digest (see :mod:`mloop.evaluation._tables`).
A blessing requirement is part of the registered model's promotion policy;
:func:`blessing_problems` is what ``registry.promotion_blockers`` and ``set_alias`` call,
inside the transaction that moves the alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, or_, select

from mloop._ids import now_ms
from mloop.errors import NotFound
from mloop.evaluation._gates import REQUIREMENTS, gate_name, gate_spec_json
from mloop.evaluation._tables import Evaluation
from mloop.registry import _audit, _names
from mloop.registry._db import Actor, actor_name, check, connect, write
from mloop.registry._models import require_model, require_version
from mloop.registry._roles import Resource
from mloop.store import MetadataStore

EVALUATIONS = cast(Table, Evaluation.__table__)
ALL_ALIASES = "*"


@dataclass(frozen=True)
class Blessing:
    """The latest gated verdict on a model version: ``blessed`` or refused, and why."""

    model: str
    version: int
    blessed: bool
    reasons: list[str]
    evaluation_id: str
    gate_name: str | None
    gate: dict[str, Any] | None
    baseline: str | None
    data: str | None
    metric: str
    created_by: str
    creation_time: int


@dataclass(frozen=True)
class Requirement:
    model: str
    aliases: tuple[str, ...]
    gate_name: str | None
    updated_by: str
    last_update_time: int

    def covers(self, alias: str) -> bool:
        return ALL_ALIASES in self.aliases or alias in self.aliases


# -- blessings --------------------------------------------------------------------------------


def blessing_in(
    conn: Connection, name: str, version: int, *, gate: str | None = None
) -> Blessing | None:
    """The latest gated verdict on ``name`` version ``version`` (by one named gate, as it
    stands now, when ``gate`` is given), found by the version's package digest."""
    digest = require_version(conn, name, version).package_digest
    query = (
        select(EVALUATIONS)
        .where(
            EVALUATIONS.c.candidate_digest == digest,
            EVALUATIONS.c.blessed.is_not(None),
            or_(EVALUATIONS.c.candidate_model.is_(None), EVALUATIONS.c.candidate_model == name),
        )
        .order_by(EVALUATIONS.c.creation_time.desc(), EVALUATIONS.c.id.desc())
    )
    if gate is not None:
        query = query.where(EVALUATIONS.c.gate_name == gate)
    for row in conn.execute(query):
        if gate is not None and row.gate != gate_spec_json(conn, gate):
            continue  # blessed under an earlier version of the gate: it no longer counts
        return Blessing(
            model=name,
            version=version,
            blessed=bool(row.blessed),
            reasons=list(row.reasons or []),
            evaluation_id=row.id,
            gate_name=row.gate_name,
            gate=row.gate,
            baseline=row.baseline,
            data=row.data,
            metric=row.metric,
            created_by=row.created_by,
            creation_time=int(row.creation_time),
        )
    return None


def get_blessing(
    model_name: str,
    version: int | str,
    *,
    gate: str | None = None,
    store: MetadataStore | None = None,
) -> Blessing | None:
    """The latest gated verdict on a model version (``.blessed`` says which); None when
    no gate has judged its package yet."""
    _names.model_name(model_name)
    number = _names.version_number(version)
    with connect(store) as db, db.read() as conn:
        return blessing_in(conn, model_name, number, gate=gate)


# -- blessing requirements ----------------------------------------------------------------------


def require_blessing(
    name: str,
    aliases: Sequence[str] = ("champion",),
    *,
    gate: str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> Requirement | None:
    """Only a blessed version of ``name`` may take one of ``aliases`` (``["*"]``: any);
    with ``gate``, only a blessing by that named gate (as it stands) counts. An empty
    ``aliases`` removes the requirement. Enforced by ``set_alias`` / ``promotion_blockers``."""
    _names.model_name(name)
    clean = tuple(dict.fromkeys(a if a == ALL_ALIASES else _names.alias_name(a) for a in aliases))
    if gate is not None:
        gate_name(gate)
    check(actor, "admin", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> Requirement | None:
        require_model(conn, name)
        if gate is not None and gate_spec_json(conn, gate) is None:
            raise NotFound(
                f"gate {gate!r} does not exist; save it first (`mloop gates save NAME gate.yaml`)"
            )
        old = requirement_in(conn, name)
        now = now_ms()
        new = Requirement(name, clean, gate, who, now) if clean else None
        if (old and (old.aliases, old.gate_name)) == (new and (new.aliases, new.gate_name)):
            return old
        conn.execute(delete(REQUIREMENTS).where(REQUIREMENTS.c.model_name == name))
        if new is not None:
            conn.execute(
                REQUIREMENTS.insert(),
                {
                    "model_name": name,
                    "aliases": list(clean),
                    "gate_name": gate,
                    "updated_by": who,
                    "last_update_time": now,
                },
            )
        _audit.append(
            conn,
            actor=who,
            action="blessing_requirement.set" if new else "blessing_requirement.delete",
            target=f"model:{name}",
            before=None if old is None else {"aliases": list(old.aliases), "gate": old.gate_name},
            after=None if new is None else {"aliases": list(clean), "gate": gate},
        )
        return new

    with connect(store) as db:
        return write(db, work)


def requirement_in(conn: Connection, name: str) -> Requirement | None:
    row = conn.execute(select(REQUIREMENTS).where(REQUIREMENTS.c.model_name == name)).first()
    if row is None:
        return None
    return Requirement(
        name, tuple(row.aliases), row.gate_name, row.updated_by, int(row.last_update_time)
    )


def get_blessing_requirement(
    name: str, *, store: MetadataStore | None = None
) -> Requirement | None:
    _names.model_name(name)
    with connect(store) as db, db.read() as conn:
        return requirement_in(conn, name)


def blessing_problems(
    conn: Connection, name: str, version: int, alias: str, *, required: bool
) -> list[str]:
    """Why ``version`` of ``name`` may not take ``alias`` for want of a blessing; empty when
    it may. ``required`` is the trust policy's ``require_evaluation`` (any alias)."""
    requirement = requirement_in(conn, name)
    needed = required or (requirement is not None and requirement.covers(alias))
    if not needed:
        return []
    gate = requirement.gate_name if requirement is not None and requirement.covers(alias) else None
    found = blessing_in(conn, name, version, gate=gate)
    by = f" by gate {gate!r}" if gate else ""
    fix = (
        f"evaluate it with `mloop evaluate --candidate models:/{name}/{version} --baseline "
        f"models:/{name}@{alias} --data DATASET@VERSION --label COLUMN --gate {gate or 'gate.yaml'}`"
    )
    if found is None:
        return [
            f"evaluation: no evaluation yet of version {version}{by}; @{alias} needs a blessed "
            f"version ({fix})"
        ]
    if not found.blessed:
        why = "; ".join(found.reasons[:3]) + (" …" if len(found.reasons) > 3 else "")
        return [
            f"evaluation: the latest evaluation of version {version}{by} ({found.evaluation_id}) "
            f"refused it: {why}; improve the model, or {fix}"
        ]
    return []
