"""Drift methods: how far apart two statistics of one feature are.

Every method, built-in or a user's, registers through :func:`register_drift_method` and
works on statistics only (:class:`~mloop.data._statistics.FeatureStats`), never on rows:
the training side of a skew check is read from the statistics stored with the dataset
version, and a window of serving logs is summarized once and compared many times.

A method returns a :class:`MethodResult` (a score and details). By default a larger score
means more drift and a feature drifts when ``score > threshold``; a method that returns a
p-value registers with ``higher_is_drift=False`` (drift when ``score < threshold``).

Numeric methods read the quantile sketch through ``quantiles`` and ``cdf``; evaluating both
cumulative distributions on the *midpoints* between the union of both sides' quantile
points makes KS and Wasserstein exact whenever the sketches still hold every value (small
data) and keeps them within the sketch's rank error otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mloop.data._model import FeatureKind
from mloop.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from mloop.data._statistics import FeatureStats

Floats = npt.NDArray[np.float64]

#: Rank grid used to trace a quantile function; fine enough that sketches of up to ~500
#: values are traced exactly, and cheap (two sketch queries of 1 024 points).
QUANTILE_POINTS = 1024
#: Bins for binned numeric methods (JS, PSI), cut at the reference's quantiles.
DEFAULT_BINS = 20
#: Additive smoothing for PSI, so an empty bin never makes the score infinite.
PSI_EPSILON = 1e-4
#: Name of the bucket that collects what a frequent-items sketch did not keep.
OTHER_BUCKET = "__other__"


@dataclass(frozen=True)
class MethodResult:
    """What a method found: the score compared with the threshold, plus evidence."""

    score: float
    details: dict[str, Any] = field(default_factory=dict)


MethodFn = Callable[["FeatureStats", "FeatureStats", Mapping[str, Any]], MethodResult]


@dataclass(frozen=True)
class DriftMethod:
    """A registered method: which feature kinds it accepts and its default threshold."""

    name: str
    kinds: frozenset[FeatureKind]
    fn: MethodFn
    default_threshold: float
    higher_is_drift: bool = True
    description: str = ""

    def drifted(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        return score > threshold if self.higher_is_drift else score < threshold


_REGISTRY: dict[str, DriftMethod] = {}


def register_drift_method(
    name: str,
    kinds: FeatureKind | str | tuple[FeatureKind | str, ...] | frozenset[FeatureKind],
    fn: MethodFn,
    *,
    default_threshold: float = 0.1,
    higher_is_drift: bool = True,
    description: str = "",
    replace: bool = False,
) -> DriftMethod:
    """Make ``fn`` available as drift method ``name`` for features of ``kinds``.

    ``fn(reference, current, params)`` receives the two features' statistics and the
    ``params`` mapping from the drift config, and returns a :class:`MethodResult`.
    Registering a taken name raises unless ``replace=True``.
    """
    if not name or not name.replace("_", "").isalnum():
        raise InvalidInput(
            f"drift method name {name!r} is not valid: use letters, digits and underscores"
        )
    if name in _REGISTRY and not replace:
        raise InvalidInput(
            f"drift method {name!r} is already registered: pick another name or pass replace=True"
        )
    raw = (kinds,) if isinstance(kinds, (FeatureKind, str)) else tuple(kinds)
    try:
        parsed = frozenset(FeatureKind(k) for k in raw)
    except ValueError:
        valid = ", ".join(k.value for k in FeatureKind)
        raise InvalidInput(
            f"drift method {name!r} names an unknown feature kind in {raw!r}: use {valid}"
        ) from None
    method = DriftMethod(name, parsed, fn, default_threshold, higher_is_drift, description)
    _REGISTRY[name] = method
    return method


def get_drift_method(name: str) -> DriftMethod:
    """The registered method called ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown drift method {name!r}: use one of {known}") from None


def drift_methods() -> dict[str, DriftMethod]:
    """All registered methods by name (a copy)."""
    return dict(_REGISTRY)


# -- shared pieces ---------------------------------------------------------------------


def finite_count(stats: FeatureStats) -> int:
    """How many finite values the quantile sketch summarizes."""
    return int(stats.finite_count)


def present_count(stats: FeatureStats) -> int:
    """How many rows hold a value (``count`` includes missing rows)."""
    return max(int(stats.count) - int(stats.missing), 0)


def _int_param(params: Mapping[str, Any], key: str, default: int, low: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"drift parameter {key!r} must be an integer >= {low}, got {value!r}")
    return value


def _float_param(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInput(f"drift parameter {key!r} must be a positive number, got {value!r}")
    return float(value)


def _empty_side(
    reference: FeatureStats, current: FeatureStats, worst: float
) -> MethodResult | None:
    """A result when one side has no finite values (or none when both have some)."""
    ref_n, cur_n = finite_count(reference), finite_count(current)
    if ref_n and cur_n:
        return None
    if not ref_n and not cur_n:
        return MethodResult(0.0, {"note": "no finite values on either side"})
    side = "reference" if not ref_n else "current"
    return MethodResult(worst, {"note": f"the {side} has no finite values"})


def _cdf(stats: FeatureStats, points: Floats) -> Floats:
    """Fraction of finite values at or below each point (the sketch's ``cdf``)."""
    if points.size == 0:
        return np.zeros(0)
    return np.asarray(stats.cdf(points.tolist()), dtype=np.float64)[:-1]


def _support(reference: FeatureStats, current: FeatureStats, points: int) -> Floats:
    """Sorted distinct quantile points of both sides (with each side's min and max)."""
    ranks = ((np.arange(points) + 0.5) / points).tolist()
    values = np.concatenate(
        [
            np.asarray(reference.quantiles(ranks), dtype=np.float64),
            np.asarray(current.quantiles(ranks), dtype=np.float64),
            np.asarray([reference.min, reference.max, current.min, current.max], dtype=np.float64),
        ]
    )
    return np.unique(values[np.isfinite(values)])


def _step_differences(
    reference: FeatureStats, current: FeatureStats, points: int
) -> tuple[Floats, Floats]:
    """|F_ref - F_cur| on each gap between support points, and the gaps' widths.

    Between two neighbouring support points neither CDF moves when the support holds every
    value, so evaluating at the midpoint gives the exact value on the whole gap without
    depending on whether the sketch counts a split point as inclusive or exclusive.
    """
    support = _support(reference, current, points)
    if support.size < 2:
        return np.zeros(0), np.zeros(0)
    widths = np.diff(support)
    mids = support[:-1] + widths / 2
    # between neighbouring floats the midpoint rounds onto an end; the right end then stands
    # for the gap, exactly, as the CDF counts the values strictly below a point
    mids = np.where((mids <= support[:-1]) | (mids >= support[1:]), support[1:], mids)
    # neighbouring floats can round to the same midpoint: query each distinct one once
    unique_mids, index = np.unique(mids, return_inverse=True)
    diff = np.abs(_cdf(reference, unique_mids) - _cdf(current, unique_mids))[index]
    return diff, widths


def _reference_bins(reference: FeatureStats, bins: int) -> Floats:
    """Bin edges at the reference's quantiles (equal reference mass per bin)."""
    ranks = (np.arange(1, bins) / bins).tolist()
    edges = np.asarray(reference.quantiles(ranks), dtype=np.float64)
    return np.unique(edges[np.isfinite(edges)])


def _binned_shares(
    reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]
) -> tuple[Floats, Floats, Floats]:
    """Both sides' shares in bins cut at the reference's quantiles, and the edges."""
    bins = _int_param(params, "bins", DEFAULT_BINS, 2)
    edges = _reference_bins(reference, bins)
    ref = np.diff(np.concatenate([[0.0], _cdf(reference, edges), [1.0]]))
    cur = np.diff(np.concatenate([[0.0], _cdf(current, edges), [1.0]]))
    return np.clip(ref, 0.0, None), np.clip(cur, 0.0, None), edges


def category_counts(
    reference: FeatureStats, current: FeatureStats
) -> tuple[list[str], Floats, Floats]:
    """Counts per category on both sides over the union of categories.

    Values a frequent-items sketch did not keep (columns past the exact-count limit) land
    in one ``__other__`` bucket on each side, so the vectors still sum to the present count.
    """
    ref_freq, cur_freq = reference.frequencies(), current.frequencies()
    keys = sorted(set(ref_freq) | set(cur_freq))
    ref = np.asarray([ref_freq.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.asarray([cur_freq.get(k, 0) for k in keys], dtype=np.float64)
    ref_rest = max(float(present_count(reference)) - float(ref.sum()), 0.0)
    cur_rest = max(float(present_count(current)) - float(cur.sum()), 0.0)
    if ref_rest > 0 or cur_rest > 0:
        keys.append(OTHER_BUCKET)
        ref = np.append(ref, ref_rest)
        cur = np.append(cur, cur_rest)
    return keys, ref, cur


def _normalize(counts: Floats) -> Floats:
    total = float(counts.sum())
    return counts / total if total > 0 else counts


def _shares(reference: FeatureStats, current: FeatureStats) -> tuple[list[str], Floats, Floats]:
    keys, ref, cur = category_counts(reference, current)
    return keys, _normalize(ref), _normalize(cur)


def _largest_moves(keys: list[str], ref: Floats, cur: Floats, limit: int = 5) -> dict[str, Any]:
    order = np.argsort(-np.abs(cur - ref), kind="stable")[:limit]
    return {keys[i]: [round(float(ref[i]), 6), round(float(cur[i]), 6)] for i in order}


def js_distance(p: Floats, q: Floats) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); equals scipy's ``jensenshannon(p, q, 2)``."""
    p, q = _normalize(p), _normalize(q)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    value = float(left.sum() + right.sum()) / 2
    return math.sqrt(max(value, 0.0))


def psi(p: Floats, q: Floats, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``Σ (q - p) ln(q / p)`` after additive smoothing."""
    p = (p + epsilon) / (1 + epsilon * p.size)
    q = (q + epsilon) / (1 + epsilon * q.size)
    return float(np.sum((q - p) * np.log(q / p)))


# -- the built-in methods --------------------------------------------------------------


def _linf(
    reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]
) -> MethodResult:
    if (empty := _empty_categories(reference, current)) is not None:
        return empty
    keys, ref, cur = _shares(reference, current)
    moved = np.abs(ref - cur)
    at = int(np.argmax(moved))
    return MethodResult(
        float(moved[at]),
        {
            "category": keys[at],
            "unseen_in_reference": [k for k, r in zip(keys, ref, strict=True) if r == 0][:20],
            "largest_moves": _largest_moves(keys, ref, cur),
        },
    )


def _empty_categories(reference: FeatureStats, current: FeatureStats) -> MethodResult | None:
    ref_n, cur_n = present_count(reference), present_count(current)
    if ref_n and cur_n:
        return None
    if not ref_n and not cur_n:
        return MethodResult(0.0, {"note": "no values on either side"})
    side = "reference" if not ref_n else "current"
    return MethodResult(1.0, {"note": f"the {side} has no values"})


def _jensen_shannon(
    reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]
) -> MethodResult:
    if reference.kind is FeatureKind.CATEGORICAL:
        if (empty := _empty_categories(reference, current)) is not None:
            return empty
        keys, ref, cur = _shares(reference, current)
        return MethodResult(
            js_distance(ref, cur), {"largest_moves": _largest_moves(keys, ref, cur)}
        )
    if (empty := _empty_side(reference, current, 1.0)) is not None:
        return empty
    ref, cur, edges = _binned_shares(reference, current, params)
    return MethodResult(js_distance(ref, cur), {"bins": int(ref.size), "edges": edges.tolist()})


def _psi(reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]) -> MethodResult:
    epsilon = _float_param(params, "epsilon", PSI_EPSILON)
    if reference.kind is FeatureKind.CATEGORICAL:
        if (empty := _empty_categories(reference, current)) is not None:
            return empty
        keys, ref, cur = _shares(reference, current)
        return MethodResult(
            psi(ref, cur, epsilon), {"largest_moves": _largest_moves(keys, ref, cur)}
        )
    if (empty := _empty_side(reference, current, math.inf)) is not None:
        return empty
    ref, cur, edges = _binned_shares(reference, current, params)
    return MethodResult(psi(ref, cur, epsilon), {"bins": int(ref.size), "edges": edges.tolist()})


def _chi_square(
    reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]
) -> MethodResult:
    from scipy import stats as scipy_stats

    if (empty := _empty_categories(reference, current)) is not None:
        pvalue = 1.0 if empty.score == 0 else 0.0
        return MethodResult(pvalue, empty.details)
    _, ref, cur = category_counts(reference, current)
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    statistic = float(cells.sum())
    dof = max(int(np.count_nonzero(table.sum(axis=0))) - 1, 0)
    pvalue = float(scipy_stats.chi2.sf(statistic, dof)) if dof else 1.0
    return MethodResult(pvalue, {"statistic": statistic, "dof": dof, "p_value": pvalue})


def _ks(reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]) -> MethodResult:
    if (empty := _empty_side(reference, current, 1.0)) is not None:
        return empty
    points = _int_param(params, "points", QUANTILE_POINTS, 16)
    diff, _ = _step_differences(reference, current, points)
    return MethodResult(float(diff.max()) if diff.size else 0.0)


def _wasserstein(
    reference: FeatureStats, current: FeatureStats, params: Mapping[str, Any]
) -> MethodResult:
    if (empty := _empty_side(reference, current, math.inf)) is not None:
        return empty
    points = _int_param(params, "points", QUANTILE_POINTS, 16)
    diff, widths = _step_differences(reference, current, points)
    distance = float(np.sum(diff * widths))
    scale, by = float(reference.moments.std), "reference std"
    if not scale > 0:
        scale, by = float(current.moments.std), "current std"
    if not scale > 0:
        scale, by = 1.0, "1 (both sides constant)"
    return MethodResult(distance / scale, {"distance": distance, "normalized_by": by})


register_drift_method(
    "linf",
    FeatureKind.CATEGORICAL,
    _linf,
    default_threshold=0.01,
    description="largest change in any category's share (L-infinity / Chebyshev distance)",
)
register_drift_method(
    "jensen_shannon",
    (FeatureKind.CATEGORICAL, FeatureKind.NUMERIC),
    _jensen_shannon,
    default_threshold=0.1,
    description="Jensen-Shannon distance (base 2); numeric over bins at reference quantiles",
)
register_drift_method(
    "psi",
    (FeatureKind.CATEGORICAL, FeatureKind.NUMERIC),
    _psi,
    default_threshold=0.1,
    description="population stability index; numeric over bins at reference quantiles",
)
register_drift_method(
    "chi_square",
    FeatureKind.CATEGORICAL,
    _chi_square,
    default_threshold=0.05,
    higher_is_drift=False,
    description="p-value of the chi-square test of homogeneity (drift when below threshold)",
)
register_drift_method(
    "ks",
    FeatureKind.NUMERIC,
    _ks,
    default_threshold=0.02,
    description="Kolmogorov-Smirnov statistic: largest gap between the two CDFs",
)
register_drift_method(
    "wasserstein",
    FeatureKind.NUMERIC,
    _wasserstein,
    default_threshold=0.05,
    description="Wasserstein-1 (earth mover's) distance divided by the reference's std",
)

__all__ = [
    "DriftMethod",
    "MethodFn",
    "MethodResult",
    "drift_methods",
    "get_drift_method",
    "register_drift_method",
]
