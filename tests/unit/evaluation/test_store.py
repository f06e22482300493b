"""Verdicts, named gates and blessing requirements in the metadata store, on SQLite and a
real PostgreSQL: linked to model versions by package digest, audited, in the lineage
graph, and enforced when an alias moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, select

from mloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied, PolicyViolation
from mloop.evaluation import (
    GateSpec,
    delete_gate,
    evaluate,
    get_blessing,
    get_blessing_requirement,
    get_gate,
    list_evaluations,
    list_gates,
    require_blessing,
    save_gate,
)
from mloop.evaluation._tables import BlessingRequirement, Evaluation, GateRow
from mloop.registry import (
    Principal,
    RoleGrant,
    TrustPolicy,
    list_audit_log,
    promotion_blockers,
    set_alias,
    set_trust_policy,
    verify_audit_log,
)
from mloop.store import MetadataStore
from mloop.store import schema as s
from tests.unit.evaluation.conftest import register

PASS = GateSpec(metric="roc_auc", min_improvement=0.0)
FAIL = GateSpec(metric="roc_auc", min_improvement=0.5)


def _evaluate(candidate: str | Path, adult: pd.DataFrame, gate: Any = PASS, **kw: Any) -> Any:
    return evaluate(
        str(candidate),
        data=adult.head(400),
        label="income",
        gate=gate,
        resamples=0,
        noise=0.0,
        missing=0.0,
        **kw,
    )


def test_a_verdict_on_a_package_is_the_blessing_of_the_version_registered_from_it(
    db: str,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    report = _evaluate(packages["good"], adult, baseline=str(packages["weak"]))
    assert report.blessed is True
    assert report.recorded
    version = register("adult", packages["good"])  # after the evaluation, as retraining does
    blessing = get_blessing("adult", version)
    assert blessing is not None
    assert (blessing.blessed, blessing.evaluation_id, blessing.created_by) == (
        True,
        report.id,
        "ada",
    )
    assert blessing.gate == PASS.to_json()
    assert blessing.baseline == str(packages["weak"])
    [stored] = list_evaluations("adult", version)
    assert stored.id == report.id
    assert stored.report["verdict"] == "blessed"
    assert "curves" not in stored.report  # plotted in files, not kept in every row
    other = register("other", packages["weak"])
    assert get_blessing("other", other) is None


def test_the_latest_verdict_counts_and_is_audited_and_in_the_lineage(
    db: str,
    store: MetadataStore,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    version = register("adult", packages["good"])
    first = _evaluate(f"models:/adult/{version}", adult)
    second = _evaluate(f"models:/adult/{version}", adult, gate=FAIL, baseline=str(packages["weak"]))
    blessing = get_blessing("adult", version)
    assert blessing is not None
    assert blessing.evaluation_id == second.id
    assert blessing.blessed is False
    assert blessing.reasons == second.reasons
    assert [e.id for e in list_evaluations("adult")] == [second.id, first.id]
    actions = [e.action for e in list_audit_log(target=f"model:adult/{version}")]
    assert actions[:2] == ["evaluation.refused", "evaluation.blessed"]
    assert verify_audit_log().ok
    lineage = s.LineageEdge.__table__
    with store.read() as conn:
        edges = {
            (r.src_kind, r.src_id, r.relation, r.dst_kind, r.dst_id)
            for r in conn.execute(select(lineage))  # type: ignore[arg-type]
        }
    assert ("model_version", f"adult/{version}", "candidate", "evaluation", first.id) in edges
    assert ("evaluation", first.id, "blessed", "model_version", f"adult/{version}") in edges
    assert ("evaluation", second.id, "refused", "model_version", f"adult/{version}") in edges
    ungated = _evaluate(f"models:/adult/{version}", adult, gate=None)
    assert ungated.blessed is None
    assert get_blessing("adult", version).evaluation_id == second.id  # type: ignore[union-attr]


def test_an_alias_that_requires_a_blessing_refuses_until_one_is_given(
    db: str,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    version = register("adult", packages["good"])
    requirement = require_blessing("adult", ["champion"])
    assert requirement is not None
    assert requirement.aliases == ("champion",)
    assert get_blessing_requirement("adult") == requirement
    set_alias("adult", "staging", version)  # not covered
    with pytest.raises(PolicyViolation) as refused:
        set_alias("adult", "champion", version)
    assert "evaluation: no evaluation yet of version 1" in refused.value.message
    assert "mloop evaluate --candidate models:/adult/1" in refused.value.message
    _evaluate(f"models:/adult/{version}", adult, gate=FAIL, baseline=str(packages["weak"]))
    blockers = promotion_blockers("adult", "champion", version)
    assert len(blockers) == 1
    assert "refused it: roc_auc: candidate" in blockers[0]
    _evaluate(f"models:/adult/{version}", adult)
    assert promotion_blockers("adult", "champion", version) == []
    assert set_alias("adult", "champion", version).version == version
    assert require_blessing("adult", []) is None  # removed
    actions = [e.action for e in list_audit_log(target="model:adult")]
    assert "blessing_requirement.set" in actions
    assert "blessing_requirement.delete" in actions


def test_the_trust_policy_require_evaluation_is_a_blessing_for_every_alias(
    db: str,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    version = register("adult", packages["good"])
    set_trust_policy("adult", TrustPolicy(require_evaluation=True))
    with pytest.raises(PolicyViolation, match="no evaluation yet of version 1"):
        set_alias("adult", "anything", version)
    _evaluate(f"models:/adult/{version}", adult)
    set_alias("adult", "anything", version)


def test_named_gates_are_config_as_code_and_a_required_gate_is_the_only_one_that_counts(
    db: str,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    assert save_gate("strict", PASS) == PASS
    save_gate("strict", PASS)  # unchanged: no audit entry
    save_gate("loose", {"metric": "accuracy"})
    assert get_gate("strict") == PASS
    assert list(list_gates()) == ["loose", "strict"]
    version = register("adult", packages["good"])
    require_blessing("adult", ["champion"], gate="strict")
    _evaluate(f"models:/adult/{version}", adult, gate=PASS)  # same rules, but not by name
    assert "by gate 'strict'" in promotion_blockers("adult", "champion", version)[0]
    report = _evaluate(f"models:/adult/{version}", adult, gate="strict")
    assert report.gate_name == "strict"
    assert report.blessed is True
    assert promotion_blockers("adult", "champion", version) == []
    save_gate("strict", GateSpec(metric="roc_auc", min_improvement=0.001))  # rules changed
    assert promotion_blockers("adult", "champion", version) != []  # the old blessing lapsed
    with pytest.raises(Conflict, match="required for blessings of adult"):
        delete_gate("strict")
    delete_gate("loose")
    with pytest.raises(NotFound, match="`mloop gates list`"):
        get_gate("loose")
    actions = [e.action for e in reversed(list_audit_log(target="gate:strict"))]
    assert actions == ["gate.create", "gate.update"]


def test_bad_names_unknown_things_and_missing_roles_are_refused(
    db: str,
    packages: dict[str, Path],
    adult: pd.DataFrame,
) -> None:
    with pytest.raises(InvalidInput, match="gate name"):
        save_gate("no spaces", PASS)
    with pytest.raises(NotFound):
        require_blessing("ghost", ["champion"])
    register("adult", packages["good"])
    with pytest.raises(NotFound, match="gate 'nope' does not exist"):
        require_blessing("adult", ["champion"], gate="nope")
    with pytest.raises(InvalidInput):
        require_blessing("adult", ["bad alias!"])
    viewer = Principal("dee", "user", (RoleGrant("viewer", "global"),))
    with pytest.raises(PermissionDenied):
        save_gate("strict", PASS, actor=viewer)
    with pytest.raises(PermissionDenied):
        require_blessing("adult", ["champion"], actor=viewer)
    with pytest.raises(PermissionDenied, match="may not write model:adult"):
        _evaluate("models:/adult/1", adult, actor=viewer)
    assert list_evaluations("adult") == []


def test_the_tables_match_migration_0005(db: str, store: MetadataStore) -> None:
    mine = MetaData(naming_convention=s.Base.metadata.naming_convention)
    for table in (Evaluation, GateRow, BlessingRequirement):
        table.__table__.to_metadata(mine)  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, mine)
    ours = {"evaluations", "evaluation_gates", "blessing_requirements"}

    def touches_ours(diff: Any) -> bool:
        for item in diff if isinstance(diff, list) else [diff]:
            for part in item:
                name = getattr(part, "name", None) or getattr(
                    getattr(part, "table", None), "name", None
                )
                if (isinstance(part, str) and part in ours) or name in ours:
                    return True
        return False

    assert [d for d in differences if touches_ours(d)] == []
