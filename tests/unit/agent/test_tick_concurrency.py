"""Several agents ticking at the same moments, as threads (SQLite and PostgreSQL) and as
processes (SQLite): each transition of a rollout happens exactly once — one deployment
revision, one event — and the rollout ends promoted. Without a lease at all, the
compare-and-set on the rollout and ``expected_revision`` on the deployment alone still
make every transition happen once."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any

from mloop.agent import RolloutPlan, get_rollout, rollout_events, start_rollout, tick
from mloop.agent._rollouts import advance_rollouts
from mloop.registry import resolve, verify_audit_log
from mloop.serving._deployments import deployment_history
from tests.unit.agent._rollout_world import (
    MINUTE,
    T0,
    World,
)

WINDOW = 10 * MINUTE
PLAN = RolloutPlan.parse({"checks": {"min_requests": 40}})
TIMES = [T0 + n * WINDOW for n in range(1, 5)]  # the end of each window: a transition due


def _steady_traffic(world: World) -> None:
    """Every window holds the primary, the candidate as shadow and as canary, so whichever
    step is in force has its evidence (the roles are told apart in the log)."""
    from mloop.serving._predlog import PredictionRecord

    for n in range(4):
        for i in range(200):
            at = T0 + n * WINDOW + i * 2000
            for version, role in ((1, "primary"), (2, "shadow"), (2, "canary")):
                world.log.append(
                    PredictionRecord(
                        request_id=f"w{n}-{i}", time_ms=at, deployment="fraud", model="iris",
                        version=version, role=role, inputs={"input-0": [[1.0, float(i % 5)]]},
                        outputs={"predictions": [("a", "b", "c")[i % 3]]}, latency_ms=2.0,
                    )
                )  # fmt: skip


def _race(agents: int, act: Callable[[int, int], None]) -> None:
    """Run ``act(agent, now)`` for every time in TIMES, all agents at once at each time."""
    barrier = threading.Barrier(agents)
    failures: list[BaseException] = []

    def agent(n: int) -> None:
        try:
            for now in TIMES:
                barrier.wait(timeout=60)
                act(n, now)
        except BaseException as exc:  # reported below
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []


def _assert_each_transition_once(rollout_id: str) -> None:
    history = deployment_history("fraud")
    reasons = [h.reason for h in history]
    assert reasons == [
        "v1",
        f"rollout {rollout_id} step 1/5: shadow",
        f"rollout {rollout_id} step 2/5: canary 5%",
        f"rollout {rollout_id} step 3/5: canary 25%",
        f"rollout {rollout_id} step 4/5: canary 50%",
        f"rollout {rollout_id} step 5/5: 100%, iris:2 is the primary",
    ]
    events = rollout_events(rollout_id)
    assert [e.kind for e in events] == ["started", *["step"] * 4, "promoted"]
    assert get_rollout(rollout_id).state == "succeeded"
    assert resolve("iris", "@champion").version == 2
    assert verify_audit_log().ok


def test_agents_ticking_together_make_each_transition_once(world: World) -> None:
    _steady_traffic(world)
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    leaders: dict[int, list[str]] = {now: [] for now in TIMES}

    def act(n: int, now: int) -> None:
        report = tick(now_ms=now, holder=f"agent-{n}", triggers=False)
        if report.leader:
            leaders[now].append(report.holder)

    _race(5, act)
    assert [len(v) for v in leaders.values()] == [1, 1, 1, 1]
    _assert_each_transition_once(rollout.id)
    actors = {e.actor for e in rollout_events(rollout.id)[2:]}  # after the start's first step
    assert actors <= {f"agent-{n}" for n in range(5)}


def test_without_a_lease_the_compare_and_set_still_moves_once(world: World) -> None:
    _steady_traffic(world)
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    made: list[int] = []

    def act(n: int, now: int) -> None:
        made.extend(e.seq for e in advance_rollouts(now, actor=f"agent-{n}"))

    _race(5, act)
    _assert_each_transition_once(rollout.id)
    assert sorted(made) == [e.seq for e in rollout_events(rollout.id)[2:]]


def _process_agent(db_uri: str, home: str, n: int, barrier: Any) -> None:
    os.environ["MLOOP_DB_URI"] = db_uri
    os.environ["MLOOP_HOME"] = home
    os.environ["MLOOP_USER"] = f"agent-{n}"
    for now in TIMES:  # the agents' clocks agree: they reach each moment together
        barrier.wait(timeout=60)
        for _ in range(3):  # and tick a few times in it
            report = tick(now_ms=now, holder=f"process-{n}", triggers=False)
            assert report.errors == [], report.errors


def test_agent_processes_make_each_transition_once(sqlite_db: str) -> None:
    """Separate processes share nothing but the database file (and the log folder)."""
    from tests.unit.agent._rollout_world import make_world

    worlds = make_world()
    world = next(worlds)
    _steady_traffic(world)
    world.log.close()
    rollout = start_rollout("fraud", "iris:2", PLAN, now_ms=T0)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    home = os.environ["MLOOP_HOME"]
    processes = [
        context.Process(target=_process_agent, args=(sqlite_db, home, n, barrier)) for n in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    _assert_each_transition_once(rollout.id)
    assert {e.actor for e in rollout_events(rollout.id)[2:]} <= {f"process-{n}" for n in range(2)}
