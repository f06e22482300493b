"""A rollout that did not end ``succeeded`` never leaves the plan's alias on the candidate.

The promotion has three writes: the deployment at 100% (its own revision), the alias, and
the rollout's completion. Each test interrupts it between the deployment change and the
completion — a user's abort that wins the race, an agent that dies, a leader deposed
meanwhile — and checks that ``@champion`` moved if and only if the rollout says
``succeeded`` (the alias moves in the transaction that records the success).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mloop.agent import (
    RolloutPlan,
    abort_rollout,
    advance_rollouts,
    get_rollout,
    rollout_events,
    start_rollout,
)
from mloop.agent import _rollout_store as rs
from mloop.agent._lease import NotLeader, acquire_lease
from mloop.registry import TrustPolicy, list_audit_log, resolve, set_alias, set_trust_policy
from mloop.serving._deployments import get_deployment
from tests.unit.agent._rollout_world import (
    MINUTE,
    T0,
    World,
)

WINDOW = 10 * MINUTE
PLAN = RolloutPlan.parse(
    {"steps": ["shadow 10m", "canary 25% 10m", "100%"], "checks": {"min_requests": 40}}
)


def _to_the_last_canary(world: World) -> str:
    """@champion on iris:1, a rollout of iris:2 whose canary window is over and passed:
    the next tick promotes. The rollout's id."""
    set_alias("iris", "champion", 1)
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    world.serve(T0, T0 + WINDOW, 1000)
    (event,) = advance_rollouts(T0 + WINDOW)
    assert (event.kind, event.step) == ("step", 1)
    world.serve(T0 + WINDOW, T0 + 2 * WINDOW, 1000)
    return rollout.id


def _before_completing_the_promotion(
    monkeypatch: pytest.MonkeyPatch, interrupt: Callable[[], None]
) -> list[str]:
    """Run ``interrupt`` once, just before the promotion is recorded (after the deployment
    went to 100%); the kinds of every completion attempted."""
    real = rs.complete
    seen: list[str] = []

    def complete(*args: Any, **kwargs: Any) -> rs.RolloutEvent:
        seen.append(kwargs["kind"])
        if kwargs["kind"] == "promoted" and seen.count("promoted") == 1:
            interrupt()
        return real(*args, **kwargs)

    monkeypatch.setattr(rs, "complete", complete)
    return seen


def _primary(world: World) -> int:
    return get_deployment(world.deployment).spec.primary.version


def test_an_abort_that_wins_the_race_with_a_promotion_leaves_the_alias(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout_id = _to_the_last_canary(world)
    aborted: list[str] = []

    def abort() -> None:  # a user's abort lands while the agent is promoting
        aborted.append(abort_rollout(rollout_id, "stop", now_ms=T0 + 2 * WINDOW).state)

    seen = _before_completing_the_promotion(monkeypatch, abort)
    assert advance_rollouts(T0 + 2 * WINDOW) == []  # the agent lost the race
    assert aborted == ["aborted"]
    assert seen == ["promoted", "aborted"]

    done = get_rollout(rollout_id)
    assert done.state == "aborted"
    assert resolve("iris", "@champion").version == 1
    assert _primary(world) == 1  # the abort put the deployment back too
    assert [e.kind for e in rollout_events(rollout_id)] == ["started", "step", "step", "aborted"]
    assert [e.action for e in list_audit_log(target="model:iris@champion")] == ["alias.set"]


def test_a_promotion_that_died_unrecorded_then_aborted_leaves_the_alias(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = sqlite_world
    rollout_id = _to_the_last_canary(world)

    def die() -> None:
        raise RuntimeError("the agent's machine went away")

    _before_completing_the_promotion(monkeypatch, die)
    errors: list[str] = []
    assert advance_rollouts(T0 + 2 * WINDOW, errors=errors) == []
    assert errors == [f"rollout {rollout_id} on fraud: RuntimeError: the agent's machine went away"]
    half_done = get_rollout(rollout_id)
    assert (half_done.state, (half_done.target or {}).get("kind")) == ("running", "promote")
    assert _primary(world) == 2  # the deployment went to 100% …
    assert resolve("iris", "@champion").version == 1  # … the alias did not move unrecorded

    done = abort_rollout(rollout_id, "changed my mind", now_ms=T0 + 2 * WINDOW + 1)
    assert done.state == "aborted"
    assert resolve("iris", "@champion").version == 1
    assert _primary(world) == 1


def test_a_promotion_that_died_unrecorded_is_finished_by_the_next_tick(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = sqlite_world
    rollout_id = _to_the_last_canary(world)

    def die() -> None:
        raise RuntimeError("killed")

    _before_completing_the_promotion(monkeypatch, die)
    assert advance_rollouts(T0 + 2 * WINDOW, errors=[]) == []
    assert resolve("iris", "@champion").version == 1
    (event,) = advance_rollouts(T0 + 2 * WINDOW + 1)
    assert event.kind == "promoted"
    assert get_rollout(rollout_id).state == "succeeded"
    assert resolve("iris", "@champion").version == 2
    assert _primary(world) == 2
    actions = [e.action for e in reversed(list_audit_log())]
    assert actions.count("alias.set") == 2  # iris:1 by hand, iris:2 with the promotion
    assert actions.index("alias.set", actions.index("alias.set") + 1) < actions.index(
        "rollout.promote"
    )


def test_a_leader_deposed_during_the_promotion_moves_no_alias(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = sqlite_world
    rollout_id = _to_the_last_canary(world)
    now = T0 + 2 * WINDOW
    lease = acquire_lease("agent", "a", 30, now)
    assert lease is not None

    def deposed() -> None:  # "a" stalls past its lease; "b" takes over
        assert acquire_lease("agent", "b", 30, now + 31_000) is not None

    _before_completing_the_promotion(monkeypatch, deposed)
    with pytest.raises(NotLeader):
        advance_rollouts(now, fence=lease)
    assert get_rollout(rollout_id).state == "running"
    assert resolve("iris", "@champion").version == 1

    lease_b = acquire_lease("agent", "b", 30, now + 32_000)
    (event,) = advance_rollouts(now + 32_000, fence=lease_b)
    assert event.kind == "promoted"
    assert get_rollout(rollout_id).state == "succeeded"
    assert resolve("iris", "@champion").version == 2


def test_a_policy_tightened_during_the_promotion_fails_it_without_moving_the_alias(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found acceptable before the deployment changed, refused when the alias moves: the
    completion is undone with the move, and the rollout fails and restores the deployment."""
    world = sqlite_world
    rollout_id = _to_the_last_canary(world)

    def tighten() -> None:
        set_trust_policy("iris", TrustPolicy(require_evaluation=True))

    seen = _before_completing_the_promotion(monkeypatch, tighten)
    (event,) = advance_rollouts(T0 + 2 * WINDOW)
    assert event.kind == "failed"
    assert seen == ["promoted", "promoted", "failed"]  # checked again under the new policy
    done = get_rollout(rollout_id)
    assert done.state == "failed"
    assert done.reason is not None
    assert done.reason.startswith("promotion to @champion refused: cannot point iris@champion")
    assert "evaluation" in done.reason
    assert resolve("iris", "@champion").version == 1
    assert _primary(world) == 1
    assert "rollout.promote" not in [e.action for e in list_audit_log()]
