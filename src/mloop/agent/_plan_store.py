"""Named rollout plans in the metadata store, every change in the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select, update

from mloop._ids import now_ms
from mloop.agent._db import store_for
from mloop.agent._plans import RolloutPlan, plan_name
from mloop.agent._tables import RolloutPlanRow
from mloop.config import Settings
from mloop.errors import NotFound
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, write

PLANS = cast(Table, RolloutPlanRow.__table__)


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
    stored = parsed.to_json()
    who = actor_name(actor)

    def work(conn: Connection) -> RolloutPlan:
        row = conn.execute(select(PLANS).where(PLANS.c.name == name)).first()
        now = now_ms()
        if row is None:
            conn.execute(
                PLANS.insert(),
                {
                    "name": name,
                    "plan": stored,
                    "created_by": who,
                    "creation_time": now,
                    "last_update_time": now,
                },
            )
        elif row.plan == stored:
            return parsed
        else:
            conn.execute(
                update(PLANS).where(PLANS.c.name == name).values(plan=stored, last_update_time=now)
            )
        _audit.append(
            conn,
            actor=who,
            action="rollout_plan.create" if row is None else "rollout_plan.update",
            target=f"rollout_plan:{name}",
            before=None if row is None else row.plan,
            after=stored,
        )
        return parsed

    with store_for(settings) as db:
        return write(db, work)


def get_plan(name: str, *, settings: Settings | None = None) -> RolloutPlan:
    plan_name(name)
    with store_for(settings) as db, db.read() as conn:
        row = conn.execute(select(PLANS.c.plan).where(PLANS.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"rollout plan {name!r} does not exist; `mloop rollout plan list` shows the plans, "
            f"`mloop rollout plan save {name} FILE` stores one"
        )
    return RolloutPlan.parse(row.plan, source=f"stored plan {name}")


def list_plans(*, settings: Settings | None = None) -> list[tuple[str, RolloutPlan]]:
    """Every stored plan as ``(name, plan)``, by name."""
    with store_for(settings) as db, db.read() as conn:
        rows = conn.execute(select(PLANS.c.name, PLANS.c.plan).order_by(PLANS.c.name)).all()
    return [(r.name, RolloutPlan.parse(r.plan, source=f"stored plan {r.name}")) for r in rows]


def delete_plan(name: str, *, actor: Actor = None, settings: Settings | None = None) -> None:
    """Remove a stored plan; rollouts that used it keep their copy."""
    plan_name(name)
    who = actor_name(actor)

    def work(conn: Connection) -> None:
        row = conn.execute(select(PLANS.c.plan).where(PLANS.c.name == name)).first()
        if row is None:
            raise NotFound(f"rollout plan {name!r} does not exist; nothing to delete")
        conn.execute(delete(PLANS).where(PLANS.c.name == name))
        _audit.append(
            conn,
            actor=who,
            action="rollout_plan.delete",
            target=f"rollout_plan:{name}",
            before=row.plan,
            after=None,
        )

    with store_for(settings) as db:
        write(db, work)


__all__ = ["delete_plan", "get_plan", "list_plans", "save_plan"]
