"""NamedSpecs: the one write path of plans, triggers, gates and alert rules.

Each of those modules' tests checks its own kind; these pin what they share and what each
only partly exercises: the audit entries' targets and before/after, an unchanged save that
records nothing, the columns a module adds, and a delete's hook.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import Connection, Table

from mloop.agent._tables import RolloutPlanRow
from mloop.errors import Conflict, NotFound
from mloop.monitoring._tables import MonitorAlertRule
from mloop.registry import list_audit_log
from mloop.registry._named_specs import NamedSpecs, Row

PLANS = NamedSpecs(
    cast(Table, RolloutPlanRow.__table__),
    kind="rollout_plan",
    spec_column="plan",
    missing="no plan {name!r}; `list` shows them",
    nothing_to_delete="no plan {name!r} to delete",
)
RULES = NamedSpecs(
    cast(Table, MonitorAlertRule.__table__),
    kind="alert_rule",
    missing="no rule {name!r}",
)


def audit(kind: str) -> list[tuple[str, str, str, Any, Any]]:
    """The entries about ``kind``, oldest first."""
    entries = reversed(list_audit_log())
    return [
        (e.actor, e.action, e.target, e.before, e.after)
        for e in entries
        if e.target.startswith(f"{kind}:")
    ]


def test_save_creates_updates_and_leaves_an_unchanged_spec_alone(db: str) -> None:
    created = PLANS.save("fast", {"steps": [1]}, actor="bob", now_ms=1000)
    assert dict(created) == {
        "name": "fast",
        "plan": {"steps": [1]},
        "created_by": "bob",
        "creation_time": 1000,
        "last_update_time": 1000,
    }
    assert dict(PLANS.save("fast", {"steps": [1]}, actor="eve", now_ms=2000)) == dict(created)
    updated = PLANS.save("fast", {"steps": [1, 2]}, actor=None, now_ms=3000)
    assert dict(updated) == {**created, "plan": {"steps": [1, 2]}, "last_update_time": 3000}
    assert dict(PLANS.get("fast")) == dict(updated)
    assert audit("rollout_plan") == [
        ("bob", "rollout_plan.create", "rollout_plan:fast", None, {"steps": [1]}),
        ("ada", "rollout_plan.update", "rollout_plan:fast", {"steps": [1]}, {"steps": [1, 2]}),
    ]


def test_other_columns_see_the_row_they_replace(db: str) -> None:
    seen: list[str | None] = []

    def columns(row: Row | None) -> dict[str, Any]:
        seen.append(None if row is None else row["deployment"])
        return {"deployment": "churn" if row is None else "fraud"}

    RULES.save("slow", {"v": 1}, actor=None, other_columns=columns)
    RULES.save("slow", {"v": 1}, actor=None, other_columns=columns)  # unchanged: not asked
    RULES.save("slow", {"v": 2}, actor=None, other_columns=columns)
    assert seen == [None, "churn"]
    assert RULES.get("slow")["deployment"] == "fraud"


def test_rows_are_by_name_and_filtered(db: str) -> None:
    for name, deployment in [("b", "churn"), ("a", "fraud"), ("c", "churn")]:
        RULES.save(
            name, {"n": name}, actor=None, other_columns=lambda _, d=deployment: {"deployment": d}
        )
    assert [r["name"] for r in RULES.rows()] == ["a", "b", "c"]
    table = RULES.table
    assert [r["name"] for r in RULES.rows(table.c.deployment == "churn")] == ["b", "c"]


def test_missing_names_say_what_to_do(db: str) -> None:
    with pytest.raises(NotFound, match=r"^no plan 'x'; `list` shows them$"):
        PLANS.get("x")
    with pytest.raises(NotFound, match=r"^no plan 'x' to delete$"):
        PLANS.delete("x", actor=None)
    with pytest.raises(NotFound, match=r"^no rule 'x'$"):
        RULES.delete("x", actor=None)


def test_delete_runs_its_hook_in_the_transaction_and_is_audited(db: str) -> None:
    PLANS.save("fast", {"steps": [1]}, actor=None)

    def refuse(conn: Connection) -> None:
        raise Conflict("in use")

    with pytest.raises(Conflict):
        PLANS.delete("fast", actor=None, before_delete=refuse)
    assert PLANS.get("fast")["plan"] == {"steps": [1]}

    hooked: list[Connection] = []
    PLANS.delete("fast", actor="bob", before_delete=hooked.append)
    assert len(hooked) == 1
    assert PLANS.rows() == []
    assert audit("rollout_plan")[-1] == (
        "bob",
        "rollout_plan.delete",
        "rollout_plan:fast",
        {"steps": [1]},
        None,
    )
