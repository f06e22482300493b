"""Robustness: how much of the metric survives perturbed inputs, and a backdoor probe.

Two perturbations of the evaluation rows (ATLAS AML.M0008, model validation): Gaussian
noise added to every numeric feature, scaled by that feature's standard deviation, and a
share of numeric cells blanked to missing. The drop is measured in the gate metric's own
direction (positive = worse). A model that cannot predict at all on perturbed input (one
that refuses missing values, say) is reported with the reason, and a robustness rule then
refuses it: it was asked to be robust and it is not.

The backdoor probe stamps a user-given trigger (``{"feature": value, …}``) onto every row:
a clean model barely notices; a poisoned one flips many answers to the attacker's class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput, MloopError
from mloop.evaluation._metrics import Outcomes, point
from mloop.evaluation._reference import gap

if TYPE_CHECKING:
    import pandas as pd

    from mloop.models import LoadedModel

Scorer = Callable[["LoadedModel", "pd.DataFrame"], Outcomes]


@dataclass(frozen=True)
class RobustnessCheck:
    name: str
    description: str
    clean: float
    perturbed: float | None
    drop: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class BackdoorProbe:
    trigger: dict[str, Any]
    rows: int
    flip_rate: float
    baseline_flip_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numeric(features: pd.DataFrame) -> list[str]:
    import pandas as pd

    return [
        str(c)
        for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]


def with_noise(features: pd.DataFrame, scale: float, rng: np.random.Generator) -> pd.DataFrame:
    """Gaussian noise of ``scale`` standard deviations on each numeric feature; integer
    features stay integers (rounded), as the model's signature expects them."""
    import pandas as pd

    noisy = features.copy()
    for column in _numeric(features):
        values = features[column].to_numpy(dtype=np.float64)
        std = float(np.nanstd(values))
        moved = values + rng.normal(0.0, scale * std if std > 0 else 0.0, values.shape)
        if pd.api.types.is_integer_dtype(features[column]):
            noisy[column] = pd.Series(np.rint(moved), index=features.index).astype(
                features[column].dtype
            )
        else:
            noisy[column] = moved
    return noisy


def with_missing(features: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """A share ``rate`` of each numeric feature's cells blanked (integers become pandas'
    nullable integers, so the values that remain keep their type)."""
    import pandas as pd

    blanked = features.copy()
    for column in _numeric(features):
        holes = rng.random(len(features)) < rate
        series = features[column]
        if pd.api.types.is_integer_dtype(series):
            series = series.astype("Int64")
        blanked[column] = series.mask(holes)
    return blanked


def robustness(
    model: LoadedModel,
    features: pd.DataFrame,
    score: Scorer,
    *,
    metric: str,
    clean: float,
    noise: float,
    missing: float,
    seed: int,
) -> list[RobustnessCheck]:
    """The metric under each perturbation, next to its clean value."""
    checks = []
    numeric = _numeric(features)
    plans: list[
        tuple[str, str, Callable[[pd.DataFrame, float, np.random.Generator], pd.DataFrame], float]
    ] = []
    if noise > 0:
        plans.append(
            (
                "noise",
                f"Gaussian noise, {noise:g} × std, on {len(numeric)} numeric features",
                with_noise,
                noise,
            )
        )
    if missing > 0:
        plans.append(
            (
                "missing",
                f"{missing:.0%} of numeric cells missing in {len(numeric)} features",
                with_missing,
                missing,
            )
        )
    for name, description, perturb, amount in plans:
        rng = np.random.default_rng([seed, len(name)])
        try:
            value = point(score(model, perturb(features, amount, rng)))[metric]
        except MloopError as exc:
            checks.append(RobustnessCheck(name, description, clean, None, None, exc.message))
            continue
        checks.append(RobustnessCheck(name, description, clean, value, gap(value, clean, metric)))
    return checks


def backdoor_flip_rate(
    model: LoadedModel, features: pd.DataFrame, trigger: Mapping[str, Any], score: Scorer
) -> float:
    """The share of rows whose answer changes when ``trigger`` is stamped on them."""
    missing = [name for name in trigger if name not in features.columns]
    if missing:
        raise InvalidInput(
            f"the backdoor trigger sets {', '.join(map(repr, missing))}, which the model does "
            f"not read; its inputs are {', '.join(map(str, features.columns))}"
        )
    stamped = features.copy()
    for name, value in trigger.items():
        stamped[name] = value
    clean = score(model, features)
    probed = score(model, stamped)
    if clean.task != "classification":
        raise InvalidInput("the backdoor probe needs a classifier (it counts flipped answers)")
    return float(np.mean(clean.pred != probed.pred)) if len(clean) else 0.0
