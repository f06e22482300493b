"""Named rollout plans in the metadata store, every change in the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table

from mloop.agent._plans import RolloutPlan, plan_name
from mloop.agent._tables import RolloutPlanRow
from mloop.config import Settings
from mloop.registry._db import Actor
from mloop.registry._named_specs import NamedSpecs, Row

PLANS = cast(Table, RolloutPlanRow.__table__)
_PLANS = NamedSpecs(
    PLANS,
    kind="rollout_plan",
    spec_column="plan",
    missing=(
        "rollout plan {name!r} does not exist; `mloop rollout plan list` shows the plans, "
        "`mloop rollout plan save {name} FILE` stores one"
    ),
    nothing_to_delete="rollout plan {name!r} does not exist; nothing to delete",
)


def save_plan(
    name: str,
    plan: RolloutPlan | Mapping[str, Any],
    *,
    actor: Actor = None,
    settings: Settings | None = None,
) -> RolloutPlan:
    """Create or replace the plan called ``name``; saving it unchanged records nothing.
    Rollouts started from it keep the plan they started with."""
    plan_name(name)
    parsed = RolloutPlan.parse(plan, source=f"plan {name}")
    _PLANS.save(name, parsed.to_json(), actor=actor, settings=settings)
    return parsed


def get_plan(name: str, *, settings: Settings | None = None) -> RolloutPlan:
    return _plan(_PLANS.get(plan_name(name), settings=settings))


def list_plans(*, settings: Settings | None = None) -> list[tuple[str, RolloutPlan]]:
    """Every stored plan as ``(name, plan)``, by name."""
    return [(row["name"], _plan(row)) for row in _PLANS.rows(settings=settings)]


def delete_plan(name: str, *, actor: Actor = None, settings: Settings | None = None) -> None:
    """Remove a stored plan; rollouts that used it keep their copy."""
    _PLANS.delete(plan_name(name), actor=actor, settings=settings)


def _plan(row: Row) -> RolloutPlan:
    return RolloutPlan.parse(row["plan"], source=f"stored plan {row['name']}")


__all__ = ["delete_plan", "get_plan", "list_plans", "save_plan"]
