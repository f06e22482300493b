"""window_metrics per member: software metrics, answer distribution, online metric."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from mloop.errors import InvalidInput
from mloop.monitoring import distribution_divergence, window_metrics
from tests.fixtures.monitoring import HOUR, T0, Traffic


def test_members_are_measured_separately(traffic: Traffic) -> None:
    ids = [traffic.answer(T0 + i * 1000, [1.0, 2.0], "a" if i % 4 else "b",
                          latency_ms=float(i + 1)) for i in range(100)]  # fmt: skip
    for i in range(10):
        traffic.answer(T0 + i, [1.0, 2.0], "a", version=2, role="canary", latency_ms=50.0)
    traffic.answer(T0 + 5, [1.0, 2.0], None, version=2, role="canary", status=500,
                   error="INTERNAL")  # fmt: skip
    traffic.answer(T0 + HOUR, [1.0, 2.0], "a")  # the next window: not counted
    traffic.feedback([{"request_id": ids[i], "label": "a"} for i in range(8)])

    found = window_metrics("iris", T0, T0 + HOUR)

    assert set(found) == {("iris", 1, "primary"), ("iris", 2, "canary")}
    primary = found[("iris", 1, "primary")]
    assert primary.count == 100
    assert primary.errors == 0
    assert primary.latency_p50_ms == pytest.approx(50.5)
    assert primary.latency_p99_ms == pytest.approx(99.01)
    assert primary.throughput_per_s == pytest.approx(100 / 3600)
    assert primary.output_distribution == {"a": 0.75, "b": 0.25}
    assert primary.labelled == 8
    assert primary.online_metric == pytest.approx(6 / 8)  # ids 0 and 4 answered "b"
    assert primary.metric_name == "accuracy"
    canary = found[("iris", 2, "canary")]
    assert (canary.count, canary.errors, canary.server_errors) == (11, 1, 1)
    assert canary.error_rate == pytest.approx(1 / 11)
    assert canary.online_metric is None
    assert canary.labelled == 0


def test_regression_answers_are_binned_and_scored_by_mae(traffic: Traffic) -> None:
    ids = [traffic.answer(T0 + i, [float(i)], 1.25 + i / 10) for i in range(20)]
    traffic.feedback([{"request_id": ids[i], "label": 1.0} for i in range(4)])
    member = window_metrics("iris", T0, T0 + HOUR)[("iris", 1, "primary")]
    assert member.metric_name == "mae"
    assert member.online_metric == pytest.approx(sum(0.25 + i / 10 for i in range(4)) / 4)
    assert math.isclose(sum(member.output_distribution.values()), 1.0)
    assert set(member.output_distribution) <= {"1e0", "1.5e0", "2e0", "2.5e0", "3e0"}


def test_latest_label_wins(traffic: Traffic) -> None:
    rid = traffic.answer(T0, [1.0], "a")
    traffic.feedback([{"request_id": rid, "label": "b", "time": T0 + 10}])
    traffic.feedback([{"request_id": rid, "label": "a", "time": T0 + 20}])
    assert window_metrics("iris", T0, T0 + HOUR)[("iris", 1, "primary")].online_metric == 1.0


def test_an_empty_window_and_a_backwards_window() -> None:
    assert window_metrics("iris", T0, T0 + HOUR) == {}
    with pytest.raises(InvalidInput, match="before it starts"):
        window_metrics("iris", T0, T0 - 1)


def test_divergence_of_known_distributions() -> None:
    assert distribution_divergence({"a": 1.0}, {"a": 1.0}) == 0.0
    assert distribution_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert distribution_divergence({}, {}) == 0.0
    assert distribution_divergence({"a": 1.0}, {}) == 1.0
    expected = jensenshannon([0.5, 0.5, 0.0], [0.8, 0.1, 0.1], base=2)
    assert distribution_divergence({"a": 0.5, "b": 0.5}, {"a": 0.8, "b": 0.1, "c": 0.1}) == (
        pytest.approx(expected)
    )


shares = st.dictionaries(st.sampled_from("abcdef"), st.floats(0.0, 1.0), max_size=6)


@given(shares, shares)
def test_divergence_is_a_bounded_symmetric_distance(
    a: dict[str, float], b: dict[str, float]
) -> None:
    d = distribution_divergence(a, b)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(distribution_divergence(b, a))
    assert distribution_divergence(a, a) == pytest.approx(0.0, abs=1e-6)
