"""Input drift (a window against the previous one) and skew (against the training data).

Both are the data engine's comparison of two ``DatasetStatistics`` (docs/drift.md): a
window's inputs are summarized once, stored with the window, and serve as the next
window's reference; the training side is the statistics stored with the dataset version
the model was trained on, so the training data is never read again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from mloop.data import DatasetStatistics, DriftConfig, DriftReport, detect_drift
from mloop.data._drift_methods import get_drift_method
from mloop.errors import MloopError
from mloop.monitoring._logframes import input_table
from mloop.monitoring._spec import MonitorConfig

LABEL_NAMES = frozenset({"target", "label", "labels", "y", "class"})


@dataclass(frozen=True)
class TrainingReference:
    """The skew reference: ``name@version`` and its statistics (None with the reason)."""

    ref: str | None
    statistics: DatasetStatistics | None
    reason: str | None = None

    def feature_names(self, label: str | None) -> list[str] | None:
        """The training features a tensor's columns are, in order: every column but the
        label (``label``, else one named like a label: target, label, y, class)."""
        if self.statistics is None:
            return None
        skip = {label} if label is not None else LABEL_NAMES
        return [name for name in self.statistics.features if name not in skip]


def training_reference(
    config: MonitorConfig, rows: pl.DataFrame, cache: dict[str, TrainingReference]
) -> TrainingReference:
    """The configured training dataset, else the one the primary model version was
    registered with (its ``dataset_versions``)."""
    ref = config.training_dataset
    if ref is None:
        primary = rows.filter(pl.col("role") == "primary")
        if primary.is_empty():
            return TrainingReference(None, None, "no primary answers in the window")
        model, version = primary.group_by("model", "version").len().sort("len").row(-1)[:2]
        key = f"models:/{model}/{version}"
        if key not in cache:
            cache[key] = _model_training(str(model), int(version))
        return cache[key]
    if ref not in cache:
        cache[ref] = _dataset_statistics(ref)
    return cache[ref]


def _model_training(model: str, version: int) -> TrainingReference:
    from mloop.registry import get_model_version

    try:
        datasets = get_model_version(model, version).dataset_versions
    except MloopError as exc:
        return TrainingReference(None, None, f"model {model} v{version}: {exc.message}")
    if not datasets:
        return TrainingReference(
            None,
            None,
            f"model {model} v{version} has no linked training dataset; log it as a run input "
            "or set training_dataset in the monitor config",
        )
    return _dataset_statistics(datasets[0])


def _dataset_statistics(ref: str) -> TrainingReference:
    from mloop.data import get_dataset_version

    try:
        return TrainingReference(ref, get_dataset_version(ref).statistics())
    except MloopError as exc:
        return TrainingReference(ref, None, exc.message)


def window_statistics(rows: pl.DataFrame, names: list[str] | None) -> DatasetStatistics | None:
    """The statistics of the served requests' inputs (None when there are none)."""
    from mloop.data import statistics_of_table

    served = rows.filter((pl.col("role") != "shadow") & pl.col("inputs").is_not_null())
    table = input_table(served["inputs"].to_list(), names)
    if table.num_rows == 0 or table.num_columns == 0:
        return None
    return statistics_of_table(table)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def summarize(report: DriftReport) -> dict[str, Any]:
    """What is stored per window: per-feature scores, the drifted ones, the largest score
    of the methods where higher means more drift (p-value methods are left out of it)."""
    features: dict[str, float | None] = {}
    largest = 0.0
    for feature in report.features:
        score = _finite(feature.score)
        features[feature.name] = score if score is not None else (1.0 if feature.drifted else None)
        try:
            higher = get_drift_method(feature.method).higher_is_drift
        except MloopError:  # "presence" and "type" verdicts are not registered methods
            higher = True
        if higher and features[feature.name] is not None:
            largest = max(largest, float(features[feature.name] or 0.0))
    return {
        "status": "ok",
        "max_score": largest,
        "share_drifted": report.share_drifted(),
        "drifted": report.drifted,
        "drifted_features": report.drifted_features(),
        "features": features,
        "methods": {f.name: f.method for f in report.features},
        "reference_rows": report.reference_rows,
        "current_rows": report.current_rows,
    }


def not_computed(status: str, reason: str) -> dict[str, Any]:
    return {"status": status, "reason": reason}


def compare(
    reference: DatasetStatistics | None,
    current: DatasetStatistics | None,
    config: DriftConfig,
    min_rows: int,
    *,
    what: str,
) -> dict[str, Any]:
    """Drift or skew of ``current`` against ``reference``, on the features both have."""
    if current is None:
        return not_computed("no_data", "no inputs in this window")
    if reference is None:
        return not_computed("no_reference", f"no {what} to compare with")
    if min(reference.num_rows, current.num_rows) < min_rows:
        return not_computed(
            "too_few_rows",
            f"{min(reference.num_rows, current.num_rows)} rows, fewer than min_rows={min_rows}",
        )
    common = [name for name in current.features if name in reference.features]
    if not common:
        return not_computed(
            "no_common_features",
            f"the window's inputs ({', '.join(list(current.features)[:5])}) share no feature "
            f"with the {what}; name tensor columns with feature_names in the monitor config",
        )
    summary = summarize(
        detect_drift(
            DatasetStatistics(reference.num_rows, {n: reference.features[n] for n in common}),
            DatasetStatistics(current.num_rows, {n: current.features[n] for n in common}),
            config,
        )
    )
    unmatched = sorted(set(current.features) - set(common))
    if unmatched:
        summary["unmatched"] = unmatched
    return summary
