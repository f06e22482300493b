"""The gate a candidate passes before it is registered: ``mloop.evaluation`` when it is
installed, otherwise a plain comparison the demo says is a stand-in.

The first release is held to an absolute bar (no champion yet); a retrained model must
beat the champion on fresh labelled data, overall and without a slice regressing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.demo._population import FEATURES, LABEL

if TYPE_CHECKING:
    import pandas as pd

    from mloop.demo._narrator import Narrator

MIN_ROC_AUC = 0.70
MIN_GAIN = 0.01


@dataclass
class GateOutcome:
    """Whether the candidate passed, why, and the report to read (when one was written)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    blessing_recorded: bool = False


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
    narrator.missing(
        "evaluation gate (mloop.evaluation)",
        "comparing ROC-AUC on held-out rows directly; no blessing is recorded",
    )
    return _compare(candidate_uri, data, baseline_uri)


def _compare(candidate_uri: str, data: pd.DataFrame, baseline_uri: str | None) -> GateOutcome:
    from sklearn.metrics import roc_auc_score

    import mloop

    features = data[list(FEATURES)]
    candidate = mloop.load_model(candidate_uri)
    auc = float(roc_auc_score(data[LABEL], candidate.predict_proba(features)[:, 1]))
    metrics = {"roc_auc": auc}
    if baseline_uri is None:
        passed = auc >= MIN_ROC_AUC
        verdict = "≥" if passed else "<"
        return GateOutcome(passed, [f"ROC-AUC {auc:.3f} {verdict} {MIN_ROC_AUC:.2f}"], metrics)
    baseline = mloop.load_model(baseline_uri)
    champion_auc = float(roc_auc_score(data[LABEL], baseline.predict_proba(features)[:, 1]))
    metrics["baseline_roc_auc"] = champion_auc
    gain = auc - champion_auc
    passed = gain >= MIN_GAIN
    return GateOutcome(
        passed,
        [
            f"ROC-AUC {auc:.3f} vs champion {champion_auc:.3f}: "
            f"{gain:+.3f} ({'≥' if passed else '<'} {MIN_GAIN:+.2f} required)"
        ],
        metrics,
    )
