"""The parts of a report computed from the answers: per-slice metrics with intervals,
gaps to the reference and their ranking, and the curves the HTML page plots."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.evaluation._bootstrap import MetricValue, with_intervals
from mloop.evaluation._metrics import Outcomes, calibration_points, confusion, roc_points
from mloop.evaluation._reference import gap
from mloop.evaluation._report import SliceResult
from mloop.evaluation._slices import slice_rows

if TYPE_CHECKING:
    import pandas as pd

SCATTER_POINTS = 500


@dataclass(frozen=True)
class Interval:
    """How every bootstrap interval of one evaluation is drawn."""

    resamples: int
    confidence: float
    seed: int

    def of(self, outcomes: Outcomes, key: str) -> dict[str, MetricValue]:
        return with_intervals(
            outcomes, resamples=self.resamples, confidence=self.confidence, seed=self.seed, key=key
        )


def slice_results(
    frame: pd.DataFrame,
    specs: Sequence[str],
    outcomes: Outcomes,
    base: Outcomes | None,
    interval: Interval,
    min_rows: int,
) -> list[SliceResult]:
    found: list[SliceResult] = []
    n = len(frame)
    for spec in specs:
        for part in slice_rows(frame, spec):
            rows = part.rows
            found.append(
                SliceResult(
                    spec=spec,
                    key=part.key,
                    count=int(rows.size),
                    share=rows.size / n,
                    rare=rows.size < min_rows,
                    metrics=interval.of(outcomes.subset(rows), part.key),
                    baseline=None if base is None else interval.of(base.subset(rows), part.key),
                )
            )
    return found


def reference_value(
    table: dict[str, dict[str, float]],
    key: str,
    metric: str,
    baseline: dict[str, MetricValue] | None,
) -> float | None:
    if table:
        return table.get(key, {}).get(metric)
    return None if baseline is None else baseline[metric].value


def with_gap(result: SliceResult, table: dict[str, dict[str, float]], metric: str) -> SliceResult:
    ref = reference_value(table, result.key, metric, result.baseline)
    if ref is None or not math.isfinite(ref):
        return result
    behind = gap(result.metrics[metric].value, ref, metric)
    return replace(result, reference=ref, gap=behind, weighted_gap=behind * result.share)


def priorities(results: list[SliceResult], metric: str) -> list[dict[str, Any]]:
    ranked = [r for r in results if r.weighted_gap is not None and math.isfinite(r.weighted_gap)]
    ranked.sort(key=lambda r: (-(r.weighted_gap or 0.0), r.key))
    return [
        {
            "slice": r.key,
            "count": r.count,
            "share": r.share,
            "metric": metric,
            "candidate": r.metrics[metric].to_dict()["value"],
            "reference": r.reference,
            "gap": r.gap,
            "weighted_gap": r.weighted_gap,
        }
        for r in ranked
    ]


def reference_source(reference: Any, has_baseline: bool) -> str | None:
    if reference is None:
        return "baseline" if has_baseline else None
    if isinstance(reference, Mapping):
        return "table"
    return str(os.fspath(reference))


def curves(outcomes: Outcomes, base: Outcomes | None) -> dict[str, Any]:
    if outcomes.task == "regression":
        rng = np.random.default_rng(0)
        n = len(outcomes)
        rows = np.sort(rng.choice(n, size=min(n, SCATTER_POINTS), replace=False))
        return {
            "scatter": {
                "actual": outcomes.y[rows].astype(float).tolist(),
                "predicted": outcomes.pred[rows].astype(float).tolist(),
            }
        }
    return {
        "roc": {
            "candidate": roc_points(outcomes),
            "baseline": None if base is None else roc_points(base),
        },
        "calibration": {
            "candidate": calibration_points(outcomes),
            "baseline": None if base is None else calibration_points(base),
        },
        "confusion": {"labels": [str(c) for c in outcomes.classes], "matrix": confusion(outcomes)},
    }
