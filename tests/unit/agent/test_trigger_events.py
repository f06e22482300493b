"""Which events a trigger sees: dataset versions registered for real, cron times on an
injected clock; nothing from before the trigger was saved."""

from __future__ import annotations

import pandas as pd
import pytest

import mloop.data
from mloop.agent._trigger_events import arming, due_events, manual_event
from mloop.agent._trigger_spec import Trigger

T0 = 1_800_000_000_000  # 2027-01-15T08:00Z
HOUR = 3_600_000


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_CAPTURE", "false")


def _trigger(on: dict[str, object]) -> Trigger:
    return Trigger.parse({"name": "t", "pipeline": "pkg.mod:fn", "on": on})


def _register(name: str, rows: int) -> str:
    frame = pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]})
    return mloop.data.register(name, frame).ref


def test_a_new_dataset_version_is_one_event_with_its_ref_as_a_parameter() -> None:
    _register("churn", 10)
    trigger = _trigger({"dataset": {"name": "churn", "param": "training_data"}})
    armed = arming(trigger, now_ms=T0)
    assert armed == {"since_ms": T0, "version": 1}
    assert due_events(trigger, armed, now_ms=T0 + HOUR) == []  # v1 existed when saved
    _register("churn", 11)
    _register("churn", 12)
    (event,) = due_events(trigger, armed, now_ms=T0 + HOUR)  # v2 and v3 coalesce
    assert event.key == "dataset:churn@3"
    assert event.params == {"training_data": "churn@3"}
    assert event.detail == {"dataset": "churn@3", "previous": 1}


def test_a_dataset_that_does_not_exist_yet_fires_at_its_first_version() -> None:
    trigger = _trigger({"dataset": "later"})
    armed = arming(trigger, now_ms=T0)
    assert armed["version"] == 0
    assert due_events(trigger, armed, now_ms=T0) == []
    _register("later", 5)
    assert [e.key for e in due_events(trigger, armed, now_ms=T0)] == ["dataset:later@1"]


def test_schedule_events_on_the_injected_clock() -> None:
    trigger = _trigger({"schedule": "0 9 * * *"})
    armed = arming(trigger, now_ms=T0)
    assert due_events(trigger, armed, now_ms=T0 + HOUR - 1) == []
    (event,) = due_events(trigger, armed, now_ms=T0 + HOUR)
    assert event.key == "schedule:2027-01-15T09:00Z"
    assert event.detail == {"cron": "0 9 * * *", "scheduled_ms": T0 + HOUR}
    (later,) = due_events(trigger, armed, now_ms=T0 + 50 * HOUR)
    assert later.key == "schedule:2027-01-17T09:00Z"  # missed days coalesce to the newest


def test_a_manual_event_is_always_new_and_carries_the_newest_version() -> None:
    _register("churn", 10)
    trigger = _trigger({"dataset": "churn"})
    first = manual_event(trigger, who="ada")
    second = manual_event(trigger, who="ada")
    assert first.key != second.key
    assert first.key.startswith("manual:")
    assert first.params == {"data": "churn@1"}
    assert first.detail == {"by": "ada", "dataset": "churn@1"}
    assert manual_event(_trigger({"schedule": "@daily"}), who="bo").params == {}
