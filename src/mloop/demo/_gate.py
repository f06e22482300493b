"""The gate a candidate passes before it is registered: ``mloop.evaluation`` (sliced
metrics with bootstrap intervals, fairness across ``sex``, a stored blessing and an HTML
report).

The gates are saved by name in the metadata store, as a team would keep them: the first
release is held to an absolute bar and must treat women and men alike (there is no
champion yet); a retrained model must beat the champion on fresh labelled data without a
slice regressing. (The retraining pipeline measures no fairness, so its gate asks for
none: a gate fails closed on a rule it cannot check.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from mloop.demo._population import LABEL, SLICES

if TYPE_CHECKING:
    import pandas as pd

    from mloop.demo._narrator import Narrator
    from mloop.evaluation import EvaluationReport

MIN_ROC_AUC = 0.70
MIN_GAIN = 0.01
FIRST_RELEASE_GATE = "credit-first-release"
RETRAIN_GATE = "credit-retrain"
GATES: dict[str, dict[str, Any]] = {
    FIRST_RELEASE_GATE: {
        "metric": "roc_auc",
        "thresholds": {"roc_auc": {"min": MIN_ROC_AUC}},
        "fairness": {"max_demographic_parity_difference": 0.1},
    },
    RETRAIN_GATE: {
        "metric": "roc_auc",
        "min_improvement": MIN_GAIN,
        "require_baseline": True,
        "thresholds": {"roc_auc": {"min": MIN_ROC_AUC}},
        "slices": {"min_rows": 100, "max_regression": 0.03},
    },
}
EVALUATED_SLICES = (*SLICES, "*".join(SLICES))


@dataclass
class GateOutcome:
    """Whether the candidate passed, why, and the report to read (when one was written)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    report: Path | None = None


def save_gates() -> None:
    """Store the demo's two gates by name (the retraining pipeline refers to them so)."""
    from mloop import evaluation

    for name, rules in GATES.items():
        evaluation.save_gate(name, rules)


def gate(
    narrator: Narrator,
    candidate_uri: str,
    data: pd.DataFrame,
    *,
    baseline_uri: str | None,
    report_dir: Path,
    name: str,
) -> GateOutcome:
    """Evaluate ``candidate_uri`` on ``data`` (against ``baseline_uri`` when given)."""
    gate_name = FIRST_RELEASE_GATE if baseline_uri is None else RETRAIN_GATE
    report = _evaluate(narrator, candidate_uri, data, baseline_uri, gate_name)
    show_report(narrator, report)
    path = report.write_html(report_dir / f"evaluation-{name}.html")
    return GateOutcome(bool(report.blessed), list(report.reasons) or ["blessed"], path)


def _evaluate(
    narrator: Narrator,
    candidate_uri: str,
    data: pd.DataFrame,
    baseline_uri: str | None,
    gate_name: str,
) -> EvaluationReport:
    from mloop import evaluation

    done = [0]
    with narrator.progress(f"evaluating (gate {gate_name})", 6) as advance:

        def progress(_stage: str, reached: int, _total: int) -> None:
            if reached > done[0]:
                advance(reached - done[0])
                done[0] = reached

        return evaluation.evaluate(
            candidate_uri,
            data=data,
            label=LABEL,
            baseline=baseline_uri,
            slices=EVALUATED_SLICES,
            sensitive=["sex"],
            gate=gate_name,
            min_slice_rows=50,
            progress=progress,
        )


def show_report(narrator: Narrator, report: EvaluationReport) -> None:
    """The gate metric overall and per single-feature slice, with intervals, candidate
    against baseline; then fairness across ``sex``."""
    metric = report.metric
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(f"  {metric} on {report.rows} held-out rows")
    table.add_column("rows", justify="right")
    table.add_column("candidate [95% interval]", justify="right")
    if report.baseline_overall is not None:
        table.add_column("champion", justify="right")
    rows: list[tuple[str, int, Any, Any]] = [
        (
            "  overall",
            report.rows,
            report.overall.get(metric),
            _get(report.baseline_overall, metric),
        )
    ]
    rows += [
        (f"  {s.key}", s.count, s.metrics.get(metric), _get(s.baseline, metric))
        for s in report.slices
        if "*" not in s.spec
    ]
    for label, count, candidate, baseline in rows:
        cells = [label, str(count), _interval(candidate)]
        if report.baseline_overall is not None:
            cells.append(_value(baseline))
        table.add_row(*cells)
    narrator.show(table)
    for fairness in report.fairness:
        narrator.say(
            f"fairness across {fairness.feature}: demographic parity difference "
            f"{fairness.demographic_parity_difference:.3f}, equalized odds difference "
            f"{fairness.equalized_odds_difference:.3f}"
        )


def _get(metrics: dict[str, Any] | None, name: str) -> Any:
    return None if metrics is None else metrics.get(name)


def _value(metric: Any) -> str:
    if metric is None or not math.isfinite(metric.value):
        return "—"
    return f"{metric.value:.3f}"


def _interval(metric: Any) -> str:
    if metric is None or not math.isfinite(metric.value):
        return "—"
    if not (math.isfinite(metric.low) and math.isfinite(metric.high)):
        return f"{metric.value:.3f}"
    return f"{metric.value:.3f} [{metric.low:.3f}–{metric.high:.3f}]"
