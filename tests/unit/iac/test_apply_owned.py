"""Gate and AlertRule documents on SQLite and PostgreSQL (stored through mloop.evaluation
and mloop.monitoring), kind order, roles, located errors, and a kind that is registered
but not available, which is refused rather than skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mloop.errors import PermissionDenied
from mloop.evaluation import get_gate, list_gates
from mloop.iac import DocumentsInvalid, apply, export, plan
from mloop.iac._kinds import Kind, kinds, register_kind
from mloop.monitoring import get_alert_rule, list_alert_rules
from mloop.registry import Principal, RoleGrant, list_audit_log
from mloop.registry._db import Actor
from tests.unit.iac.conftest import write

LOOP = """
apiVersion: mloop/v1
kind: AlertRule
metadata:
  name: churn-errors
spec:
  deployment: churn
  metric: error_rate
  window: 10m
  op: ">"
  threshold: 0.05
  for: 20m
  sinks:
    - log
    - webhook: http://127.0.0.1:9/hook
---
apiVersion: mloop/v1
kind: Gate
metadata:
  name: churn-gate
spec:
  metric: roc_auc
  min_improvement: 0.0
  thresholds:
    accuracy: {min: 0.8}
  robustness:
    max_drop: 0.05
    perturbations: [noise]
"""


def test_gates_and_alert_rules_apply_idempotently_and_export_back(db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "loop.yaml", LOOP)
    result = apply(path)
    assert [(c.kind, c.name, c.action) for c in result.changes] == [
        ("Gate", "churn-gate", "create"),  # gates and alert rules before what names them
        ("AlertRule", "churn-errors", "create"),
    ]
    gate = get_gate("churn-gate")
    assert gate.metric == "roc_auc"
    assert gate.robustness is not None
    assert gate.robustness.perturbations == ("noise",)
    rule = get_alert_rule("churn-errors")
    assert (rule.deployment, rule.for_, rule.window) == ("churn", "20m", "10m")
    assert [s.type for s in rule.sinks] == ["log", "webhook"]
    audit = len(list_audit_log())

    assert {c.action for c in apply(path).changes} == {"unchanged"}
    assert len(list_audit_log()) == audit

    out = export(tmp_path / "out", kinds_wanted=["Gate", "AlertRule"])
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out.files) == [
        "alert-rules/churn-errors.yaml",
        "gates/churn-gate.yaml",
    ]
    assert "for: 20m" in (tmp_path / "out" / "alert-rules" / "churn-errors.yaml").read_text()
    assert {c.action for c in apply(tmp_path / "out").changes} == {"unchanged"}

    write(path, LOOP.replace("threshold: 0.05", "threshold: 0.1"))
    (_, rule_change) = plan(path).changes
    assert [(f.path, f.before, f.after) for f in rule_change.fields()] == [("threshold", 0.05, 0.1)]
    apply(path)
    assert get_alert_rule("churn-errors").threshold == 0.1
    assert list(list_gates()) == ["churn-gate"]
    assert [r.name for r in list_alert_rules()] == ["churn-errors"]


def test_storing_a_gate_needs_admin(sqlite_db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "loop.yaml", LOOP)
    deployer = Principal("carol", "user", (RoleGrant("deployer", "global"),))
    with pytest.raises(PermissionDenied):
        apply(path, actor=deployer)
    assert list_gates() == {}
    assert list_alert_rules() == []  # nothing applied, the alert rule neither
    admin = Principal("root", "user", (RoleGrant("admin", "global"),))
    apply(path, actor=admin)
    assert {e.actor for e in list_audit_log(target="gate:churn-gate")} == {"root"}


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("metric: error_rate", "metric: eror_rate", 7, "spec.metric", "unknown metric"),
        ("for: 20m", "for: 5m", 5, "spec", "shorter than one window"),
        ("  - log\n", "  - {type: pager}\n", 13, "spec.sinks[0]", ""),
        ("min_improvement: 0.0", "min_improvment: 0.0", 22, "spec.min_improvment", "unknown"),
        ("[noise]", "[noise, fire]", 27, "spec.robustness.perturbations[1]", "'fire'"),
        ("name: churn-gate", "name: churn gate", 19, "metadata.name", "gate name"),
    ],
)
def test_owned_kind_errors_name_the_line_and_field(
    sqlite_db: str, tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in LOOP
    path = write(tmp_path / "loop.yaml", LOOP.replace(old, new))
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (line, field), problem
    assert message in problem.message
    assert list_gates() == {}


class _Unavailable(Kind):
    """A kind whose owner is missing in this installation."""

    name = "Experiment"
    order = 5

    def unavailable(self) -> str | None:
        return "kind Experiment is not supported yet: mloop.tracking provides no save_experiment"

    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        raise AssertionError("not called for an unavailable kind")

    def parse(self, name: str, spec: Any) -> Any:
        raise AssertionError("not called for an unavailable kind")

    def get_live(self, name: str) -> Any | None:
        raise AssertionError("not called for an unavailable kind")

    def list_live(self) -> list[tuple[str, Any]]:
        raise AssertionError("not called for an unavailable kind")

    def apply(
        self, name: str, desired: Any, *, live: Any | None, actor: Actor, reason: str
    ) -> None:
        raise AssertionError("not called for an unavailable kind")

    def dump(self, obj: Any) -> dict[str, Any]:
        raise AssertionError("not called for an unavailable kind")


@pytest.fixture
def unavailable_kind() -> Any:
    register_kind(_Unavailable())
    yield
    from mloop.iac import _kinds

    _kinds._KINDS.pop("Experiment")


@pytest.mark.usefixtures("unavailable_kind")
def test_a_kind_not_supported_yet_is_refused_not_skipped(sqlite_db: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.yaml",
        LOOP + "---\napiVersion: mloop/v1\nkind: Experiment\nmetadata: {name: e}\nspec: {}\n",
    )
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (30, "kind")
    assert "not supported yet" in problem.message
    assert list_gates() == {}
    assert "Experiment" in kinds()
    assert all(d["kind"] != "Experiment" for d in export().documents)
    with pytest.raises(Exception, match="not supported yet"):
        export(kinds_wanted=["Experiment"])


def test_an_unknown_kind_lists_the_kinds(sqlite_db: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.yaml",
        "apiVersion: mloop/v1\nkind: Deploymnet\nmetadata: {name: a}\nspec: {}\n",
    )
    with pytest.raises(
        DocumentsInvalid, match=r"x\.yaml:2: kind: unknown kind 'Deploymnet'; use one of: Gate"
    ):
        apply(path)


PLAN = """
apiVersion: mloop/v1
kind: RolloutPlan
metadata:
  name: careful
spec:
  steps:
    - shadow 30m
    - canary 5% 30m
    - {traffic: 50, window: 1h}
    - 100%
  checks:
    max_error_rate_increase: 0.005
    max_wait: 2h
  promote_alias: champion
"""


def test_rollout_plans_apply_idempotently_and_export_back(db: str, tmp_path: Path) -> None:
    from mloop.agent._plan_store import get_plan

    path = write(tmp_path / "plan.yaml", PLAN)
    assert [c.action for c in apply(path).changes] == ["create"]
    plan_ = get_plan("careful")
    assert [s.describe() for s in plan_.steps] == ["shadow", "canary 5%", "canary 50%", "100%"]
    assert plan_.checks.max_error_rate_increase == 0.005
    assert [c.action for c in apply(path).changes] == ["unchanged"]
    out = export(tmp_path / "out", kinds_wanted=["RolloutPlan"])
    assert [p.name for p in out.files] == ["careful.yaml"]
    assert [c.action for c in apply(tmp_path / "out").changes] == ["unchanged"]
    write(path, PLAN.replace("canary 5% 30m", "canary 10% 30m"))
    (change,) = plan(path).changes
    assert [(f.path, f.before, f.after) for f in change.fields()] == [
        ("steps[1].traffic", 5.0, 10.0)
    ]


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("    - 100%\n", "", 5, "spec", "end steps with '100%'"),
        ("canary 5% 30m", "canary 60% 30m", 9, "spec.steps[2]", "does not grow"),
        ("max_wait: 2h", "max_wait: 2 fortnights", 13, "spec.checks.max_wait", "duration"),
        ("name: careful", "name: care/ful", 4, "metadata.name", "plan name"),
    ],
)
def test_rollout_plan_errors_name_the_line_and_field(
    sqlite_db: str, tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in PLAN
    path = write(tmp_path / "plan.yaml", PLAN.replace(old, new))
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (line, field), problem
    assert message in problem.message
