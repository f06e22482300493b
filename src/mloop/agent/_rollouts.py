"""Progressive delivery: a candidate model version walks a plan's steps on a deployment.

``start_rollout`` records the rollout and puts its first step in force; the agent's
``advance_rollouts`` then, at every tick, judges the step in force on the window of
traffic since it began (:mod:`._checks` over :func:`mloop.monitoring.window_metrics`) and
either holds, moves to the next step, promotes the candidate (the last step: it becomes
the primary and takes the plan's alias, ``champion`` by default) or rolls back to the
deployment as it was, recording why.

Every change of the deployment is an ordinary ``update_deployment`` with a reason
(``rollout 0193… step 2/5: canary 5%``), so ``mloop deploy history`` and the audit log
show each step; it passes ``expected_revision``, so a change someone else made meanwhile
is never overwritten. Transitions are claimed and completed through
:mod:`._rollout_store` (compare-and-set on the rollout's version, and the agent's fencing
token), so each happens once however many agents tick at the same moment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mloop._ids import new_id
from mloop._ids import now_ms as wall_clock_ms
from mloop.agent import _rollout_store as rs
from mloop.agent._checks import judge
from mloop.agent._lease import Lease, NotLeader
from mloop.agent._plan_store import get_plan
from mloop.agent._plans import RolloutPlan
from mloop.agent._rollout_store import LostRace, Rollout, RolloutEvent
from mloop.agent._step_specs import base_spec
from mloop.agent._transitions import drive
from mloop.config import Settings
from mloop.errors import Conflict, InvalidInput, MloopError
from mloop.registry._db import Actor, actor_name, check, connect
from mloop.registry._roles import Resource
from mloop.serving._spec import member_ref
from mloop.store import MetadataStore

log = logging.getLogger("mloop.agent.rollouts")
_ABORT_ATTEMPTS = 5
PlanInput = RolloutPlan | Mapping[str, Any] | str | Path | None


# -- starting, reading, stopping --------------------------------------------------------------


def start_rollout(
    deployment: str,
    candidate: str,
    plan: PlanInput = None,
    *,
    actor: Actor = None,
    now_ms: int | None = None,
    settings: Settings | None = None,
) -> Rollout:
    """Start rolling ``candidate`` (``"iris:4"``, ``"iris@challenger"``) out on
    ``deployment`` with ``plan`` (a plan, its mapping, the name of a stored plan, a YAML
    file, or None for the default) and put its first step in force now."""
    from mloop.registry._models import resolve
    from mloop.serving._deployments import get_deployment

    check(actor, "deploy", Resource.deployment(deployment))
    who = actor_name(actor)
    parsed, name = _plan(plan, settings)
    model, ref = member_ref(candidate)
    now = wall_clock_ms() if now_ms is None else now_ms
    with connect(settings=settings) as db:
        found = resolve(model, ref, store=db)
        if found.archived:
            raise Conflict(
                f"version {found.version} of {model!r} is archived and cannot be rolled out; "
                f"restore it (`mloop models restore {model} {found.version}`) first"
            )
        current = get_deployment(deployment, store=db)
        base = base_spec(current.spec, deployment, model, found.version)
        primary = base.primary
        rollout = rs.insert(
            db,
            {
                "id": new_id(),
                "deployment": deployment,
                "candidate_model": model,
                "candidate_version": found.version,
                "primary_model": primary.model,
                "primary_version": primary.version,
                "plan": parsed.to_json(),
                "plan_name": name,
                "base_spec": base.to_json(),
                "state": rs.RUNNING,
                "step": -1,
                "step_started_ms": now,
                "deployment_revision": current.revision,
                "target": {"kind": "step", "step": 0},
                "reason": None,
                "last_check": None,
                "created_by": who,
                "created_ms": now,
                "updated_ms": now,
                "finished_ms": None,
            },
            message=f"{model}:{found.version} on {deployment} (primary {primary.ref}): "
            f"{parsed.describe()}",
            actor=who,
        )
        drive(db, rollout, now_ms=now, fence=None, actor=who)
        started = rs.read(db, rollout.id)
    if started.state == "failed":
        raise Conflict(f"rollout {started.id} could not start: {started.reason}")
    return started


def get_rollout(rollout_id: str, *, settings: Settings | None = None) -> Rollout:
    """The rollout with this id (or a unique prefix of it)."""
    with connect(settings=settings) as db:
        return _find(db, rollout_id)


def list_rollouts(
    deployment: str | None = None,
    *,
    state: str | None = None,
    limit: int = 50,
    settings: Settings | None = None,
) -> list[Rollout]:
    """Rollouts, newest first; of one deployment, in one state (``running``,
    ``succeeded``, ``rolled_back``, ``aborted``, ``failed``)."""
    if state is not None and state not in rs.STATES:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(rs.STATES)}")
    with connect(settings=settings) as db:
        return rs.select_rollouts(
            db,
            deployment=deployment,
            states=None if state is None else (state,),
            limit=limit,
        )


def rollout_events(rollout_id: str, *, settings: Settings | None = None) -> list[RolloutEvent]:
    """What happened to a rollout, oldest first."""
    with connect(settings=settings) as db:
        return rs.events_of(db, _find(db, rollout_id))


def abort_rollout(
    rollout_id: str,
    reason: str | None = None,
    *,
    actor: Actor = None,
    now_ms: int | None = None,
    settings: Settings | None = None,
) -> Rollout:
    """Stop a running rollout and return the deployment to how it was before it."""
    now = wall_clock_ms() if now_ms is None else now_ms
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise InvalidInput("an abort reason must be a string of at most 1,000 characters")
    with connect(settings=settings) as db:
        for _ in range(_ABORT_ATTEMPTS):
            rollout = _find(db, rollout_id)
            check(actor, "deploy", Resource.deployment(rollout.deployment))
            who = actor_name(actor)
            if not rollout.active:
                raise Conflict(
                    f"rollout {rollout.id} has ended ({rollout.state.replace('_', ' ')}); "
                    "there is nothing to abort"
                )
            why = reason or f"aborted by {who}"
            target = {"kind": "rollback", "outcome": "aborted", "reason": why}
            try:
                claimed = rs.claim(db, rollout, target, now_ms=now, fence=None)
            except LostRace:
                continue
            drive(db, claimed, now_ms=now, fence=None, actor=who)
            return rs.read(db, rollout.id)
    raise Conflict(f"rollout {rollout_id} kept changing while it was being aborted; try again")


# -- the agent's part -------------------------------------------------------------------------


def advance_rollouts(
    now_ms: int,
    settings: Settings | None = None,
    *,
    fence: Lease | None = None,
    actor: Actor = None,
    errors: list[str] | None = None,
) -> list[RolloutEvent]:
    """Judge every running rollout at ``now_ms`` and make the transitions that are due;
    the events they produced. ``fence``: the caller's lease, checked at every write, so a
    deposed leader changes nothing. A rollout that cannot be judged (an unreadable log) is
    skipped and its error logged (and added to ``errors``); the others still move."""
    who = actor_name(actor)
    events: list[RolloutEvent] = []
    with connect(settings=settings) as db:
        for rollout in rs.select_rollouts(db, states=(rs.RUNNING,), oldest_first=True):
            try:
                events.extend(_advance(db, rollout, now_ms, fence, who, settings))
            except LostRace:
                continue
            except NotLeader:
                raise
            except MloopError as exc:
                log.warning("rollout %s on %s: %s", rollout.id, rollout.deployment, exc)
                if errors is not None:
                    errors.append(f"rollout {rollout.id} on {rollout.deployment}: {exc}")
            except Exception as exc:  # a bug in one rollout must not stall the others
                log.exception("rollout %s on %s failed to advance", rollout.id, rollout.deployment)
                if errors is not None:
                    errors.append(
                        f"rollout {rollout.id} on {rollout.deployment}: {type(exc).__name__}: {exc}"
                    )
    return events


def _advance(
    db: MetadataStore,
    rollout: Rollout,
    now: int,
    fence: Lease | None,
    who: str,
    settings: Settings | None,
) -> list[RolloutEvent]:
    if rollout.target is not None:  # a transition an agent began and did not record
        claimed = rs.claim(db, rollout, rollout.target, now_ms=now, fence=fence)
        return drive(db, claimed, now_ms=now, fence=fence, actor=who)
    target, check = _decide(rollout, now, settings)
    if target is None:
        if check is not None:
            rs.note_check(db, rollout, check, now)
        return []
    claimed = rs.claim(db, rollout, target, now_ms=now, fence=fence)
    return drive(db, claimed, now_ms=now, fence=fence, actor=who)


def _decide(
    rollout: Rollout, now: int, settings: Settings | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the step in force calls for at ``now``: a transition target (or None to hold)
    and the judgement it rests on."""
    from mloop.monitoring import window_metrics

    plan, index = rollout.plan, rollout.step
    step = plan.steps[index]
    started = rollout.step_started_ms
    if now <= started:
        return None, None
    members = window_metrics(rollout.deployment, started, now, settings=settings)
    candidate = members.get((rollout.candidate_model, rollout.candidate_version, step.role))
    primary = members.get((rollout.primary_model, rollout.primary_version, "primary"))
    verdict = judge(plan.checks, candidate, primary, step.role)
    check: dict[str, Any] = {
        "at_ms": now,
        "window": [started, now],
        "step": index,
        **verdict.figures,
        "breaches": verdict.breaches,
        "shortfall": verdict.shortfall,
    }
    where = f"step {index + 1}/{rollout.steps} ({step.describe()})"
    if verdict.enough and verdict.breaches:
        return _rollback_target("rolled_back", f"{where}: " + "; ".join(verdict.breaches), check)
    if now - started < step.window_ms:
        return None, check
    if verdict.passed:
        return _next_target(rollout, check), check
    wait = plan.checks.max_wait_ms
    if wait is not None and now - started >= wait:
        if plan.checks.on_insufficient_traffic == "advance":
            check["advanced_without_evidence"] = True
            return _next_target(rollout, check), check
        reason = f"{where}: {verdict.shortfall} within {plan.checks.max_wait}"
        return _rollback_target("rolled_back", reason, check)
    return None, check


def _next_target(rollout: Rollout, check: dict[str, Any]) -> dict[str, Any]:
    following = rollout.step + 1
    if rollout.plan.steps[following].is_full:
        return {"kind": "promote", "check": check}
    return {"kind": "step", "step": following, "check": check}


def _rollback_target(
    outcome: str, reason: str, check: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    return {"kind": "rollback", "outcome": outcome, "reason": reason, "check": check}, check


# -- helpers ----------------------------------------------------------------------------------


def _plan(plan: PlanInput, settings: Settings | None) -> tuple[RolloutPlan, str | None]:
    if isinstance(plan, Path):
        return RolloutPlan.from_yaml(plan), None
    if isinstance(plan, str):
        if plan.endswith((".yaml", ".yml", ".json")) and Path(plan).is_file():
            return RolloutPlan.from_yaml(plan), None
        return get_plan(plan, settings=settings), plan
    return RolloutPlan.parse(plan), None


def _find(db: MetadataStore, rollout_id: str) -> Rollout:
    if not isinstance(rollout_id, str) or not rollout_id.strip():
        raise InvalidInput("give a rollout id (`mloop rollout list` shows them)")
    rollout_id = rollout_id.strip()
    if len(rollout_id) == 32:
        return rs.read(db, rollout_id)
    found = rs.find(db, rollout_id)
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidInput(f"rollout id prefix {rollout_id!r} is ambiguous; give more of it")
    return rs.read(db, rollout_id)


__all__ = [
    "abort_rollout",
    "advance_rollouts",
    "get_rollout",
    "list_rollouts",
    "rollout_events",
    "start_rollout",
]
