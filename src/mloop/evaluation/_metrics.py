"""Metrics as functions of per-row weights, so one code path gives the point estimate and
every bootstrap resample at once.

A bootstrap resample is a vector of counts (how often each row was drawn); every metric
here is a function of weighted sums over rows, so ``B`` resamples are a ``(B, n)`` weight
matrix and one matrix product per sufficient statistic instead of ``B`` calls to a
metric function. The point estimate is the same function with all weights 1. ROC-AUC
is the weighted Mann-Whitney statistic (ties count one half), computed from one sort.
Undefined values (a rate with an empty denominator, AUC on one class) are NaN; precision,
recall and F1 follow scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
ECE_BINS = 10
CLASS_BLOCK = 32  # classes per design-matrix block: bounds its width
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Outcomes:
    """What a model answered on some rows, in the shape the metrics need.

    Classification: ``y`` and ``pred`` are class indices into ``classes``; ``proba`` the
    ``(n, K)`` probabilities when the model gives them; ``positive`` the positive class's
    index when there are two classes. Regression: ``y`` and ``pred`` are floats.
    """

    task: str
    y: Array
    pred: Array
    proba: Array | None = None
    classes: tuple[Any, ...] = ()
    positive: int | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, rows: Array) -> Outcomes:
        return Outcomes(
            self.task,
            self.y[rows],
            self.pred[rows],
            None if self.proba is None else self.proba[rows],
            self.classes,
            self.positive,
        )

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.task == "regression":
            return ("mae", "rmse", "r2")
        names = ["accuracy", "precision", "recall", "f1", "fp_rate", "fn_rate"]
        if self.proba is not None:
            names[4:4] = ["roc_auc", "log_loss", "ece"]
        return tuple(names)


def compute(outcomes: Outcomes, weights: Array) -> dict[str, Array]:
    """Every metric of ``outcomes`` under each row of ``weights`` (shape ``(B, n)``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if outcomes.task == "regression":
            return _regression(outcomes, weights)
        return _classification(outcomes, weights)


def point(outcomes: Outcomes) -> dict[str, float]:
    """The metrics on the rows as they are (every weight 1)."""
    found = compute(outcomes, np.ones((1, len(outcomes))))
    return {name: float(values[0]) for name, values in found.items()}


# -- classification ---------------------------------------------------------------------------


def _classification(o: Outcomes, w: Array) -> dict[str, Array]:
    """Every count a metric needs is a column of one design matrix, so a chunk of
    resamples costs one matrix product (BLAS) instead of one per count."""
    base = [np.ones(len(o)), (o.pred == o.y).astype(np.float64)]
    if o.proba is not None:
        base += _calibration_columns(o)
    sums = w @ np.column_stack(base)
    total, correct = sums[:, 0], sums[:, 1]
    out: dict[str, Array] = {"accuracy": correct / total}
    k = len(o.classes)
    per_class = [o.positive] if k == 2 and o.positive is not None else list(range(k))
    rates: dict[str, list[Array]] = {n: [] for n in ("precision", "recall", "f1", "fpr", "fnr")}
    for first in range(0, len(per_class), CLASS_BLOCK):
        block = per_class[first : first + CLASS_BLOCK]
        columns = []
        for c in block:
            truth, said = o.y == c, o.pred == c
            columns += [truth & said, ~truth & said, truth & ~said]
        counts = w @ np.column_stack(columns).astype(np.float64)
        for i in range(len(block)):
            tp, fp, fn = counts[:, 3 * i], counts[:, 3 * i + 1], counts[:, 3 * i + 2]
            tn = total - tp - fp - fn
            rates["precision"].append(_div0(tp, tp + fp))
            rates["recall"].append(_div0(tp, tp + fn))
            rates["f1"].append(_div0(2 * tp, 2 * tp + fp + fn))
            rates["fpr"].append(fp / (fp + tn))
            rates["fnr"].append(fn / (fn + tp))
    for name in ("precision", "recall", "f1"):
        out[name] = np.mean(rates[name], axis=0)
    if o.proba is not None:
        out["roc_auc"] = _roc_auc(o, w, per_class)
        out["log_loss"] = sums[:, 2] / total
        out["ece"] = np.abs(sums[:, 3:]).sum(axis=1) / total
    out["fp_rate"] = np.mean(rates["fpr"], axis=0)
    out["fn_rate"] = np.mean(rates["fnr"], axis=0)
    return out


def _calibration_columns(o: Outcomes) -> list[Array]:
    """The per-row log loss, then for each confidence bin the rows' (correct - confidence)
    inside it: a bin's weighted sum is its calibration gap mass (expected calibration
    error of the top-label confidence, equal-width bins)."""
    assert o.proba is not None
    proba = o.proba / o.proba.sum(axis=1, keepdims=True)
    chosen = np.clip(proba[np.arange(len(o)), o.y], _EPS, 1 - _EPS)
    confidence = o.proba.max(axis=1)
    miss = (o.proba.argmax(axis=1) == o.y) - confidence
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    return [-np.log(chosen)] + [np.where(bins == b, miss, 0.0) for b in range(ECE_BINS)]


def _div0(numerator: Array, denominator: Array) -> Array:
    """scikit-learn's ``zero_division=0``: an empty denominator gives 0, not NaN."""
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)


def _roc_auc(o: Outcomes, w: Array, per_class: list[int]) -> Array:
    assert o.proba is not None
    values = [weighted_auc(o.proba[:, c], o.y == c, w) for c in per_class]
    mean: Array = np.mean(values, axis=0)
    return mean


def weighted_auc(score: Array, positive: Array, w: Array) -> Array:
    """P(score of a positive > score of a negative), ties one half, pairs weighted by the
    product of their rows' weights; NaN where a resample has no positive or no negative.

    One sort of the negatives' scores serves every resample: for each positive, the
    negatives' weight strictly below it and up to its score are two columns of the
    running sum of the negatives' weights (found by binary search), so a chunk of
    resamples costs a cumulative sum and two gathers.
    """
    positive = np.asarray(positive, dtype=bool)
    pos_rows = np.flatnonzero(positive)
    neg_rows = np.flatnonzero(~positive)
    neg_rows = neg_rows[np.argsort(score[neg_rows], kind="stable")]
    neg_scores = score[neg_rows]
    below = np.searchsorted(neg_scores, score[pos_rows], "left")
    up_to = np.searchsorted(neg_scores, score[pos_rows], "right")
    running = np.zeros((w.shape[0], neg_rows.size + 1))
    np.cumsum(w[:, neg_rows], axis=1, out=running[:, 1:])
    w_pos = w[:, pos_rows]
    wins = 0.5 * np.einsum("bi,bi->b", w_pos, running[:, below] + running[:, up_to])
    pairs = w_pos.sum(axis=1) * running[:, -1]
    result: Array = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)
    return result


# -- regression -------------------------------------------------------------------------------


def _regression(o: Outcomes, w: Array) -> dict[str, Array]:
    y = o.y.astype(np.float64)
    error = o.pred.astype(np.float64) - y
    y = y - y.mean() if y.size else y  # centred: sums of squares keep their precision
    sums = w @ np.column_stack([np.ones(len(o)), y, y * y, np.abs(error), error * error])
    total, sum_y, sum_y2, abs_error, ss_res = sums.T
    ss_tot = sum_y2 - sum_y * sum_y / total
    return {
        "mae": abs_error / total,
        "rmse": np.sqrt(ss_res / total),
        "r2": np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.nan),
    }


# -- curves for the report --------------------------------------------------------------------


def roc_points(o: Outcomes, max_points: int = 200) -> dict[str, list[float]] | None:
    """The ROC curve of the positive class (binary) for plotting, thinned to ``max_points``."""
    if o.proba is None or o.positive is None or len(o.classes) != 2:
        return None
    from sklearn.metrics import roc_curve

    truth = o.y == o.positive
    if truth.all() or not truth.any():
        return None
    fpr, tpr, _ = roc_curve(truth, o.proba[:, o.positive])
    keep = np.unique(np.linspace(0, fpr.size - 1, min(max_points, fpr.size)).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def calibration_points(o: Outcomes) -> dict[str, list[float]] | None:
    """Reliability diagram of the top-label confidence: per bin, mean confidence, share
    correct and row count."""
    if o.proba is None:
        return None
    confidence = o.proba.max(axis=1)
    correct = (o.proba.argmax(axis=1) == o.y).astype(np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    counts = np.bincount(bins, minlength=ECE_BINS)
    filled = counts > 0
    mean_conf = np.bincount(bins, confidence, ECE_BINS)[filled] / counts[filled]
    accuracy = np.bincount(bins, correct, ECE_BINS)[filled] / counts[filled]
    return {
        "confidence": mean_conf.tolist(),
        "accuracy": accuracy.tolist(),
        "count": counts[filled].astype(int).tolist(),
    }


def confusion(o: Outcomes) -> list[list[int]] | None:
    if o.task != "classification":
        return None
    k = len(o.classes)
    matrix = np.bincount(o.y * k + o.pred, minlength=k * k).reshape(k, k)
    return [[int(v) for v in row] for row in matrix]
