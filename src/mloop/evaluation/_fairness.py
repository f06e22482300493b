"""Group fairness across a sensitive feature, as Fairlearn defines it.

Demographic-parity difference: the largest gap between groups in the share of rows given
the positive answer. Equalized-odds difference: the larger of the largest gaps in true-
and false-positive rates. Both are 0 for a model that treats every group alike, and are
defined for binary classification (a group with no positive or no negative row has no
TPR or FPR and does not count towards that gap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mloop.evaluation._metrics import Outcomes
from mloop.evaluation._slices import labels_of

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GroupRates:
    count: int
    selection_rate: float
    tpr: float
    fpr: float


@dataclass(frozen=True)
class Fairness:
    """The fairness of one model across the groups of one sensitive feature."""

    feature: str
    groups: dict[str, GroupRates]
    demographic_parity_difference: float
    equalized_odds_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "demographic_parity_difference": _json(self.demographic_parity_difference),
            "equalized_odds_difference": _json(self.equalized_odds_difference),
            "groups": {
                name: {
                    "count": g.count,
                    "selection_rate": _json(g.selection_rate),
                    "tpr": _json(g.tpr),
                    "fpr": _json(g.fpr),
                }
                for name, g in self.groups.items()
            },
        }


def _json(x: float) -> float | None:
    return None if not math.isfinite(x) else x


def _spread(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) - min(finite) if len(finite) >= 2 else 0.0


def fairness(outcomes: Outcomes, column: pd.Series[Any], feature: str) -> Fairness | None:
    """Fairness of binary ``outcomes`` across the values of ``column``; None otherwise."""
    if outcomes.task != "classification" or outcomes.positive is None:
        return None
    groups_of = labels_of(column)
    said = outcomes.pred == outcomes.positive
    truth = outcomes.y == outcomes.positive
    groups: dict[str, GroupRates] = {}
    for group in sorted(set(groups_of.tolist()), key=str):
        rows = groups_of == group
        positives, negatives = truth & rows, ~truth & rows
        groups[str(group)] = GroupRates(
            count=int(rows.sum()),
            selection_rate=float(said[rows].mean()),
            tpr=float(said[positives].mean()) if positives.any() else math.nan,
            fpr=float(said[negatives].mean()) if negatives.any() else math.nan,
        )
    rates = list(groups.values())
    return Fairness(
        feature,
        groups,
        _spread([g.selection_rate for g in rates]),
        max(_spread([g.tpr for g in rates]), _spread([g.fpr for g in rates])),
    )
