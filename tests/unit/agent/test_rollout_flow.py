"""A rollout driven through every step by real prediction logs on an injected clock, on
SQLite and PostgreSQL: success promotes the candidate and @champion; a breach in the
canary (errors, latency, divergent answers, worse accuracy from feedback) rolls back with
the reason; too little traffic holds, then rolls back or advances as the plan says."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.agent import (
    RolloutPlan,
    advance_rollouts,
    get_rollout,
    list_rollouts,
    rollout_events,
    start_rollout,
    write_rollout_html,
)
from mloop.errors import NotFound
from mloop.registry import TrustPolicy, list_audit_log, resolve, set_trust_policy
from mloop.serving._deployments import deployment_history, get_deployment
from mloop.serving._spec import DeploymentSpec, Member
from tests.unit.agent._rollout_world import (
    MINUTE,
    T0,
    Behaviour,
    World,
    truth,
)

WINDOW = 10 * MINUTE
PLAN = RolloutPlan.parse({"checks": {"min_requests": 40, "min_labelled": 30}})


def _members(world: World) -> list[tuple[int, str, float]]:
    spec = get_deployment(world.deployment).spec
    return [(m.version, m.role, m.weight) for m in spec.members]


def _window(world: World, n: int, count: int = 1000, labels: bool = False) -> int:
    """Serve window ``n`` (0-based) after T0 and return its end."""
    world.serve(T0 + n * WINDOW, T0 + (n + 1) * WINDOW, count, labels=labels)
    return T0 + (n + 1) * WINDOW


def test_a_good_candidate_walks_every_step_and_becomes_champion(
    world: World, tmp_path: Path
) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    assert (rollout.state, rollout.step, rollout.candidate, rollout.primary) == (
        "running", 0, "iris:2", "iris:1"
    )  # fmt: skip
    assert _members(world) == [(1, "primary", 0.0), (2, "shadow", 0.0)]

    world.serve(T0, T0 + WINDOW // 2, 500)
    assert advance_rollouts(T0 + WINDOW // 2) == []  # the window is not over: hold
    held = get_rollout(rollout.id)
    assert held.step == 0
    assert held.last_check is not None
    assert held.last_check["candidate"]["count"] == 500
    assert held.last_check["breaches"] == []

    expected = [
        [(1, "primary", 0.0), (2, "canary", 5.0)],
        [(1, "primary", 0.0), (2, "canary", 25.0)],
        [(1, "primary", 0.0), (2, "canary", 50.0)],
    ]
    for n, members in enumerate(expected):
        end = _window(world, n, labels=True)
        (event,) = advance_rollouts(end)
        assert (event.kind, event.step) == ("step", n + 1)
        assert _members(world) == members
        assert get_rollout(rollout.id).step_started_ms == end
    end = _window(world, 3, labels=True)
    (event,) = advance_rollouts(end)
    assert event.kind == "promoted"
    assert "iris:2 is the primary and @champion" in event.message

    done = get_rollout(rollout.id)
    assert (done.state, done.finished_ms, done.target) == ("succeeded", end, None)
    assert _members(world) == [(2, "primary", 0.0)]
    assert resolve("iris", "@champion").version == 2
    assert advance_rollouts(end + WINDOW) == []  # nothing left to do

    history = deployment_history("fraud")
    assert [h.reason for h in history] == [
        "v1",
        f"rollout {rollout.id} step 1/5: shadow",
        f"rollout {rollout.id} step 2/5: canary 5%",
        f"rollout {rollout.id} step 3/5: canary 25%",
        f"rollout {rollout.id} step 4/5: canary 50%",
        f"rollout {rollout.id} step 5/5: 100%, iris:2 is the primary",
    ]
    events = rollout_events(rollout.id)
    assert [e.kind for e in events] == ["started", *["step"] * 4, "promoted"]
    assert [e.seq for e in events] == [1, 2, 4, 6, 8, 10]  # each step: a claim, a completion
    assert [e.deployment_revision for e in events[1:]] == [2, 3, 4, 5, 6]
    # the evidence of each advance is kept with it: the canary's own traffic, with labels
    evidence = events[3].detail["check"]
    assert evidence["candidate"]["count"] == 50  # 5% of 1000
    assert evidence["candidate"]["online_metric"] == 1.0
    assert evidence["divergence"] < 0.2
    actions = [e.action for e in reversed(list_audit_log(target="deployment:fraud"))]
    assert actions == [
        "deployment.create",
        "rollout.start",
        *["deployment.update", "rollout.step"] * 4,
        "deployment.update",
        "rollout.promote",
    ]
    assert [r.id for r in list_rollouts("fraud")] == [rollout.id]
    assert list_rollouts("fraud", state="running") == []

    page = write_rollout_html(rollout.id[:12], tmp_path / "report" / "rollout.html").read_text()
    assert "<h1>Rollout of iris:2 on fraud</h1>" in page
    assert page.count("<svg") == 4  # error rate, p99 latency, online metric, divergence
    assert "<script" not in page
    for label in ("shadow", "canary 5%", "canary 25%", "canary 50%"):
        assert label in page


@pytest.mark.parametrize(
    ("behaviour", "labels", "why"),
    [
        (Behaviour(error_every=3), False, "error rate 32.00% (16 of 50) against the primary's 0.00%"),
        (Behaviour(latency_ms=40.0), False, "p99 latency 40.0 ms against the primary's 2.0 ms"),
        (Behaviour(answer=lambda i: "setosa"), False, "answers diverge from the primary's"),
        (Behaviour(answer=lambda i: truth(i + 2)), True, "accuracy 0.00% against the primary's 100.00%"),
    ],
    ids=["errors", "latency", "divergence", "accuracy"],
)  # fmt: skip
def test_a_breach_in_the_canary_rolls_back_with_the_reason(
    sqlite_world: World, behaviour: Behaviour, labels: bool, why: str
) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    (event,) = advance_rollouts(_window(sqlite_world, 0, labels=labels))
    assert event.step == 1  # the shadow was fine
    sqlite_world.behave(2, behaviour)
    (event,) = advance_rollouts(_window(sqlite_world, 1, labels=labels))

    assert event.kind == "rolled_back"
    assert why in event.message
    done = get_rollout(rollout.id)
    assert done.state == "rolled_back"
    assert done.reason is not None
    assert done.reason.startswith("step 2/5 (canary 5%): ")
    assert why in done.reason
    assert _members(sqlite_world) == [(1, "primary", 0.0)]
    last = deployment_history("fraud")[-1]
    assert last.reason == f"rollout {rollout.id} rolled back: {done.reason}"
    assert resolve("iris", "latest").version == 4  # nothing else moved
    entry = list_audit_log(target="deployment:fraud", limit=1)[0]
    assert (entry.action, entry.after["state"]) == ("rollout.rollback", "rolled_back")


def test_a_breach_is_acted_on_before_the_window_ends(sqlite_world: World) -> None:
    sqlite_world.behave(2, Behaviour(error_every=3))
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    sqlite_world.serve(T0, T0 + MINUTE, 120)
    (event,) = advance_rollouts(T0 + MINUTE)
    assert event.kind == "rolled_back"
    assert get_rollout(rollout.id).reason == (
        "step 1/5 (shadow): error rate 33.33% (40 of 120) against the primary's 0.00%: more "
        "than 1 points higher"
    )


def test_too_little_traffic_holds_then_rolls_back_after_max_wait(sqlite_world: World) -> None:
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    sqlite_world.serve(T0, T0 + WINDOW, 10)
    assert advance_rollouts(T0 + WINDOW) == []
    held = get_rollout(rollout.id)
    assert held.last_check is not None
    assert held.last_check["shortfall"] == (
        "not enough traffic: 10 shadow and 10 primary requests, 40 needed of each"
    )
    assert advance_rollouts(T0 + 59 * MINUTE) == []
    (event,) = advance_rollouts(T0 + 60 * MINUTE)
    assert event.kind == "rolled_back"
    assert get_rollout(rollout.id).reason == (
        "step 1/5 (shadow): not enough traffic: 10 shadow and 10 primary requests, 40 needed "
        "of each within 1h"
    )
    assert _members(sqlite_world) == [(1, "primary", 0.0)]


def test_too_little_traffic_can_be_told_to_advance(sqlite_world: World) -> None:
    plan = RolloutPlan.parse(
        {"checks": {"min_requests": 40, "max_wait": "20m", "on_insufficient_traffic": "advance"}}
    )
    rollout = start_rollout("fraud", "iris:2", plan, now_ms=T0)
    sqlite_world.serve(T0, T0 + WINDOW, 10)
    assert advance_rollouts(T0 + WINDOW) == []
    (event,) = advance_rollouts(T0 + 2 * WINDOW)
    assert (event.kind, event.step) == ("step", 1)
    assert event.detail["check"]["advanced_without_evidence"] is True
    assert get_rollout(rollout.id).step == 1


def test_a_required_blessing_that_is_missing_fails_the_promotion(sqlite_world: World) -> None:
    set_trust_policy("iris", TrustPolicy(require_evaluation=True))
    plan = RolloutPlan.parse({"steps": ["shadow 10m", "100%"], "checks": {"min_requests": 40}})
    rollout = start_rollout("fraud", "iris:2", plan, now_ms=T0)
    (event,) = advance_rollouts(_window(sqlite_world, 0))

    assert event.kind == "failed"
    done = get_rollout(rollout.id)
    assert done.state == "failed"
    assert done.reason is not None
    assert done.reason.startswith("promotion to @champion refused: evaluation: ")
    assert _members(sqlite_world) == [(1, "primary", 0.0)]  # back to the primary only
    with pytest.raises(NotFound, match="champion"):
        resolve("iris", "@champion")


def test_a_plan_without_an_alias_moves_none(sqlite_world: World) -> None:
    plan = RolloutPlan.parse(
        {"steps": ["10% 10m", "100%"], "checks": {"min_requests": 40}, "promote_alias": None}
    )
    rollout = start_rollout("fraud", "iris:3", plan, now_ms=T0)
    assert _members(sqlite_world) == [(1, "primary", 0.0), (3, "canary", 10.0)]
    sqlite_world.serve(T0, T0 + WINDOW, 1000)
    (event,) = advance_rollouts(T0 + WINDOW)
    assert event.kind == "promoted"
    assert get_rollout(rollout.id).reason == "iris:3 is the primary"
    assert _members(sqlite_world) == [(3, "primary", 0.0)]


def test_other_shadows_and_guards_are_kept(sqlite_world: World) -> None:
    from mloop.serving._deployments import update_deployment

    update_deployment(
        "fraud",
        DeploymentSpec(
            members=(
                Member(model="iris", version=1),
                Member(model="iris", version=4, role="shadow"),
            ),
            guards={"output": "label"},  # type: ignore[arg-type]
        ),
    )
    plan = RolloutPlan.parse({"steps": ["25% 10m", "100%"], "checks": {"min_requests": 40}})
    start_rollout("fraud", "iris:2", plan, now_ms=T0)
    assert _members(sqlite_world) == [(1, "primary", 0.0), (4, "shadow", 0.0), (2, "canary", 25.0)]
    advance_rollouts(_window(sqlite_world, 0))
    assert _members(sqlite_world) == [(2, "primary", 0.0), (4, "shadow", 0.0)]
    assert get_deployment("fraud").spec.guards.output == "label"
