"""run_due end to end with real pipelines (mloop.pipelines, in-process): each trigger kind
fires once per event on an injected clock, several agents racing fire once (SQLite and
PostgreSQL), and the outcome — succeeded, stopped with the reason, failed with the error —
lands in the history and the audit log."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pandas as pd
import pytest

import mloop.data
from mloop.agent._triggers import (
    fire_trigger,
    list_firings,
    run_due,
    save_trigger,
    set_trigger_enabled,
)
from mloop.pipelines import StopPipeline, pipeline, step
from mloop.registry import list_audit_log

T0 = 1_800_000_000_000  # 2027-01-15T08:00Z
MINUTE = 60_000
HERE = "tests.unit.agent.test_trigger_run"


@step(cache=False)
def leave_mark(folder: str, data: str, outcome: str) -> str:
    """Proof that the pipeline ran: one file per run, named freshly."""
    path = Path(folder) / f"{uuid.uuid4().hex}.run"
    path.write_text(data)
    if outcome == "refuse":
        raise StopPipeline("the gate refused models:/churn/2: f1 0.71 < baseline 0.74 + 0.01")
    if outcome == "crash":
        raise ValueError("the trainer ran out of rows")
    return path.name


@pipeline(name="marking")
def marking_pipeline(folder: str, data: str = "none", outcome: str = "ok") -> str:
    return leave_mark(folder, data, outcome)  # type: ignore[return-value]


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def _runs(folder: Path) -> list[str]:
    return sorted(p.read_text() for p in folder.glob("*.run"))


def _save(name: str, on: dict[str, object], folder: Path, **params: str) -> None:
    save_trigger(
        {
            "name": name,
            "pipeline": f"{HERE}:marking_pipeline",
            "params": {"folder": str(folder), **params},
            "on": on,
        },
        now_ms=T0,
    )


def test_a_schedule_fires_once_per_cron_time(db: str, marks: Path) -> None:
    _save("every-15", {"schedule": "*/15 * * * *"}, marks)
    assert run_due(now_ms=T0 + 14 * MINUTE) == []
    (first,) = run_due(now_ms=T0 + 15 * MINUTE)
    assert (first.status, first.event_key) == ("succeeded", "schedule:2027-01-15T08:15Z")
    assert first.execution_id is not None
    assert run_due(now_ms=T0 + 16 * MINUTE) == []  # the same cron time again: nothing
    assert run_due(now_ms=T0 + 29 * MINUTE) == []
    (second,) = run_due(now_ms=T0 + 95 * MINUTE)  # missed 08:30..09:30: the newest once
    assert second.event_key == "schedule:2027-01-15T09:30Z"
    assert len(_runs(marks)) == 2
    assert [f.event_key for f in list_firings("every-15")] == [second.event_key, first.event_key]


def test_a_new_dataset_version_fires_once_with_its_ref(db: str, marks: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    mloop.data.register("churn", frame)
    _save("on-data", {"dataset": "churn"}, marks)
    assert run_due(now_ms=T0 + MINUTE) == []
    mloop.data.register("churn", frame.assign(x=[4, 5, 6]))
    (firing,) = run_due(now_ms=T0 + 2 * MINUTE)
    assert (firing.status, firing.params["data"]) == ("succeeded", "churn@2")
    assert run_due(now_ms=T0 + 3 * MINUTE) == []
    assert _runs(marks) == ["churn@2"]


def test_disabled_triggers_wait_and_manual_firings_always_run(db: str, marks: Path) -> None:
    save_trigger(
        {
            "name": "off",
            "pipeline": f"{HERE}:marking_pipeline",
            "params": {"folder": str(marks)},
            "on": {"schedule": "@hourly"},
            "enabled": False,
        },
        now_ms=T0,
    )
    assert run_due(now_ms=T0 + 61 * MINUTE) == []
    set_trigger_enabled("off", True)
    (due,) = run_due(now_ms=T0 + 62 * MINUTE)  # 09:00 is still the newest cron time
    assert due.event_key == "schedule:2027-01-15T09:00Z"
    set_trigger_enabled("off", False)
    first, second = fire_trigger("off"), fire_trigger("off")
    assert (first.kind, first.status, first.fired_by) == ("manual", "succeeded", "ada")
    assert first.event_key != second.event_key
    assert len(_runs(marks)) == 3


def test_a_refused_gate_is_stopped_with_its_reason(db: str, marks: Path) -> None:
    _save("gated", {"schedule": "@hourly"}, marks, outcome="refuse")
    (firing,) = run_due(now_ms=T0 + 60 * MINUTE)
    assert firing.status == "stopped"
    assert firing.reason is not None
    assert "the gate refused models:/churn/2: f1 0.71 < baseline 0.74 + 0.01" in firing.reason
    entry = list_audit_log(target="trigger:gated", limit=1)[0]
    assert entry.action == "trigger.stopped"
    assert entry.after["reason"] == firing.reason
    assert list_firings("gated", status="stopped") == [firing]


def test_failures_are_recorded_and_do_not_stop_other_triggers(db: str, marks: Path) -> None:
    _save("a-crashes", {"schedule": "@hourly"}, marks, outcome="crash")
    save_trigger(
        {"name": "b-missing", "pipeline": "no.such.module:pipe", "on": {"schedule": "@hourly"}},
        now_ms=T0,
    )
    _save("c-works", {"schedule": "@hourly"}, marks)
    crashed, missing, works = run_due(now_ms=T0 + 60 * MINUTE)
    assert crashed.status == "failed"
    assert crashed.reason is not None
    assert "the trainer ran out of rows" in crashed.reason
    assert missing.status == "failed"
    assert missing.reason is not None
    assert "no.such.module" in missing.reason
    assert works.status == "succeeded"
    assert [e.action for e in list_audit_log(target="trigger:a-crashes", limit=2)] == [
        "trigger.failed",
        "trigger.fire",
    ]


def test_agents_racing_on_the_same_events_fire_each_once(db: str, marks: Path) -> None:
    _save("every-15", {"schedule": "*/15 * * * *"}, marks, data="schedule")
    frame = pd.DataFrame({"x": [1, 2, 3]})
    mloop.data.register("churn", frame)
    _save("on-data", {"dataset": "churn"}, marks)
    mloop.data.register("churn", frame.assign(x=[7, 8, 9]))
    agents = 4
    start = threading.Barrier(agents)
    fired: list[str] = []
    errors: list[BaseException] = []

    def agent() -> None:
        try:
            start.wait()
            fired.extend(f.event_key for f in run_due(now_ms=T0 + 15 * MINUTE))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent) for _ in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(fired) == ["dataset:churn@2", "schedule:2027-01-15T08:15Z"]
    assert _runs(marks) == ["churn@2", "schedule"]
    assert all(f.status == "succeeded" for f in list_firings())


def test_ticking_agents_fire_through_the_leader_once(db: str, marks: Path) -> None:
    from mloop.agent import tick

    _save("every-15", {"schedule": "*/15 * * * *"}, marks)
    now = T0 + 15 * MINUTE
    first = tick(now_ms=now, holder="agent-a", ttl_s=30)
    second = tick(now_ms=now + 1, holder="agent-b", ttl_s=30)
    assert (first.leader, second.leader, second.leader_holder) == (True, False, "agent-a")
    assert [f.event_key for f in first.firings] == ["schedule:2027-01-15T08:15Z"]
    taken_over = tick(now_ms=now + 31_000, holder="agent-b", ttl_s=30)  # a's lease lapsed
    assert taken_over.leader
    assert taken_over.firings == []  # the event was fired already
    assert len(_runs(marks)) == 1


def test_a_stored_trigger_that_no_longer_reads_is_left_out(db: str, marks: Path) -> None:
    from sqlalchemy import update

    from mloop.agent._trigger_store import TRIGGERS, list_stored_triggers
    from mloop.errors import InvalidInput
    from mloop.store import open_store

    _save("broken", {"schedule": "@hourly"}, marks)
    _save("works", {"schedule": "@hourly"}, marks)
    opened = open_store(db)
    try:
        with opened.engine.begin() as conn:  # as an older or newer mloop might have left it
            conn.execute(
                update(TRIGGERS)
                .where(TRIGGERS.c.name == "broken")
                .values(spec={"name": "broken", "pipeline": "p:f", "on": {"sometime": 1}})
            )
    finally:
        opened.close()
    with pytest.raises(InvalidInput, match="stored trigger 'broken'"):
        list_stored_triggers()
    (firing,) = run_due(now_ms=T0 + 60 * MINUTE)
    assert firing.trigger == "works"
