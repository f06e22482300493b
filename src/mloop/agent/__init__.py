"""The agent: the long-running controller that advances rollouts and fires retraining
triggers, safe to run as several replicas (leader election through the metadata store).

Rollouts (``start_rollout``, ``advance_rollouts``, ``abort_rollout``) walk a candidate
model version through a ``RolloutPlan`` — shadow, canary steps, promotion — judging each
step on the prediction and feedback logs and rolling back on a breach. Triggers
(``save_trigger``, ``run_due``) start the retraining pipeline. ``tick`` does one round of
both as the leader; ``run_agent`` repeats it. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.agent._lease import Lease, NotLeader, acquire_lease, get_lease
    from mloop.agent._plan_store import delete_plan, get_plan, list_plans, save_plan
    from mloop.agent._plans import Checks, RolloutPlan, Step
    from mloop.agent._retrain import retraining_pipeline
    from mloop.agent._rollout_html import write_rollout_html
    from mloop.agent._rollout_store import Rollout, RolloutEvent
    from mloop.agent._rollouts import (
        abort_rollout,
        advance_rollouts,
        get_rollout,
        list_rollouts,
        rollout_events,
        start_rollout,
    )
    from mloop.agent._tick import TickReport, release_lease, run_agent, tick
    from mloop.agent._trigger_spec import Trigger
    from mloop.agent._trigger_store import Firing
    from mloop.agent._triggers import (
        apply_triggers,
        delete_trigger,
        fire_trigger,
        get_trigger,
        list_firings,
        list_triggers,
        run_due,
        save_trigger,
        set_trigger_enabled,
    )

_LAZY: dict[str, str] = {
    "Checks": "mloop.agent._plans",
    "Firing": "mloop.agent._trigger_store",
    "Lease": "mloop.agent._lease",
    "NotLeader": "mloop.agent._lease",
    "Rollout": "mloop.agent._rollout_store",
    "RolloutEvent": "mloop.agent._rollout_store",
    "RolloutPlan": "mloop.agent._plans",
    "Step": "mloop.agent._plans",
    "TickReport": "mloop.agent._tick",
    "Trigger": "mloop.agent._trigger_spec",
    "abort_rollout": "mloop.agent._rollouts",
    "acquire_lease": "mloop.agent._lease",
    "advance_rollouts": "mloop.agent._rollouts",
    "apply_triggers": "mloop.agent._triggers",
    "delete_plan": "mloop.agent._plan_store",
    "delete_trigger": "mloop.agent._triggers",
    "fire_trigger": "mloop.agent._triggers",
    "get_lease": "mloop.agent._lease",
    "get_plan": "mloop.agent._plan_store",
    "get_rollout": "mloop.agent._rollouts",
    "get_trigger": "mloop.agent._triggers",
    "list_firings": "mloop.agent._triggers",
    "list_plans": "mloop.agent._plan_store",
    "list_rollouts": "mloop.agent._rollouts",
    "list_triggers": "mloop.agent._triggers",
    "release_lease": "mloop.agent._tick",
    "retraining_pipeline": "mloop.agent._retrain",
    "rollout_events": "mloop.agent._rollouts",
    "run_agent": "mloop.agent._tick",
    "set_trigger_enabled": "mloop.agent._triggers",
    "run_due": "mloop.agent._triggers",
    "save_plan": "mloop.agent._plan_store",
    "save_trigger": "mloop.agent._triggers",
    "start_rollout": "mloop.agent._rollouts",
    "tick": "mloop.agent._tick",
    "write_rollout_html": "mloop.agent._rollout_html",
}

__all__: list[str] = [
    "Checks",
    "Firing",
    "Lease",
    "NotLeader",
    "Rollout",
    "RolloutEvent",
    "RolloutPlan",
    "Step",
    "TickReport",
    "Trigger",
    "abort_rollout",
    "acquire_lease",
    "advance_rollouts",
    "apply_triggers",
    "delete_plan",
    "delete_trigger",
    "fire_trigger",
    "get_lease",
    "get_plan",
    "get_rollout",
    "get_trigger",
    "list_firings",
    "list_plans",
    "list_rollouts",
    "list_triggers",
    "release_lease",
    "retraining_pipeline",
    "rollout_events",
    "run_agent",
    "run_due",
    "save_plan",
    "save_trigger",
    "set_trigger_enabled",
    "start_rollout",
    "tick",
    "write_rollout_html",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
