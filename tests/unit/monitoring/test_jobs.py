"""run_monitor over logs written through the real PredictionLog: drift, skew, performance
with late labels, software metrics and outcomes, stored per window and idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from mloop.errors import InvalidInput
from mloop.monitoring import (
    MonitorConfig,
    list_alerts,
    list_windows,
    run_monitor,
    save_alert_rule,
    save_monitor_config,
)
from tests.fixtures.monitoring import HOUR, T0, Traffic, register_training, serve_window

# ~400 rows a window: sampling noise of the Wasserstein score is about 0.1 (docs/drift.md)
SMALL_WINDOWS = {"drift": {"defaults": {"numeric": {"method": "wasserstein", "threshold": 0.25}}}}


def rule(name: str, metric: str, threshold: float, **fields: Any) -> dict[str, Any]:
    return {"name": name, "deployment": "iris", "metric": metric, "threshold": threshold,
            **fields}  # fmt: skip


@pytest.fixture
def monitored(traffic: Traffic) -> Traffic:
    register_training()
    save_monitor_config("iris", SMALL_WINDOWS)
    return traffic


def test_stable_traffic_does_not_alert_and_injected_drift_does(monitored: Traffic) -> None:
    save_alert_rule(rule("drift", "drift.max_score", 0.3))
    save_alert_rule(rule("skew-f2", "skew.f2", 0.3))
    for hour in range(3):
        serve_window(monitored, T0 + hour * HOUR, 400, seed=hour + 1)

    stable = run_monitor("iris", now_ms=T0 + 3 * HOUR + 5)

    assert [w.start_ms for w in stable.windows] == [T0 + HOUR, T0 + 2 * HOUR]
    latest = stable.windows[-1].metrics
    assert latest["drift"]["status"] == "ok"
    assert latest["drift"]["drifted_features"] == []
    assert latest["skew"]["status"] == "ok"
    assert latest["skew"]["reference"] == "train@1"
    assert set(latest["skew"]["features"]) == {"f0", "f1", "f2", "f3"}  # named from training
    assert stable.fired == []
    assert latest["output_drift"] < 0.1

    serve_window(monitored, T0 + 3 * HOUR, 400, seed=9, shift={2: 1.0})
    drifted = run_monitor("iris", now_ms=T0 + 4 * HOUR)

    window = drifted.windows[-1].metrics
    assert window["drift"]["drifted_features"] == ["f2"]
    assert window["skew"]["drifted_features"] == ["f2"]
    assert window["drift"]["max_score"] == pytest.approx(1.0, abs=0.2)
    assert sorted(a.rule for a in drifted.fired) == ["drift", "skew-f2"]
    fired = next(a for a in drifted.fired if a.rule == "drift")
    assert (fired.window_start_ms, fired.window_end_ms) == (T0 + 3 * HOUR, T0 + 4 * HOUR)
    assert fired.value == window["drift"]["max_score"]
    assert fired.deliveries[0]["sink"] == "log"
    assert fired.deliveries[0]["ok"] is True


def test_reruns_store_nothing_twice_and_alert_once(monitored: Traffic) -> None:
    save_alert_rule(rule("drift", "drift.max_score", 0.3))
    serve_window(monitored, T0, 300, seed=1)
    serve_window(monitored, T0 + HOUR, 300, seed=2, shift={0: 2.0})
    first = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    again = run_monitor("iris", now_ms=T0 + 2 * HOUR + 60_000)
    assert len(first.fired) == 1
    assert again.windows == []  # both windows are stored already
    assert again.fired == []
    assert [a.id for a in again.firing] == [first.fired[0].id]
    assert len(list_windows("iris")) == 2
    assert len(list_alerts("iris")) == 1


def test_an_alert_resolves_when_the_condition_clears(monitored: Traffic) -> None:
    save_alert_rule(rule("drift", "drift.max_score", 0.3))
    serve_window(monitored, T0, 300, seed=1)
    serve_window(monitored, T0 + HOUR, 300, seed=2, shift={1: 1.5})
    serve_window(monitored, T0 + 2 * HOUR, 300, seed=3, shift={1: 1.5})
    assert len(run_monitor("iris", now_ms=T0 + 2 * HOUR).fired) == 1
    cleared = run_monitor("iris", now_ms=T0 + 3 * HOUR)  # shifted like the one before it
    assert [a.rule for a in cleared.resolved] == ["drift"]
    assert cleared.firing == []
    (alert,) = list_alerts("iris")
    assert alert.state == "resolved"
    assert alert.resolved_ms == T0 + 3 * HOUR
    assert [d["event"] for d in alert.deliveries] == ["fired", "resolved"]


def test_for_duration_needs_consecutive_windows(monitored: Traffic) -> None:
    save_alert_rule(rule("errors", "error_rate", 0.1, window="1h", **{"for": "2h"}))
    serve_window(monitored, T0, 100, seed=1)
    serve_window(monitored, T0 + HOUR, 100, seed=2, error_every=4)
    one = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    assert one.windows[-1].metrics["error_rate"] == pytest.approx(0.25)
    assert one.fired == []  # one bad window of the two the rule needs
    serve_window(monitored, T0 + 2 * HOUR, 100, seed=3, error_every=4)
    two = run_monitor("iris", now_ms=T0 + 3 * HOUR)
    (alert,) = two.fired
    assert (alert.window_start_ms, alert.window_end_ms) == (T0 + HOUR, T0 + 3 * HOUR)
    assert "error_rate = 0.25 > 0.1 for 2 windows" in alert.message


def test_late_labels_update_a_windows_performance(monitored: Traffic) -> None:
    save_monitor_config("iris", {**SMALL_WINDOWS, "min_labels": 20})
    save_alert_rule(rule("accuracy", "accuracy", 0.8, op="<"))
    ids = serve_window(monitored, T0, 100, seed=1)
    serve_window(monitored, T0 + HOUR, 100, seed=2)
    first = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    assert first.windows[0].metrics["performance"]["status"] == "no_labels"
    assert "accuracy" not in first.windows[0].metrics

    monitored.feedback([{"request_id": rid, "label": 0} for rid in ids[:10]])
    few = run_monitor("iris", now_ms=T0 + 2 * HOUR + 1)
    assert few.recomputed == 1
    stored = list_windows("iris")[0].metrics
    assert stored["performance"]["status"] == "too_few_labels"
    assert stored["performance"]["labelled"] == 10

    # the labels say the model was wrong half the time: the old window's accuracy drops
    monitored.feedback([{"request_id": rid, "label": n % 2} for n, rid in enumerate(ids[10:60])])
    late = run_monitor("iris", now_ms=T0 + 2 * HOUR + 2)
    assert late.recomputed == 1
    stored = list_windows("iris")[0].metrics
    assert stored["performance"]["status"] == "ok"
    assert stored["performance"]["labelled"] == 60
    assert stored["accuracy"] < 0.8
    # the rule looks at the newest window, which has no labels yet: nothing fires
    assert late.fired == []


def test_software_metrics_and_outcome_rates(monitored: Traffic) -> None:
    save_alert_rule(rule("slow", "latency_p99_ms", 100.0))
    save_alert_rule(rule("clicks", "outcome.click_rate", 0.2, op="<"))
    ids = serve_window(monitored, T0, 200, seed=1, latency_ms=250.0)
    monitored.feedback([{"request_id": rid, "outcome": "click"} for rid in ids[:20]])
    result = run_monitor("iris", now_ms=T0 + HOUR)
    metrics = result.windows[-1].metrics
    assert metrics["latency_p99_ms"] == 250.0
    assert metrics["throughput_per_s"] == pytest.approx(200 / 3600)
    assert metrics["outcomes"] == {"click": 20}
    assert metrics["outcome_rates"] == {"click": pytest.approx(0.1)}
    assert sorted(a.rule for a in result.fired) == ["clicks", "slow"]
    member = result.windows[-1].members[0]
    assert (member["model"], member["version"], member["role"]) == ("iris", 1, "primary")


def test_the_window_in_progress_is_partial_and_replaced(monitored: Traffic) -> None:
    serve_window(monitored, T0, 100, seed=1)
    partial = run_monitor("iris", now_ms=T0 + HOUR // 2, include_current=True)
    assert partial.windows[-1].partial
    assert partial.windows[-1].end_ms == T0 + HOUR // 2
    assert partial.windows[-1].metrics["count"] == 50
    done = run_monitor("iris", now_ms=T0 + HOUR)
    assert [(w.start_ms, w.partial, w.metrics["count"]) for w in done.windows][-1] == (
        T0,
        False,
        100,
    )


def test_skew_without_training_data_says_why(traffic: Traffic) -> None:
    serve_window(traffic, T0, 50, seed=1)
    result = run_monitor("iris", now_ms=T0 + HOUR, config=MonitorConfig(min_rows=10))
    skew = result.windows[-1].metrics["skew"]
    assert skew["status"] == "no_reference"
    assert "model iris v1" in skew["reason"]


def test_a_bad_deployment_name_or_window_is_refused() -> None:
    with pytest.raises(InvalidInput):
        run_monitor("../etc", now_ms=T0)
    with pytest.raises(InvalidInput, match="not a duration"):
        run_monitor("iris", now_ms=T0, window="soon")
