"""Alert rules, sinks and monitor configs: parsing, short forms, errors naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.monitoring import AlertRule, CommandSink, LogSink, MonitorConfig, WebhookSink
from mloop.monitoring._alerts import metric_value
from mloop.monitoring._spec import duration_ms, format_duration

BASE = {"name": "r", "deployment": "iris", "metric": "error_rate", "threshold": 0.1}


@given(st.integers(1, 10**12))
def test_durations_round_trip(milliseconds: int) -> None:
    assert duration_ms(format_duration(milliseconds)) == milliseconds


@given(st.lists(st.tuples(st.integers(1, 999), st.sampled_from(["ms", "s", "m", "h", "d", "w"])),
                min_size=1, max_size=4))  # fmt: skip
def test_compound_durations_add_up(parts: list[tuple[int, str]]) -> None:
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert duration_ms(text) == sum(n * units[u] for n, u in parts)


@given(st.text(max_size=8))
def test_any_text_is_a_duration_or_a_clear_error(text: str) -> None:
    try:
        parsed = duration_ms(text)
    except InvalidInput as exc:
        message = exc.message
    else:
        message = "duration" if parsed > 0 else "bad"
    assert "duration" in message or "longer than zero" in message


def test_sink_short_forms_expand() -> None:
    rule = AlertRule.parse(
        {
            **BASE,
            "sinks": [
                "log",
                {"webhook": "http://127.0.0.1:9/hook"},
                {"webhook": {"url": "https://x.example/h", "retries": 0}},
                {"command": ["notify", "--team", "ml"]},
            ],
        }
    )
    assert rule.sinks == [
        LogSink(),
        WebhookSink(url="http://127.0.0.1:9/hook"),
        WebhookSink(url="https://x.example/h", retries=0),
        CommandSink(argv=["notify", "--team", "ml"]),
    ]
    assert AlertRule.parse(rule.to_json()) == rule  # the stored form reads back the same


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "nonsense"}, "unknown metric 'nonsense'"),
        ({"op": "=="}, "op"),
        ({"window": "later"}, "window"),
        ({"for": "30m", "window": "1h"}, "shorter than one window"),
        ({"sinks": [{"webhook": "ftp://x"}]}, "http"),
        ({"sinks": [{"command": []}]}, "sinks"),
        ({"colour": "red"}, "colour is not a known field"),
        ({"threshold": float("nan")}, "finite"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AlertRule.parse({**BASE, **change})


def test_for_counts_windows() -> None:
    assert AlertRule.parse(BASE).windows_needed == 1
    assert AlertRule.parse({**BASE, "window": "5m", "for": "12m"}).windows_needed == 3


def test_metric_values_from_stored_metrics() -> None:
    metrics = {
        "count": 10, "error_rate": 0.1, "drift": {"status": "ok", "max_score": 0.4,
        "features": {"f1": 0.4}}, "skew": {"status": "too_few_rows"},
        "outcomes": {"click": 3}, "outcome_rates": {"click": 0.3},
    }  # fmt: skip
    assert metric_value(metrics, "error_rate") == 0.1
    assert metric_value(metrics, "drift.max_score") == 0.4
    assert metric_value(metrics, "drift.f1") == 0.4
    assert metric_value(metrics, "drift.f9") is None
    assert metric_value(metrics, "skew.max_score") is None
    assert metric_value(metrics, "outcome.click_rate") == 0.3
    assert metric_value(metrics, "outcome.buy_rate") == 0.0
    assert metric_value(metrics, "outcome.click") == 3
    assert metric_value(metrics, "accuracy") is None
    assert metric_value({"count": 0, "error_rate": 0.0}, "error_rate") is None


def test_monitor_config_checks_its_drift_config() -> None:
    with pytest.raises(InvalidInput, match="drift"):
        MonitorConfig.parse({"drift": {"defaults": {"numeric": {"method": "nope"}}}})
    config = MonitorConfig.parse({"label": "target"})
    assert config.drift_config().features["target"].skip
