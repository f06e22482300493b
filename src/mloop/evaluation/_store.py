"""Evaluations, blessings and named gates in the metadata store.

Writes go through the registry's write path (one transaction under the registry lock,
audit entry inside it), because a verdict is a governance event like an approval: it can
unlock a promotion. Recording a gated verdict on a registered model needs ``write`` on
that model; saving a named gate needs ``admin``; a blessing requirement (which aliases only
a blessed version may take) is part of the model's policy and needs ``admin`` on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, delete, or_, select, update

from mloop._ids import now_ms
from mloop._lineage import link_lineage
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.evaluation._spec import GateSpec
from mloop.evaluation._tables import BlessingRequirement, Evaluation, GateRow
from mloop.registry import _audit, _names
from mloop.registry._db import MODELS, VERSIONS, Actor, actor_name, check, connect, write
from mloop.registry._models import require_model, require_version
from mloop.registry._roles import GLOBAL, Resource
from mloop.store import MetadataStore

if TYPE_CHECKING:
    from mloop.evaluation._inputs import ModelRef
    from mloop.evaluation._report import EvaluationReport

EVALUATIONS = cast(Table, Evaluation.__table__)
GATES = cast(Table, GateRow.__table__)
REQUIREMENTS = cast(Table, BlessingRequirement.__table__)
ALL_ALIASES = "*"
_GATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEAVY = ("curves",)  # plotted in the report file; not worth keeping in every row


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
class StoredEvaluation:
    id: str
    candidate: str
    candidate_digest: str
    model: str | None
    version: int | None
    baseline: str | None
    data: str | None
    metric: str
    gate_name: str | None
    blessed: bool | None
    reasons: list[str]
    report: dict[str, Any]
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


def gate_name(name: Any) -> str:
    if not isinstance(name, str) or not _GATE_NAME.match(name):
        raise InvalidInput(
            f"gate name {name!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# -- evaluations ------------------------------------------------------------------------------


def _versions_with_digest(conn: Connection, digest: str) -> list[tuple[str, int]]:
    rows = conn.execute(
        select(MODELS.c.name, VERSIONS.c.version)
        .select_from(VERSIONS.join(MODELS, VERSIONS.c.model_id == MODELS.c.model_id))
        .where(VERSIONS.c.package_digest == digest)
        .order_by(MODELS.c.name, VERSIONS.c.version)
    ).all()
    return [(str(r.name), int(r.version)) for r in rows]


def record_evaluation(
    report: EvaluationReport,
    candidate: ModelRef,
    baseline: ModelRef | None,
    *,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> None:
    """Store ``report`` and link it: lineage edges from the data and the models to the
    evaluation, from the evaluation to each registered version of the candidate's package
    (``blessed``/``refused``), and an audit entry for a gated verdict."""
    if candidate.registered is not None:
        check(actor, "write", Resource.model(candidate.registered[0]))
    who = actor_name(actor)
    document = {k: v for k, v in report.to_dict().items() if k not in _HEAVY}

    def work(conn: Connection) -> None:
        linked = _versions_with_digest(conn, candidate.digest)
        if candidate.registered is not None:
            linked = [v for v in linked if v[0] == candidate.registered[0]] or [
                candidate.registered
            ]
        model, version = candidate.registered or (linked[0] if len(linked) == 1 else (None, None))
        conn.execute(
            EVALUATIONS.insert(),
            {
                "id": report.id,
                "candidate": candidate.uri,
                "candidate_digest": candidate.digest,
                "candidate_model": model,
                "candidate_version": version,
                "baseline": None if baseline is None else baseline.uri,
                "baseline_digest": None if baseline is None else baseline.digest,
                "data": report.data,
                "metric": report.metric,
                "gate_name": report.gate_name,
                "gate": None if report.gate is None else report.gate.to_json(),
                "blessed": report.blessed,
                "reasons": list(report.reasons),
                "report": document,
                "created_by": who,
                "creation_time": report.created_ms,
            },
        )
        sources: list[tuple[str, str, str]] = []
        if report.data is not None:
            sources.append(("dataset", report.data, "evaluated_on"))
        for ref, relation in ((candidate, "candidate"), (baseline, "baseline")):
            if ref is None:
                continue
            if ref.registered is not None:
                sources.append(
                    ("model_version", f"{ref.registered[0]}/{ref.registered[1]}", relation)
                )
            elif ref.run_id is not None:
                sources.append(("run", ref.run_id, relation))
        link_lineage(conn, "evaluation", report.id, sources, report.created_ms)
        if report.blessed is None:
            return
        verdict = "blessed" if report.blessed else "refused"
        for name, number in linked:
            link_lineage(
                conn,
                "model_version",
                f"{name}/{number}",
                [("evaluation", report.id, verdict)],
                report.created_ms,
            )
        targets = [f"model:{n}/{v}" for n, v in linked] or [f"package:{candidate.digest}"]
        for target in targets:
            _audit.append(
                conn,
                actor=who,
                action=f"evaluation.{verdict}",
                target=target,
                before=None,
                after={
                    "evaluation": report.id,
                    "gate": report.gate_name,
                    "baseline": None if baseline is None else baseline.uri,
                    "data": report.data,
                    "reasons": list(report.reasons),
                },
            )

    with connect(store) as db:
        write(db, work)


def _stored(row: Any) -> StoredEvaluation:
    return StoredEvaluation(
        id=row.id,
        candidate=row.candidate,
        candidate_digest=row.candidate_digest,
        model=row.candidate_model,
        version=row.candidate_version,
        baseline=row.baseline,
        data=row.data,
        metric=row.metric,
        gate_name=row.gate_name,
        blessed=row.blessed,
        reasons=list(row.reasons or []),
        report=dict(row.report or {}),
        created_by=row.created_by,
        creation_time=int(row.creation_time),
    )


def get_evaluation(evaluation_id: str, *, store: MetadataStore | None = None) -> StoredEvaluation:
    with connect(store) as db, db.read() as conn:
        row = conn.execute(select(EVALUATIONS).where(EVALUATIONS.c.id == evaluation_id)).first()
    if row is None:
        raise NotFound(f"evaluation {evaluation_id!r} does not exist")
    return _stored(row)


def list_evaluations(
    model: str | None = None,
    version: int | None = None,
    *,
    limit: int = 100,
    store: MetadataStore | None = None,
) -> list[StoredEvaluation]:
    """Evaluations, newest first; of one registered model (and version) when given."""
    query = select(EVALUATIONS).order_by(
        EVALUATIONS.c.creation_time.desc(), EVALUATIONS.c.id.desc()
    )
    with connect(store) as db, db.read() as conn:
        if model is not None:
            _names.model_name(model)
            if version is not None:
                digest = require_version(conn, model, _names.version_number(version)).package_digest
                query = query.where(
                    or_(
                        (EVALUATIONS.c.candidate_model == model)
                        & (EVALUATIONS.c.candidate_version == int(version)),
                        (EVALUATIONS.c.candidate_digest == digest)
                        & EVALUATIONS.c.candidate_model.is_(None),
                    )
                )
            else:
                query = query.where(EVALUATIONS.c.candidate_model == model)
        rows = conn.execute(query.limit(max(1, min(limit, 10_000)))).all()
    return [_stored(r) for r in rows]


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
        if gate is not None and row.gate != _gate_spec_json(conn, gate):
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


def _gate_spec_json(conn: Connection, name: str) -> dict[str, Any] | None:
    spec = conn.execute(select(GATES.c.spec).where(GATES.c.name == name)).scalar_one_or_none()
    return None if spec is None else GateSpec.parse(spec).to_json()


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
        if gate is not None and _gate_spec_json(conn, gate) is None:
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


# -- named gates ------------------------------------------------------------------------------


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
