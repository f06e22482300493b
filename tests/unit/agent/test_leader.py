"""Leader election through the metadata store, on SQLite and PostgreSQL: one holder per
term however many agents race, renewal keeps the fencing token, expiry and release hand
over with a new one, and a deposed leader's writes are refused."""

from __future__ import annotations

import threading

import pytest

from mloop.agent import (
    NotLeader,
    RolloutPlan,
    acquire_lease,
    advance_rollouts,
    get_lease,
    get_rollout,
    start_rollout,
)
from mloop.agent._tick import release_lease
from mloop.errors import InvalidInput
from tests.unit.agent._rollout_world import T0, World

SECOND = 1000


def test_renewing_keeps_the_token_and_expiry_starts_a_new_term(db: str) -> None:
    first = acquire_lease("agent", "a", 30, T0)
    assert first is not None
    assert (first.holder, first.token, first.acquired_ms, first.expires_ms) == (
        "a", 1, T0, T0 + 30 * SECOND
    )  # fmt: skip
    renewed = acquire_lease("agent", "a", 30, T0 + 10 * SECOND)
    assert renewed is not None
    assert (renewed.token, renewed.acquired_ms, renewed.expires_ms) == (1, T0, T0 + 40 * SECOND)
    assert acquire_lease("agent", "b", 30, T0 + 39 * SECOND) is None  # a's term runs
    taken = acquire_lease("agent", "b", 30, T0 + 40 * SECOND)
    assert taken is not None
    assert (taken.holder, taken.token) == ("b", 2)
    assert acquire_lease("agent", "a", 30, T0 + 41 * SECOND) is None
    assert get_lease("agent") == taken
    # a lease that lapsed is a new term even for its old holder: its old token is void
    again = acquire_lease("agent", "b", 30, T0 + 90 * SECOND)
    assert again is not None
    assert again.token == 3
    # groups of agents are independent
    other = acquire_lease("staging", "a", 30, T0 + 90 * SECOND)
    assert other is not None
    assert other.token == 1


def test_releasing_hands_over_at_once(db: str) -> None:
    assert acquire_lease("agent", "a", 30, T0) is not None
    assert release_lease("b") is False  # not b's to release
    assert release_lease("a") is True
    taken = acquire_lease("agent", "b", 30, T0 + SECOND)
    assert taken is not None
    assert (taken.holder, taken.token) == ("b", 2)


def test_racing_agents_elect_exactly_one_per_term(db: str) -> None:
    agents, rounds = 6, 3
    won: list[list[tuple[str, int]]] = [[] for _ in range(rounds)]
    barrier = threading.Barrier(agents)
    failures: list[BaseException] = []

    def agent(n: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=30)
                lease = acquire_lease("agent", f"agent-{n}", 30, T0 + r * 60 * SECOND)
                if lease is not None:
                    won[r].append((lease.holder, lease.token))
        except BaseException as exc:  # reported below, with the thread's error
            failures.append(exc)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert [len(w) for w in won] == [1] * rounds  # every term has exactly one leader
    assert [w[0][1] for w in won] == [1, 2, 3]  # each term a new fencing token


def test_a_deposed_leader_changes_nothing(world: World) -> None:
    plan = RolloutPlan.parse({"checks": {"min_requests": 40}})
    rollout = start_rollout("fraud", "iris:2", plan, now_ms=T0)
    world.serve(T0, T0 + 600 * SECOND, 1000)
    old = acquire_lease("agent", "a", 30, T0)
    assert old is not None
    # a stalls past its lease; b takes over
    new = acquire_lease("agent", "b", 30, T0 + 600 * SECOND)
    assert new is not None
    with pytest.raises(NotLeader, match="has passed to b"):
        advance_rollouts(T0 + 600 * SECOND, fence=old)
    assert get_rollout(rollout.id).step == 0  # nothing moved
    assert get_rollout(rollout.id).version == 2
    (event,) = advance_rollouts(T0 + 600 * SECOND, fence=new, actor="b")
    assert (event.step, event.actor) == (1, "b")


def test_bad_lease_arguments_are_refused(sqlite_db: str) -> None:
    with pytest.raises(InvalidInput, match="time-to-live"):
        acquire_lease("agent", "a", 0, T0)
    with pytest.raises(InvalidInput, match="holder"):
        acquire_lease("agent", "", 30, T0)
    with pytest.raises(InvalidInput, match="lease name"):
        acquire_lease("x" * 200, "a", 30, T0)
    assert get_lease("agent") is None
