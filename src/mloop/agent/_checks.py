"""Judging one step: the candidate's window of traffic against the primary's.

The metrics come from monitoring (:func:`mloop.monitoring.window_metrics`, one reading of
the prediction and feedback logs for every consumer); this module only compares them
with the plan's thresholds, so the judgement is a pure function that is easy to test and
to explain: every breach is a sentence with both figures in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.agent._plans import Checks

if TYPE_CHECKING:
    from mloop.monitoring import WindowMetrics


@dataclass(frozen=True)
class Verdict:
    """``enough``: both sides answered ``min_requests``; ``breaches``: what failed (only
    judged when there is enough); ``figures``: what was compared, for the record."""

    enough: bool
    breaches: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    shortfall: str | None = None

    @property
    def passed(self) -> bool:
        return self.enough and not self.breaches


def _summary(metrics: WindowMetrics | None) -> dict[str, Any]:
    if metrics is None:
        return {"count": 0}
    return {
        "count": metrics.count,
        "errors": metrics.errors,
        "error_rate": metrics.error_rate,
        "latency_p99_ms": metrics.latency_p99_ms,
        "labelled": metrics.labelled,
        "online_metric": metrics.online_metric,
        "metric_name": metrics.metric_name,
        "output_distribution": metrics.output_distribution,
    }


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def judge(
    checks: Checks, candidate: WindowMetrics | None, primary: WindowMetrics | None, role: str
) -> Verdict:
    """Compare the candidate (in ``role``: shadow or canary) with the primary."""
    from mloop.monitoring import distribution_divergence

    figures: dict[str, Any] = {"candidate": _summary(candidate), "primary": _summary(primary)}
    have = (candidate.count if candidate else 0, primary.count if primary else 0)
    if min(have) < checks.min_requests:
        shortfall = (
            f"not enough traffic: {have[0]} {role} and {have[1]} primary requests, "
            f"{checks.min_requests} needed of each"
        )
        return Verdict(enough=False, figures=figures, shortfall=shortfall)
    assert candidate is not None
    assert primary is not None
    breaches: list[str] = []

    limit = checks.max_error_rate_increase
    if limit is not None and candidate.error_rate - primary.error_rate > limit:
        breaches.append(
            f"error rate {_pct(candidate.error_rate)} ({candidate.errors} of "
            f"{candidate.count}) against the primary's {_pct(primary.error_rate)}: more than "
            f"{limit * 100:g} points higher"
        )

    ratio = checks.max_p99_latency_ratio
    ours, theirs = candidate.latency_p99_ms, primary.latency_p99_ms
    if role == "shadow":
        # A shadow answers in the server's low-priority child process, in batches: its
        # latency is a batched predict's, not a request's, so the canary steps judge it.
        ratio = None
        figures["latency_judged"] = False
    slower = (
        ratio is not None
        and ours is not None
        and theirs is not None
        and ours > theirs * ratio
        and ours - theirs > checks.latency_tolerance_ms
    )
    if slower:
        breaches.append(
            f"p99 latency {ours:.1f} ms against the primary's {theirs:.1f} ms: more than "
            f"{ratio:g} times as slow"
        )

    divergence = distribution_divergence(candidate.output_distribution, primary.output_distribution)
    figures["divergence"] = divergence
    if checks.max_divergence is not None and divergence > checks.max_divergence:
        breaches.append(
            f"answers diverge from the primary's: Jensen-Shannon distance {divergence:.3f}, "
            f"more than {checks.max_divergence:g}"
        )

    breaches.extend(_online(checks, candidate, primary))
    return Verdict(enough=True, breaches=breaches, figures=figures)


def _online(checks: Checks, candidate: WindowMetrics, primary: WindowMetrics) -> list[str]:
    """The online metric from feedback labels, once both sides have enough of them."""
    ours, theirs = candidate.online_metric, primary.online_metric
    if ours is None or theirs is None or candidate.metric_name != primary.metric_name:
        return []
    if min(candidate.labelled, primary.labelled) < checks.min_labelled:
        return []
    if candidate.metric_name == "mae":
        ratio = checks.max_mae_ratio
        if ratio is not None and ours > theirs * ratio:
            return [
                f"mean absolute error {ours:.4g} against the primary's {theirs:.4g} (from "
                f"{candidate.labelled} and {primary.labelled} labels): more than {ratio:g} "
                "times as large"
            ]
        return []
    delta = checks.min_online_metric_delta
    if delta is not None and ours - theirs < delta:
        return [
            f"accuracy {_pct(ours)} against the primary's {_pct(theirs)} (from "
            f"{candidate.labelled} and {primary.labelled} labels): more than "
            f"{-delta * 100:g} points lower"
        ]
    return []


__all__ = ["Verdict", "judge"]
