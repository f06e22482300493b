"""Metrics against an independent computation: scikit-learn on the same rows (and, for
bootstrap weights, on the rows a resample actually drew)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mloop.evaluation._bootstrap import resample_weights
from mloop.evaluation._metrics import (
    ECE_BINS,
    Outcomes,
    calibration_points,
    compute,
    confusion,
    point,
    weighted_auc,
)


def _binary(n: int = 400, seed: int = 1) -> Outcomes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    proba = np.column_stack([1 - p1, p1])
    return Outcomes("classification", y, (p1 >= 0.5).astype(int), proba, (0, 1), 1)


def _ece_by_loop(o: Outcomes) -> float:
    assert o.proba is not None
    conf = o.proba.max(axis=1)
    correct = o.proba.argmax(axis=1) == o.y
    total = 0.0
    for b in range(ECE_BINS):
        upper = (b + 1) / ECE_BINS
        rows = (conf >= b / ECE_BINS) & ((conf < upper) if b < ECE_BINS - 1 else (conf <= 1))
        if rows.any():
            total += rows.sum() / len(o) * abs(correct[rows].mean() - conf[rows].mean())
    return total


def test_binary_metrics_match_scikit_learn() -> None:
    o = _binary()
    got = point(o)
    assert o.proba is not None
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(o.y, o.pred))
    assert got["precision"] == pytest.approx(skm.precision_score(o.y, o.pred))
    assert got["recall"] == pytest.approx(skm.recall_score(o.y, o.pred))
    assert got["f1"] == pytest.approx(skm.f1_score(o.y, o.pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(o.y, o.proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(o.y, o.proba), rel=1e-6)
    tn, fp, fn, tp = skm.confusion_matrix(o.y, o.pred).ravel()
    assert got["fp_rate"] == pytest.approx(fp / (fp + tn))
    assert got["fn_rate"] == pytest.approx(fn / (fn + tp))
    assert got["ece"] == pytest.approx(_ece_by_loop(o))
    assert confusion(o) == skm.confusion_matrix(o.y, o.pred).tolist()


def test_multiclass_metrics_are_macro_averages_as_scikit_learn_computes_them() -> None:
    rng = np.random.default_rng(2)
    n, k = 600, 3
    y = rng.integers(0, k, n)
    raw = rng.random((n, k)) + np.eye(k)[y] * 0.8
    proba = raw / raw.sum(axis=1, keepdims=True)
    o = Outcomes("classification", y, proba.argmax(axis=1), proba, ("a", "b", "c"), None)
    got = point(o)
    labels = list(range(k))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, o.pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert got[name] == pytest.approx(fn(y, o.pred, average="macro", labels=labels))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-6)
    cm = skm.multilabel_confusion_matrix(y, o.pred)
    fpr = np.mean([m[0, 1] / (m[0, 1] + m[0, 0]) for m in cm])
    assert got["fp_rate"] == pytest.approx(fpr)


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 300)
    pred = y + rng.normal(0, 1, 300)
    got = point(Outcomes("regression", y, pred))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_a_resample_as_weights_equals_the_metrics_of_the_rows_it_drew() -> None:
    """The vectorised bootstrap's claim: weights ≡ the resampled rows themselves."""
    o = _binary(150, seed=4)
    rng = np.random.default_rng(0)
    weights = resample_weights(rng, len(o), 5)
    assert weights.shape == (5, 150)
    assert (weights.sum(axis=1) == 150).all()
    found = compute(o, weights.astype(float))
    for b in range(5):
        rows = np.repeat(np.arange(150), weights[b])
        drawn = o.subset(rows)
        assert drawn.proba is not None
        assert found["accuracy"][b] == pytest.approx(skm.accuracy_score(drawn.y, drawn.pred))
        assert found["f1"][b] == pytest.approx(skm.f1_score(drawn.y, drawn.pred))
        assert found["roc_auc"][b] == pytest.approx(skm.roc_auc_score(drawn.y, drawn.proba[:, 1]))
        assert found["log_loss"][b] == pytest.approx(skm.log_loss(drawn.y, drawn.proba), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(0, 6), min_size=2, max_size=40),  # few values: many ties
    labels=st.lists(st.booleans(), min_size=2, max_size=40),
    weights=st.lists(st.integers(0, 3), min_size=2, max_size=40),
)
def test_weighted_auc_equals_scikit_learn_with_sample_weights(
    scores: list[int], labels: list[bool], weights: list[int]
) -> None:
    n = min(len(scores), len(labels), len(weights))
    s = np.asarray(scores[:n], dtype=float)
    y = np.asarray(labels[:n])
    w = np.asarray(weights[:n], dtype=float)
    got = weighted_auc(s, y, w[None, :])[0]
    if w[y].sum() == 0 or w[~y].sum() == 0:
        assert np.isnan(got)
        return
    assert got == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w))


def test_undefined_values_are_nan_not_errors() -> None:
    y = np.ones(10, dtype=int)  # one class only
    proba = np.column_stack([np.full(10, 0.2), np.full(10, 0.8)])
    got = point(Outcomes("classification", y, np.ones(10, dtype=int), proba, (0, 1), 1))
    assert np.isnan(got["roc_auc"])
    assert np.isnan(got["fp_rate"])
    assert got["accuracy"] == 1.0
    assert got["fn_rate"] == 0.0
    constant = point(Outcomes("regression", np.full(5, 2.0), np.full(5, 2.5)))
    assert np.isnan(constant["r2"])
    assert constant["mae"] == pytest.approx(0.5)


def test_calibration_points_are_the_reliability_diagram() -> None:
    o = _binary(300, seed=5)
    points = calibration_points(o)
    assert points is not None
    assert sum(points["count"]) == 300
    assert all(0.5 <= c <= 1 for c in points["confidence"])  # top-label confidence
    assert all(0 <= a <= 1 for a in points["accuracy"])
