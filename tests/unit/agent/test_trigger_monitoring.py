"""Alert and performance triggers over real monitoring: prediction logs written through the
serving PredictionLog, alerts fired by run_monitor, window metrics from feedback labels;
each fires its pipeline once per event on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.agent._trigger_events import primary_value
from mloop.agent._trigger_spec import PerformanceCondition
from mloop.agent._triggers import list_firings, run_due, save_trigger
from mloop.monitoring import WindowMetrics, run_monitor, save_alert_rule
from tests.fixtures.monitoring import HOUR, T0, Traffic, serve_window
from tests.unit.agent.test_trigger_run import HERE

MINUTE = 60_000


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def _save(name: str, on: dict[str, object], folder: Path, *, now_ms: int) -> None:
    save_trigger(
        {"name": name, "pipeline": f"{HERE}:marking_pipeline", "params": {"folder": str(folder)},
         "on": on},
        now_ms=now_ms,
    )  # fmt: skip


def test_an_alert_fires_its_trigger_once(traffic: Traffic, marks: Path) -> None:
    save_alert_rule(
        {"name": "errors", "deployment": "iris", "metric": "error_rate", "op": ">",
         "threshold": 0.2}
    )  # fmt: skip
    _save("on-errors", {"alert": "errors"}, marks, now_ms=T0)
    serve_window(traffic, T0, 60, seed=1)
    serve_window(traffic, T0 + HOUR, 60, seed=2, error_every=2)  # half the answers fail
    assert run_monitor("iris", now_ms=T0 + HOUR).fired == []
    assert run_due(now_ms=T0 + HOUR) == []
    (alert,) = run_monitor("iris", now_ms=T0 + 2 * HOUR).fired
    (firing,) = run_due(now_ms=T0 + 2 * HOUR + MINUTE)
    assert (firing.status, firing.event_key) == ("succeeded", f"alert:{alert.id}")
    assert firing.event["rule"] == "errors"
    assert firing.event["value"] == pytest.approx(0.5)
    serve_window(traffic, T0 + 2 * HOUR, 60, seed=3, error_every=2)
    assert run_monitor("iris", now_ms=T0 + 3 * HOUR).fired == []  # still the same alert
    assert run_due(now_ms=T0 + 3 * HOUR) == []
    assert len(list(marks.glob("*.run"))) == 1


def test_alerts_fired_before_the_trigger_existed_do_not_fire_it(
    traffic: Traffic,
    marks: Path,
) -> None:
    save_alert_rule(
        {"name": "errors", "deployment": "iris", "metric": "error_rate", "op": ">",
         "threshold": 0.2}
    )  # fmt: skip
    serve_window(traffic, T0, 60, seed=1, error_every=2)
    assert len(run_monitor("iris", now_ms=T0 + HOUR).fired) == 1
    _save("late", {"alert": "errors"}, marks, now_ms=T0 + HOUR + MINUTE)
    assert run_due(now_ms=T0 + 2 * HOUR) == []


def _answers(traffic: Traffic, start_ms: int, right: int, wrong: int) -> None:
    """Answers over the hour from ``start_ms`` with labels: ``right`` of them correct."""
    labels = []
    for n in range(right + wrong):
        predicted = n % 2
        rid = traffic.answer(start_ms + n * MINUTE, [0.1, 0.2, 0.3, 0.4], predicted)
        labels.append({"request_id": rid, "label": predicted if n < right else 1 - predicted})
    traffic.feedback(labels)


def test_a_performance_decline_fires_once_per_window(traffic: Traffic, marks: Path) -> None:
    condition = {"deployment": "iris", "metric": "online_metric", "below": 0.8, "window": "1h"}
    _save("accuracy", {"performance": condition}, marks, now_ms=T0)
    _answers(traffic, T0, right=9, wrong=1)
    assert run_due(now_ms=T0 + HOUR) == []  # accuracy 0.9
    _answers(traffic, T0 + HOUR, right=6, wrong=4)
    now = T0 + 2 * HOUR
    (firing,) = run_due(now_ms=now)
    assert firing.event["value"] == pytest.approx(0.6)
    assert (firing.event["window_start_ms"], firing.event["window_end_ms"]) == (T0 + HOUR, now)
    assert firing.event_key == f"performance:{now // HOUR}"
    assert run_due(now_ms=now + 10 * MINUTE) == []  # the same window: once
    assert run_due(now_ms=now + 2 * HOUR) == []  # no answers since: nothing to judge
    assert [f.status for f in list_firings("accuracy")] == ["succeeded"]
    assert len(list(marks.glob("*.run"))) == 1


def test_latency_fires_above_its_threshold(traffic: Traffic, marks: Path) -> None:
    condition = {"deployment": "iris", "metric": "latency_p99_ms", "above": 50, "window": "30m"}
    _save("slow", {"performance": condition}, marks, now_ms=T0)
    serve_window(traffic, T0, 30, seed=1, latency_ms=20.0)
    assert run_due(now_ms=T0 + 30 * MINUTE) == []
    serve_window(traffic, T0 + HOUR, 30, seed=2, latency_ms=80.0)
    (firing,) = run_due(now_ms=T0 + 90 * MINUTE)
    assert firing.event["value"] == pytest.approx(80.0)


def _window(count: int, labelled: int, online: float | None, errors: float) -> WindowMetrics:
    return WindowMetrics(
        count=count, errors=0, error_rate=errors, latency_p50_ms=1.0, latency_p99_ms=2.0,
        throughput_per_s=1.0, output_distribution={}, labelled=labelled, online_metric=online,
    )  # fmt: skip


def test_an_ensemble_is_judged_on_its_weighted_primaries_only() -> None:
    condition = PerformanceCondition(deployment="d", below=0.8, min_labelled=10)
    metrics = {
        ("a", 1, "primary"): _window(100, 30, 0.9, 0.0),
        ("b", 1, "primary"): _window(100, 10, 0.5, 0.0),
        ("c", 2, "canary"): _window(100, 100, 0.0, 1.0),
    }
    assert primary_value(condition, metrics) == pytest.approx((0.9 * 30 + 0.5 * 10) / 40)
    few = {("a", 1, "primary"): _window(100, 9, 0.1, 0.0)}
    assert primary_value(condition, few) is None  # under min_labelled
    errors = PerformanceCondition(deployment="d", metric="error_rate", above=0.05)
    assert primary_value(errors, metrics) == 0.0
    assert not errors.breached(0.0)
