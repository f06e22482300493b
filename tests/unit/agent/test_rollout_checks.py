"""The judgement of one step, candidate against primary: each threshold at its edge, the
latency tolerance, checks turned off, and the online metric (accuracy or MAE) only once
both sides have enough labels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mloop.agent._checks import judge
from mloop.agent._plans import Checks
from mloop.monitoring import WindowMetrics

SHARES = {"a": 0.5, "b": 0.3, "c": 0.2}


def metrics(**changes: Any) -> WindowMetrics:
    base = WindowMetrics(
        count=200,
        errors=0,
        error_rate=0.0,
        latency_p50_ms=1.0,
        latency_p99_ms=10.0,
        throughput_per_s=1.0,
        output_distribution=SHARES,
        labelled=0,
        online_metric=None,
    )
    return replace(base, **changes)


CHECKS = Checks(min_requests=100, min_labelled=50)


def test_equal_sides_pass() -> None:
    verdict = judge(CHECKS, metrics(), metrics(), "canary")
    assert (verdict.enough, verdict.passed, verdict.breaches) == (True, True, [])
    assert verdict.figures["divergence"] == 0.0
    assert verdict.figures["candidate"]["count"] == 200


@pytest.mark.parametrize(
    ("candidate", "primary"),
    [(None, metrics()), (metrics(count=99), metrics()), (metrics(), metrics(count=5))],
)
def test_too_few_requests_on_either_side_is_not_judged(
    candidate: WindowMetrics | None, primary: WindowMetrics
) -> None:
    verdict = judge(CHECKS, replace(candidate, errors=99, error_rate=1.0) if candidate else None,
                    primary, "shadow")  # fmt: skip
    assert (verdict.enough, verdict.passed, verdict.breaches) == (False, False, [])
    assert verdict.shortfall is not None
    assert verdict.shortfall.startswith("not enough traffic: ")
    assert verdict.shortfall.endswith("100 needed of each")


def test_error_rate_at_and_over_the_edge() -> None:
    primary = metrics(errors=2, error_rate=0.01)
    at_edge = metrics(errors=4, error_rate=0.02)  # one point more: allowed
    assert judge(CHECKS, at_edge, primary, "canary").passed
    over = metrics(errors=5, error_rate=0.025)
    (breach,) = judge(CHECKS, over, primary, "canary").breaches
    assert breach == (
        "error rate 2.50% (5 of 200) against the primary's 1.00%: more than 1 points higher"
    )
    off = CHECKS.model_copy(update={"max_error_rate_increase": None})
    assert judge(off, over, primary, "canary").passed


def test_latency_needs_both_the_ratio_and_the_tolerance() -> None:
    primary = metrics(latency_p99_ms=2.0)
    assert judge(CHECKS, metrics(latency_p99_ms=6.9), primary, "canary").passed  # 3.5x, +4.9ms
    (breach,) = judge(CHECKS, metrics(latency_p99_ms=7.5), primary, "canary").breaches
    assert breach == "p99 latency 7.5 ms against the primary's 2.0 ms: more than 1.5 times as slow"
    slow = metrics(latency_p99_ms=100.0)
    assert judge(CHECKS, metrics(latency_p99_ms=149.0), slow, "canary").passed
    assert judge(CHECKS, metrics(latency_p99_ms=151.0), slow, "canary").breaches
    assert judge(CHECKS, metrics(latency_p99_ms=None), slow, "canary").passed


def test_a_shadows_latency_is_not_judged_a_canarys_is() -> None:
    """Shadows answer in batches in a low-priority process: their latency is not a
    request's, so only canary steps judge latency."""
    primary, slow = metrics(latency_p99_ms=2.0), metrics(latency_p99_ms=900.0)
    shadow = judge(CHECKS, slow, primary, "shadow")
    assert shadow.passed
    assert shadow.figures["latency_judged"] is False
    (breach,) = judge(CHECKS, slow, primary, "canary").breaches
    assert "p99 latency" in breach


def test_divergent_answers() -> None:
    skewed = metrics(output_distribution={"a": 0.9, "b": 0.1})
    verdict = judge(CHECKS, skewed, metrics(), "shadow")
    (breach,) = verdict.breaches
    assert breach.startswith("answers diverge from the primary's: Jensen-Shannon distance 0.")
    assert verdict.figures["divergence"] > 0.2
    loose = CHECKS.model_copy(update={"max_divergence": 0.9})
    assert judge(loose, skewed, metrics(), "shadow").passed


def test_accuracy_counts_only_with_enough_labels_on_both_sides() -> None:
    primary = metrics(labelled=80, online_metric=0.90, metric_name="accuracy")
    worse = metrics(labelled=80, online_metric=0.85, metric_name="accuracy")
    (breach,) = judge(CHECKS, worse, primary, "canary").breaches
    assert breach == (
        "accuracy 85.00% against the primary's 90.00% (from 80 and 80 labels): more than 2 "
        "points lower"
    )
    assert judge(CHECKS, replace(worse, online_metric=0.885), primary, "canary").passed
    assert judge(CHECKS, replace(worse, labelled=49), primary, "canary").passed
    assert judge(CHECKS, worse, replace(primary, labelled=10), "canary").passed
    assert judge(CHECKS, replace(worse, online_metric=None), primary, "canary").passed


def test_mean_absolute_error_is_judged_by_ratio() -> None:
    primary = metrics(labelled=60, online_metric=2.0, metric_name="mae")
    assert judge(CHECKS, metrics(labelled=60, online_metric=2.2, metric_name="mae"), primary,
                 "canary").passed  # fmt: skip
    (breach,) = judge(
        CHECKS, metrics(labelled=60, online_metric=2.5, metric_name="mae"), primary, "canary"
    ).breaches
    assert breach.startswith("mean absolute error 2.5 against the primary's 2 (from 60 and 60")
    mixed = metrics(labelled=60, online_metric=0.1, metric_name="accuracy")
    assert judge(CHECKS, mixed, primary, "canary").passed  # not comparable: not judged


def test_every_breach_is_listed() -> None:
    bad = metrics(errors=50, error_rate=0.25, latency_p99_ms=90.0, output_distribution={"z": 1.0})
    assert len(judge(CHECKS, bad, metrics(), "canary").breaches) == 3
