"""Judging a report against a gate: blessed, or refused with every reason at once.

Rules fail closed: a rule the evaluation could not check because an input was missing
(fairness without sensitive features, a backdoor limit without a trigger) refuses, since
the gate's author asked for that guarantee. The two rules that compare with a baseline
(improvement, slice regressions) are skipped with a note when there is none — the first
model of a line has nothing to beat — unless the gate says ``require_baseline``.
"""

from __future__ import annotations

import math

from mloop.evaluation._reference import gap
from mloop.evaluation._report import EvaluationReport
from mloop.evaluation._spec import GateSpec, higher_is_better


def _f(x: float | None) -> str:
    return "undefined" if x is None or not math.isfinite(x) else f"{x:.4g}"


def judge(report: EvaluationReport, spec: GateSpec) -> tuple[bool, list[str], list[str]]:
    """``(blessed, reasons, notes)`` for ``report`` under ``spec``."""
    reasons: list[str] = []
    notes: list[str] = []
    metric = spec.metric or report.metric
    has_baseline = report.baseline_overall is not None
    if spec.require_baseline and not has_baseline:
        reasons.append("the gate requires a baseline to compare with, and none was given")
    if spec.min_improvement is not None:
        if has_baseline:
            reasons += _improvement(report, metric, spec.min_improvement)
        else:
            notes.append("min_improvement not checked: no baseline")
    for name, bound in spec.thresholds.items():
        reasons += _bound(report, name, bound.min, bound.max)
    if spec.slices is not None:
        if not has_baseline:
            notes.append("slice regressions not checked: no baseline")
        elif not report.slices:
            notes.append("slice regressions not checked: no slices were asked for")
        else:
            reasons += _slices(report, metric, spec.slices.min_rows, spec.slices.max_regression)
    if spec.fairness is not None:
        reasons += _fairness(report, spec)
    if spec.robustness is not None:
        reasons += _robustness(report, spec.robustness.max_drop, spec.robustness.perturbations)
    if spec.backdoor is not None:
        if report.backdoor is None:
            reasons.append(
                "the gate limits the backdoor flip rate, but no trigger was given to probe "
                "with (backdoor_trigger= / --backdoor-trigger)"
            )
        elif report.backdoor.flip_rate > spec.backdoor.max_flip_rate:
            reasons.append(
                f"backdoor: the trigger flips {report.backdoor.flip_rate:.1%} of answers, over "
                f"the limit {spec.backdoor.max_flip_rate:.1%}"
            )
    return not reasons, reasons, notes


def _improvement(report: EvaluationReport, metric: str, required: float) -> list[str]:
    assert report.baseline_overall is not None
    candidate = report.overall[metric].value
    baseline = report.baseline_overall[metric].value
    improvement = -gap(candidate, baseline, metric)
    if not math.isfinite(improvement):
        return [
            f"{metric}: undefined on this data (candidate {_f(candidate)}, baseline {_f(baseline)})"
        ]
    if improvement < required:
        better = "higher" if higher_is_better(metric) else "lower"
        return [
            f"{metric}: candidate {_f(candidate)} vs baseline {_f(baseline)}, an improvement of "
            f"{improvement:+.4g} where at least {required:+.4g} ({better} is better) is required"
        ]
    return []


def _bound(
    report: EvaluationReport, metric: str, low: float | None, high: float | None
) -> list[str]:
    value = report.overall[metric].value
    if not math.isfinite(value):
        return [f"{metric}: undefined on this data, so its threshold cannot be met"]
    if low is not None and value < low:
        return [f"{metric}: {_f(value)} is below the threshold {low:g}"]
    if high is not None and value > high:
        return [f"{metric}: {_f(value)} is above the threshold {high:g}"]
    return []


def _slices(report: EvaluationReport, metric: str, min_rows: int, allowed: float) -> list[str]:
    reasons = []
    for found in report.slices:
        if found.count < min_rows or found.baseline is None:
            continue
        candidate = found.metrics[metric].value
        baseline = found.baseline[metric].value
        regression = gap(candidate, baseline, metric)
        if math.isfinite(regression) and regression > allowed:
            reasons.append(
                f"slice {found.key} ({found.count} rows): {metric} {_f(candidate)} vs baseline "
                f"{_f(baseline)}, worse by {regression:.4g} (at most {allowed:g} allowed)"
            )
    return reasons


def _fairness(report: EvaluationReport, spec: GateSpec) -> list[str]:
    assert spec.fairness is not None
    if not report.fairness:
        why = (
            "fairness is measured for binary classifiers"
            if report.task != "classification" or report.classes is None or len(report.classes) != 2
            else "no sensitive features were given (sensitive= / --sensitive COLUMN)"
        )
        return [f"the gate has fairness limits, but they could not be checked: {why}"]
    reasons = []
    limits = (
        (
            "demographic-parity difference",
            "demographic_parity_difference",
            spec.fairness.max_demographic_parity_difference,
        ),
        (
            "equalized-odds difference",
            "equalized_odds_difference",
            spec.fairness.max_equalized_odds_difference,
        ),
    )
    for result in report.fairness:
        for label, attribute, limit in limits:
            value = float(getattr(result, attribute))
            if limit is not None and value > limit:
                reasons.append(
                    f"fairness across {result.feature}: {label} {value:.4g} is over {limit:g}"
                )
    return reasons


def _robustness(report: EvaluationReport, allowed: float, on: tuple[str, ...]) -> list[str]:
    checks = [c for c in report.robustness if c.name in on]
    if not checks:
        return [
            f"the gate limits the robustness drop under {', '.join(on)}, but no such "
            "perturbation was run (noise= / missing= are 0)"
        ]
    reasons = []
    for check in checks:
        if check.error is not None:
            reasons.append(
                f"robustness ({check.description}): the model could not predict: {check.error} "
                f"(if this cannot happen in production, leave {check.name} out of the gate's "
                "robustness.perturbations)"
            )
        elif check.drop is not None and math.isfinite(check.drop) and check.drop > allowed:
            reasons.append(
                f"robustness ({check.description}): {report.metric} falls from {_f(check.clean)} to "
                f"{_f(check.perturbed)}, a drop of {check.drop:.4g} (at most {allowed:g} allowed)"
            )
    return reasons
