"""ServingMetrics: the exposition text, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from mloop.serving._metrics import ServingMetrics


def samples(metrics: ServingMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset(labels.items()))]


MEMBER = {"deployment": "iris", "model": "iris", "version": "3", "role": "primary"}


def test_requests_latency_errors_and_batches() -> None:
    metrics = ServingMetrics()
    metrics.observe_request("iris", "iris", 3, "primary", 0.004, 200)
    metrics.observe_request("iris", "iris", 3, "primary", 0.2, 200)
    metrics.observe_request("iris", "iris", 3, "primary", 0.01, 400)
    metrics.observe_error("iris", 429)
    metrics.observe_batch(8, "iris", "iris", 3)
    metrics.observe_batch(1, "iris", "iris", 3)

    found = samples(metrics)

    assert value(found, "mloop_requests_total", **MEMBER, status="200") == 2
    assert value(found, "mloop_requests_total", **MEMBER, status="400") == 1
    assert value(found, "mloop_request_latency_seconds_count", **MEMBER) == 3
    assert value(found, "mloop_request_latency_seconds_bucket", **MEMBER, le="0.005") == 1
    assert value(found, "mloop_request_latency_seconds_bucket", **MEMBER, le="0.025") == 2
    assert value(found, "mloop_request_latency_seconds_sum", **MEMBER) == pytest.approx(0.214)
    assert value(found, "mloop_request_errors_total", deployment="iris", status="400") == 1
    assert value(found, "mloop_request_errors_total", deployment="iris", status="429") == 1
    assert value(found, "mloop_batch_size_count", **MEMBER) == 2
    assert value(found, "mloop_batch_size_bucket", **MEMBER, le="4.0") == 1


def test_in_flight_goes_up_and_down_even_on_errors() -> None:
    metrics = ServingMetrics()
    with metrics.in_flight("iris"), metrics.in_flight("iris"):
        assert value(samples(metrics), "mloop_requests_in_flight", deployment="iris") == 2
    with pytest.raises(RuntimeError), metrics.in_flight("iris"):
        raise RuntimeError("boom")
    assert value(samples(metrics), "mloop_requests_in_flight", deployment="iris") == 0


def test_process_metrics_are_on_its_own_registry() -> None:
    metrics = ServingMetrics()
    metrics.observe_request("iris", "iris", 1, "primary", 0.01)
    names = {name for name, _ in samples(metrics)}

    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= names
    assert not [m for m in REGISTRY.collect() if m.name.startswith("mloop_")]  # not global
    assert "process_cpu_seconds_total" not in {n for n, _ in samples(ServingMetrics(process=False))}


def test_input_metrics_for_arrays() -> None:
    metrics = ServingMetrics()
    metrics.observe_inputs("iris", np.array([[1.0, 10.0], [3.0, np.nan]]), ["sepal", "petal"])
    metrics.observe_inputs("iris", np.array([[5.0, 20.0]]), ["sepal", "petal"])
    metrics.observe_inputs("ints", np.array([[1, 2], [3, 4]]))

    found = samples(metrics)

    assert value(found, "mloop_input_missing_values_total", deployment="iris", feature="petal") == 1
    assert (
        "mloop_input_missing_values_total",
        frozenset({("deployment", "iris"), ("feature", "sepal")}),
    ) not in found
    assert value(found, "mloop_input_feature_mean", deployment="iris", feature="sepal") == 3.0
    assert value(found, "mloop_input_feature_mean", deployment="iris", feature="petal") == 15.0
    assert value(found, "mloop_input_feature_mean", deployment="ints", feature="1") == 3.0
    assert value(found, "mloop_input_rows_total", deployment="iris") == 3
    assert value(found, "mloop_input_length_count", deployment="iris") == 2
    assert value(found, "mloop_input_length_sum", deployment="iris") == 6  # values per request


def test_input_metrics_for_named_columns_and_text() -> None:
    metrics = ServingMetrics()
    metrics.observe_inputs(
        "search",
        {
            "query": np.array(["red shoes", None, "hat"], dtype=object),
            "age": np.array([30.0, np.nan, 50.0]),
            "clicks": np.array([1, 2, 3]),
        },
    )
    found = samples(metrics)

    assert (
        value(found, "mloop_input_missing_values_total", deployment="search", feature="query") == 1
    )
    assert value(found, "mloop_input_missing_values_total", deployment="search", feature="age") == 1
    assert value(found, "mloop_input_feature_mean", deployment="search", feature="age") == 40.0
    assert value(found, "mloop_input_feature_mean", deployment="search", feature="clicks") == 2.0
    # average input length: 12 characters of text + 3 + 3 numeric values, one request
    assert value(found, "mloop_input_length_sum", deployment="search") == 18
    assert value(found, "mloop_input_rows_total", deployment="search") == 3


def test_feature_means_leave_the_window() -> None:
    metrics = ServingMetrics(window_seconds=60)
    window = metrics._feature_window
    window.add(("iris", "x"), 10.0, 1, now=0.0)
    window.add(("iris", "x"), 30.0, 1, now=55.0)
    assert [(k, t / c) for k, t, c in window.sums(now=59.0)] == [(("iris", "x"), 20.0)]
    assert [(k, t / c) for k, t, c in window.sums(now=65.0)] == [(("iris", "x"), 30.0)]
    assert list(window.sums(now=200.0)) == []


def test_feature_cardinality_is_capped() -> None:
    metrics = ServingMetrics(max_features=2)
    metrics.observe_inputs("wide", np.array([[1.0, 2.0, np.nan]]))
    found = samples(metrics)

    means = {
        dict(labels)["feature"] for name, labels in found if name == "mloop_input_feature_mean"
    }
    assert means == {"0", "1"}
    assert (
        value(found, "mloop_input_missing_values_total", deployment="wide", feature="__other__")
        == 1
    )


def test_output_metrics() -> None:
    metrics = ServingMetrics(max_classes=2)
    metrics.observe_outputs(
        "iris",
        "iris",
        3,
        ["setosa", "setosa", None, "virginica", "versicolor"],
        needs_review=[True, False, False, False, True],
    )
    metrics.observe_outputs("iris", "iris", 3, np.array([np.nan, 1.0]), needs_review=1)
    metrics.observe_outputs("reg", "reg", 1, None, rows=4)
    metrics.observe_empty("reg", "reg", 1, 2)

    found = samples(metrics)
    out = {"deployment": "iris", "model": "iris", "version": "3"}

    assert value(found, "mloop_output_class_total", **out, **{"class": "setosa"}) == 2
    assert value(found, "mloop_output_class_total", **out, **{"class": "virginica"}) == 1
    assert value(found, "mloop_output_class_total", **out, **{"class": "__other__"}) == 2
    assert value(found, "mloop_output_empty_total", **out) == 2
    assert value(found, "mloop_outputs_total", **out) == 7
    assert value(found, "mloop_needs_review_total", **out) == 3
    assert value(found, "mloop_needs_review_share", **out) == pytest.approx(3 / 7)
    reg = {"deployment": "reg", "model": "reg", "version": "1"}
    assert value(found, "mloop_outputs_total", **reg) == 4
    assert value(found, "mloop_output_empty_total", **reg) == 2
    assert value(found, "mloop_needs_review_share", **reg) == 0


def test_openmetrics_when_asked() -> None:
    metrics = ServingMetrics(process=False)
    metrics.observe_request("iris", "iris", 1, "primary", 0.01)
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_label_values_are_escaped() -> None:
    metrics = ServingMetrics(process=False)
    metrics.observe_outputs("d", "m", 1, ['say "hi"\n'])
    found = samples(metrics)
    assert (
        value(
            found,
            "mloop_output_class_total",
            deployment="d",
            model="m",
            version="1",
            **{"class": 'say "hi"\n'},
        )
        == 1
    )
