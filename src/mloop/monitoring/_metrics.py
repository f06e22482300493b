"""What one window of traffic looked like, per model version and role.

``window_metrics`` is the one reading of the logs that monitoring jobs, rollout checks and
performance triggers share: software metrics (requests, errors, latency, throughput), the
distribution of answers, and the online metric once feedback labels arrived — joined by
request id, the latest label winning, whenever it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl

from mloop.config import Settings, get_settings
from mloop.errors import InvalidInput
from mloop.monitoring._logframes import (
    distribution,
    is_regression,
    label_key,
    outputs_of,
    predictions_per_request,
)

Member = tuple[str, int, str]
"""(model, version, role) of the members that answered."""

FEEDBACK_MARGIN_MS = 86_400_000
"""Feedback is read from this long before the window: a label's ``time`` may be given by
the client and predate the answer a little (clock skew, event time)."""


@dataclass(frozen=True)
class WindowMetrics:
    """One member's (or the served traffic's) requests in a window.

    ``errors`` counts requests answered with a 4xx/5xx after routing (``server_errors``
    the 5xx); ``output_distribution`` is the share per label, or per numeric bin for a
    regression (see :func:`~mloop.monitoring._logframes.value_bin`); ``online_metric`` is
    accuracy (classification) or mean absolute error (regression, ``metric_name``
    ``"mae"``) over the ``labelled`` answers, None without labels. ``outcomes`` counts
    the user-outcome events per name.
    """

    count: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    throughput_per_s: float
    output_distribution: dict[str, float]
    labelled: int
    online_metric: float | None
    metric_name: str | None = None
    server_errors: int = 0
    answered: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowData:
    """The log rows of one window with their latest feedback (``label``, ``outcome``)."""

    deployment: str
    start_ms: int
    end_ms: int
    rows: pl.DataFrame
    """The log rows with a ``_row`` index into ``predicted``."""
    predicted: list[list[Any]]
    """Each row's predicted values, decoded once (empty for a failed request)."""


def check_window(start_ms: int, end_ms: int) -> None:
    if end_ms <= start_ms:
        raise InvalidInput(
            f"the window ends ({end_ms}) before it starts ({start_ms}); pass start_ms < end_ms"
        )


def load_window(
    deployment: str, start_ms: int, end_ms: int, *, settings: Settings | None = None
) -> WindowData:
    """Read the window's predictions and join each request's latest feedback."""
    from mloop.serving._feedback import latest_feedback, read_feedback
    from mloop.serving._predlog import read_predictions

    check_window(start_ms, end_ms)
    settings = settings or get_settings()
    predictions = read_predictions(None, deployment, start_ms, end_ms, settings=settings)
    feedback = read_feedback(
        None, deployment, since=start_ms - FEEDBACK_MARGIN_MS, settings=settings
    )
    left = pl.from_arrow(predictions)
    right = pl.from_arrow(latest_feedback(feedback))
    assert isinstance(left, pl.DataFrame)
    assert isinstance(right, pl.DataFrame)
    right = right.select("request_id", "label", "outcome")
    rows = left.join(right, on="request_id", how="left", maintain_order="left").with_row_index(
        "_row"
    )
    predicted = predictions_per_request(rows["outputs"].to_list())
    return WindowData(deployment, start_ms, end_ms, rows, predicted)


def _percentile(values: np.ndarray[Any, Any], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _online_metric(first: list[Any], labels: list[str | None]) -> tuple[int, float | None, str]:
    pairs = [
        (predicted, orjson.loads(label))
        for predicted, label in zip(first, labels, strict=True)
        if label is not None and predicted is not None
    ]
    if not pairs:
        return 0, None, "accuracy"
    predicted = [p for p, _ in pairs]
    if is_regression(predicted):
        errors = [abs(float(p) - float(y)) for p, y in pairs if isinstance(y, int | float)]
        return len(pairs), (float(np.mean(errors)) if errors else None), "mae"
    hits = [label_key(p) == label_key(y) for p, y in pairs]
    return len(pairs), float(np.mean(hits)), "accuracy"


def metrics_of(
    rows: pl.DataFrame, start_ms: int, end_ms: int, predicted: list[list[Any]]
) -> WindowMetrics:
    """The metrics of ``rows`` (any subset of a window's rows; ``predicted`` is the
    window's decoded answers, indexed by the ``_row`` column)."""
    count = rows.height
    statuses = rows["status"].to_numpy() if count else np.zeros(0, np.int32)
    errors = int((statuses >= 400).sum())
    answered_rows = rows.filter(pl.col("status") < 400)
    outputs = outputs_of([predicted[i] for i in answered_rows["_row"].to_list()])
    labelled, metric, name = _online_metric(outputs.first, answered_rows["label"].to_list())
    latencies = rows["latency_ms"].drop_nulls().to_numpy()
    outcomes: dict[str, int] = {}
    for outcome in rows["outcome"].drop_nulls().to_list():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return WindowMetrics(
        count=count,
        errors=errors,
        error_rate=errors / count if count else 0.0,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p99_ms=_percentile(latencies, 99),
        throughput_per_s=count / ((end_ms - start_ms) / 1000),
        output_distribution=distribution(outputs.values),
        labelled=labelled,
        online_metric=metric,
        metric_name=name if labelled else None,
        server_errors=int((statuses >= 500).sum()),
        answered=answered_rows.height,
        outcomes=dict(sorted(outcomes.items())),
    )


def members_of(data: WindowData) -> dict[Member, WindowMetrics]:
    found: dict[Member, WindowMetrics] = {}
    keys = data.rows.select("model", "version", "role").unique(maintain_order=True)
    for model, version, role in keys.iter_rows():
        subset = data.rows.filter(
            (pl.col("model") == model) & (pl.col("version") == version) & (pl.col("role") == role)
        )
        found[(str(model), int(version), str(role))] = metrics_of(
            subset, data.start_ms, data.end_ms, data.predicted
        )
    return dict(sorted(found.items()))


def served_rows(data: WindowData) -> pl.DataFrame:
    """The rows clients saw answers from: every role but shadows."""
    return data.rows.filter(pl.col("role") != "shadow")


def window_metrics(
    deployment: str, start_ms: int, end_ms: int, *, settings: Settings | None = None
) -> dict[Member, WindowMetrics]:
    """Metrics of ``deployment``'s requests with ``start_ms <= time < end_ms``, keyed by
    ``(model, version, role)``; members that answered nothing in the window are absent."""
    return members_of(load_window(deployment, start_ms, end_ms, settings=settings))


def distribution_divergence(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two distributions given as
    shares per key (labels or bins; missing keys are 0). 0 when both are empty, 1 when
    exactly one is: no answers at all is as different as it gets."""
    from mloop.data._drift_methods import js_distance

    keys = sorted(set(a) | set(b))
    p = np.array([float(a.get(k, 0.0)) for k in keys])
    q = np.array([float(b.get(k, 0.0)) for k in keys])
    if (p < 0).any() or (q < 0).any():
        raise InvalidInput("distribution shares must not be negative")
    if not p.sum() and not q.sum():
        return 0.0
    if not p.sum() or not q.sum():
        return 1.0
    return min(1.0, js_distance(p, q))
