"""Starting, aborting and recovering rollouts: what start refuses and why, one running
rollout per deployment, an abort restores the deployment, a change made by hand stops the
rollout without being overwritten, a transition an agent claimed and never finished is
finished by the next one (once), and named plans in the store."""

from __future__ import annotations

import pytest

from mloop.agent import (
    RolloutPlan,
    abort_rollout,
    advance_rollouts,
    delete_plan,
    get_plan,
    get_rollout,
    list_plans,
    rollout_events,
    save_plan,
    start_rollout,
)
from mloop.agent import _rollout_store as rs
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.registry import archive_model_version, list_audit_log, set_alias
from mloop.registry._db import connect
from mloop.serving._deployments import (
    create_deployment,
    deployment_history,
    get_deployment,
    update_deployment,
)
from mloop.serving._spec import DeploymentSpec, Member
from tests.unit.agent._rollout_world import (
    MINUTE,
    T0,
    World,
)

WINDOW = 10 * MINUTE
PLAN = RolloutPlan.parse({"checks": {"min_requests": 40}})


def _versions(world: World) -> list[tuple[int, str]]:
    return [(m.version, m.role) for m in get_deployment(world.deployment).spec.members]


def test_start_refuses_what_it_cannot_roll_out(sqlite_world: World) -> None:
    with pytest.raises(InvalidInput, match="already the primary of 'fraud'; nothing to roll out"):
        start_rollout("fraud", "iris:1")
    with pytest.raises(NotFound, match="deployment 'nope' does not exist"):
        start_rollout("nope", "iris:2")
    with pytest.raises(NotFound, match="version 9"):
        start_rollout("fraud", "iris:9")
    with pytest.raises(InvalidInput, match="names no version"):
        start_rollout("fraud", "iris")
    with pytest.raises(NotFound, match="rollout plan 'careful' does not exist"):
        start_rollout("fraud", "iris:2", "careful")
    archive_model_version("iris", 3)
    with pytest.raises(Conflict, match="version 3 of 'iris' is archived"):
        start_rollout("fraud", "iris:3")
    update_deployment(
        "fraud",
        DeploymentSpec(
            members=(
                Member(model="iris", version=1),
                Member(model="iris", version=4, role="canary", weight=10),
            )
        ),
    )
    with pytest.raises(Conflict, match=r"has a canary already \(iris:4 \(10%\)\)"):
        start_rollout("fraud", "iris:2")
    with connect() as store:
        assert rs.select_rollouts(store) == []  # nothing was recorded


def test_one_running_rollout_per_deployment_and_aliases_resolve(sqlite_world: World) -> None:
    set_alias("iris", "challenger", 2)
    first = start_rollout("fraud", "iris@challenger", PLAN, now_ms=T0)
    assert first.candidate == "iris:2"
    with pytest.raises(Conflict, match=f"already has a running rollout {first.id} \\(iris:2\\)"):
        start_rollout("fraud", "iris:3", PLAN, now_ms=T0)
    # another deployment is independent
    create_deployment("other", DeploymentSpec(members=(Member(model="iris", version=1),)))
    other = start_rollout("other", "iris:3", PLAN, now_ms=T0)
    assert other.deployment == "other"
    assert get_rollout(first.id[:12]).id == first.id  # a unique prefix is enough
    with pytest.raises(InvalidInput, match="ambiguous"):
        get_rollout(first.id[:4])
    with pytest.raises(NotFound, match="rollout 'ffff' does not exist"):
        get_rollout("ffff")


def test_abort_restores_the_deployment(world: World) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    world.serve(T0, T0 + WINDOW, 1000)
    advance_rollouts(T0 + WINDOW)
    assert _versions(world) == [(1, "primary"), (2, "canary")]

    aborted = abort_rollout(rollout.id, "the data team asked", actor="ops", now_ms=T0 + WINDOW + 1)
    assert (aborted.state, aborted.reason, aborted.finished_ms) == (
        "aborted", "the data team asked", T0 + WINDOW + 1
    )  # fmt: skip
    assert _versions(world) == [(1, "primary")]
    last = deployment_history("fraud")[-1]
    assert (last.reason, last.created_by) == (
        f"rollout {rollout.id} aborted: the data team asked", "ops"
    )  # fmt: skip
    assert [e.kind for e in rollout_events(rollout.id)] == ["started", "step", "step", "aborted"]
    entry = list_audit_log(target="deployment:fraud", limit=1)[0]
    assert (entry.action, entry.actor) == ("rollout.abort", "ops")
    with pytest.raises(Conflict, match="has ended \\(aborted\\); there is nothing to abort"):
        abort_rollout(rollout.id)
    assert advance_rollouts(T0 + 2 * WINDOW) == []
    # the deployment is free for the next rollout
    assert start_rollout("fraud", "iris:3", PLAN, now_ms=T0 + 2 * WINDOW).state == "running"


def test_a_change_made_by_hand_stops_the_rollout_and_is_kept(sqlite_world: World) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    sqlite_world.serve(T0, T0 + WINDOW, 1000)
    by_hand = DeploymentSpec(
        members=(Member(model="iris", version=1), Member(model="iris", version=4, role="shadow"))
    )
    update_deployment("fraud", by_hand, reason="try v4 too", actor="bob")

    (event,) = advance_rollouts(T0 + WINDOW)
    assert event.kind == "failed"
    done = get_rollout(rollout.id)
    assert done.state == "failed"
    assert done.reason == (
        "deployment 'fraud' was changed outside the rollout (revision 3 by bob: try v4 too); "
        "the rollout stopped and left it as it is"
    )
    assert get_deployment("fraud").spec == by_hand
    assert len(deployment_history("fraud")) == 3


def test_a_claimed_transition_left_half_done_is_finished_once(sqlite_world: World) -> None:
    """An agent that died between claiming a step and recording it (or between changing
    the deployment and recording it) leaves the next agent enough to finish it once."""
    world = sqlite_world
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    world.serve(T0, T0 + 3 * WINDOW, 3000)
    with connect() as store:
        # died right after claiming the next step
        rs.claim(store, rollout, {"kind": "step", "step": 1}, now_ms=T0 + WINDOW, fence=None)
        (event,) = advance_rollouts(T0 + WINDOW)
        assert (event.kind, event.step) == ("step", 1)
        assert _versions(world) == [(1, "primary"), (2, "canary")]
        # died after changing the deployment, before recording it
        current = get_rollout(rollout.id)
        claimed = rs.claim(
            store, current, {"kind": "step", "step": 2}, now_ms=T0 + 2 * WINDOW, fence=None
        )
        update_deployment(
            "fraud",
            {"members": [{"model": "iris:1"}, {"model": "iris:2", "role": "canary", "weight": 25}]},
            reason=f"rollout {rollout.id} step 3/5: canary 25%",
            expected_revision=claimed.deployment_revision,
        )
        revisions = len(deployment_history("fraud"))
        (event,) = advance_rollouts(T0 + 2 * WINDOW)
        assert (event.kind, event.step, event.deployment_revision) == ("step", 2, revisions)
        assert len(deployment_history("fraud")) == revisions  # adopted, not made again
    events = rollout_events(rollout.id)
    assert [e.kind for e in events] == ["started", "step", "step", "step"]
    assert len({e.seq for e in events}) == 4


def test_named_plans_are_stored_audited_and_used(db: str) -> None:
    careful = RolloutPlan.parse(
        {"steps": ["shadow 1h", "1% 1h", "100%"], "checks": {"min_requests": 500, "max_wait": "6h"}}
    )
    assert save_plan("careful", careful) == careful
    save_plan("careful", careful)  # unchanged: no second entry
    save_plan("quick", {"steps": ["50% 5m", "100%"]})
    assert get_plan("careful") == careful
    assert [name for name, _ in list_plans()] == ["careful", "quick"]
    actions = [e.action for e in list_audit_log(target="rollout_plan:careful")]
    assert actions == ["rollout_plan.create"]
    save_plan("careful", careful.model_copy(update={"promote_alias": "prod"}))
    assert get_plan("careful").promote_alias == "prod"
    delete_plan("quick")
    assert [name for name, _ in list_plans()] == ["careful"]
    with pytest.raises(NotFound, match="rollout plan 'quick' does not exist"):
        delete_plan("quick")
    with pytest.raises(InvalidInput, match="plan name"):
        save_plan("no spaces", careful)
    with pytest.raises(InvalidInput, match="plan x: steps\\[0\\]"):
        save_plan("x", {"steps": ["150%"]})


def test_a_rollout_started_from_a_named_plan_keeps_its_copy(sqlite_world: World) -> None:
    save_plan("two-step", {"steps": ["shadow 5m", "100%"], "checks": {"min_requests": 40}})
    rollout = start_rollout("fraud", "iris:2", "two-step", now_ms=T0)
    assert rollout.plan_name == "two-step"
    save_plan("two-step", {"steps": ["shadow 1h", "100%"]})
    assert get_rollout(rollout.id).plan.steps[0].window == "5m"
    sqlite_world.serve(T0, T0 + 5 * MINUTE, 200)
    (event,) = advance_rollouts(T0 + 5 * MINUTE)
    assert event.kind == "promoted"


def test_a_step_the_deployment_refuses_fails_the_rollout_and_restores_it(
    sqlite_world: World,
) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    sqlite_world.serve(T0, T0 + WINDOW, 1000)
    archive_model_version("iris", 2)  # keeps serving, but no new revision may name it
    (event,) = advance_rollouts(T0 + WINDOW)
    assert event.kind == "failed"
    done = get_rollout(rollout.id)
    assert done.state == "failed"
    assert done.reason is not None
    assert done.reason.startswith("the deployment refused the change: version 2 of 'iris'")
    assert _versions(sqlite_world) == [(1, "primary")]


def test_an_abort_reason_is_bounded(sqlite_world: World) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    with pytest.raises(InvalidInput, match="at most 1,000 characters"):
        abort_rollout(rollout.id, "x" * 1001)
    assert get_rollout(rollout.id).state == "running"  # nothing was claimed
