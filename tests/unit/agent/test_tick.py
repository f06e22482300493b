"""The agent's tick and loop: only the leader acts, it advances rollouts and fires the due
retraining triggers (real pipelines, in-process), the loop hands its lease back when it
stops, and `mloop agent run` stops gently on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mloop.agent import RolloutPlan, get_lease, run_agent, save_trigger, start_rollout, tick
from mloop.agent._tick import TickReport
from mloop.pipelines import pipeline, step
from tests.unit.agent._rollout_world import (
    MINUTE,
    T0,
    World,
)
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

HERE = "tests.unit.agent.test_tick"


@step(cache=False)
def leave_note(folder: str) -> str:
    """Proof that the pipeline ran: one file per run."""
    path = Path(folder) / f"{uuid.uuid4().hex}.note"
    path.write_text("ran")
    return path.name


@pipeline(name="tick-note")
def note_pipeline(folder: str) -> str:
    return leave_note(folder)  # type: ignore[return-value]


def test_only_the_leader_advances_rollouts_and_fires_triggers(
    sqlite_world: World, tmp_path: Path
) -> None:
    plan = RolloutPlan.parse({"checks": {"min_requests": 40}})
    rollout = start_rollout("fraud", "iris:2", plan, now_ms=T0)
    sqlite_world.serve(T0, T0 + 10 * MINUTE, 1000)
    notes = tmp_path / "notes"
    notes.mkdir()
    save_trigger(
        {
            "name": "hourly",
            "pipeline": f"{HERE}:note_pipeline",
            "params": {"folder": str(notes)},
            "on": {"schedule": "@hourly"},
        },
        now_ms=T0,
    )
    first = tick(now_ms=T0 + 10 * MINUTE, holder="a", ttl_s=3600)
    assert (first.leader, first.leader_holder, first.errors) == (True, "a", [])
    assert first.lease is not None
    assert first.lease.token == 1
    assert [(e.rollout_id, e.kind, e.step) for e in first.events] == [(rollout.id, "step", 1)]
    assert first.firings == []  # no hour passed yet

    standby = tick(now_ms=T0 + 61 * MINUTE, holder="b")  # a's term runs until T0 + 70 min
    assert (standby.leader, standby.leader_holder, standby.events, standby.firings) == (
        False, "a", [], []
    )  # fmt: skip
    assert list(notes.iterdir()) == []

    again = tick(now_ms=T0 + 61 * MINUTE, holder="a")
    (firing,) = again.firings
    assert (firing.trigger, firing.status) == ("hourly", "succeeded")
    assert len(list(notes.iterdir())) == 1
    assert again.to_dict()["firings"][0]["trigger"] == "hourly"


def test_the_loop_ticks_then_hands_the_lease_back(sqlite_db: str) -> None:
    reports: list[TickReport] = []
    clock = iter(range(T0, T0 + MINUTE, 10_000))  # ticks 10 s apart, inside a 30 s term
    ticks = run_agent(
        interval_s=0, max_ticks=3, holder="loop", on_tick=reports.append, clock=lambda: next(clock)
    )
    assert ticks == 3
    assert [r.now_ms for r in reports] == [T0, T0 + 10_000, T0 + 20_000]
    assert all(r.leader for r in reports)
    assert {r.lease.token for r in reports if r.lease} == {1}  # renewed, one term
    lease = get_lease()
    assert lease is not None
    assert (lease.holder, lease.expires_ms) == ("loop", 0)  # released

    stop = threading.Event()
    stop.set()
    assert run_agent(interval_s=0, holder="loop", stop=stop) == 0


def test_agent_tick_and_status_commands(
    sqlite_db: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "agent", "status")
    assert out.strip() == "No agent has run against this store yet."
    report = run_json(capsys, "agent", "tick", "--holder", "cron-1")
    assert (report["leader"], report["holder"], report["token"]) == (True, "cron-1", 1)
    lease = run_json(capsys, "agent", "status")
    assert (lease["holder"], lease["expires_ms"]) == ("cron-1", 0)  # a one-shot tick hands back
    code, out, _ = run_cli(capsys, "agent", "tick", "--holder", "cron-2")
    assert "leading (term 2)" in out
    assert "nothing was due" in out
    code, out, _ = run_cli(capsys, "agent", "run", "--interval", "0", "--max-ticks", "2")
    assert code == 0
    assert "Stopped after 2 ticks; lease released." in out
    code, out, _ = run_cli(capsys, "agent", "run", "--interval", "0", "--max-ticks", "2", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(t["leader"], t["token"]) for t in lines] == [(True, 4), (True, 4)]
    code, _, err = run_cli(capsys, "agent", "run", "--interval", "soon")
    assert code == 2
    assert "--interval: interval 'soon' is not a duration" in one_error_line(err)


def test_ctrl_c_finishes_the_tick_and_releases_the_lease(sqlite_db: str) -> None:
    mloop_bin = Path(sys.executable).parent / "mloop"
    agent = subprocess.Popen(
        [str(mloop_bin), "agent", "run", "--interval", "0.1s", "--holder", "ctrl-c"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (lease := get_lease()) is None or lease.holder != "ctrl-c":
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            assert time.monotonic() < deadline, "the agent never took the lease"
            time.sleep(0.05)
    finally:
        agent.send_signal(signal.SIGINT)
        out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert "leading (term 1)" in out
    assert "Stopped after" in out
    assert "Traceback" not in err
    lease = get_lease()
    assert lease is not None
    assert (lease.holder, lease.expires_ms) == ("ctrl-c", 0)
