"""Evaluations in the metadata store: what was compared, on what, and the verdict.

Writes go through the registry's write path (one transaction under the registry lock,
audit entry inside it), because a verdict is a governance event like an approval: it can
unlock a promotion (see :mod:`mloop.evaluation._blessings`). Recording a gated verdict on
a registered model needs ``write`` on that model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, or_, select

from mloop._lineage import link_lineage
from mloop.errors import NotFound
from mloop.evaluation._gates import gate_name as gate_name  # mloop.iac looks it up here
from mloop.evaluation._tables import Evaluation
from mloop.registry import _audit, _names
from mloop.registry._db import MODELS, VERSIONS, Actor, actor_name, check, connect, write
from mloop.registry._models import require_version
from mloop.registry._roles import Resource
from mloop.store import MetadataStore

if TYPE_CHECKING:
    from mloop.evaluation._inputs import ModelRef
    from mloop.evaluation._report import EvaluationReport

EVALUATIONS = cast(Table, Evaluation.__table__)
_HEAVY = ("curves",)  # plotted in the report file; not worth keeping in every row


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
