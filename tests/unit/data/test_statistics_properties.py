"""Properties of mergeable statistics: stats(A ∪ B) == stats(A).merge(stats(B)).

Exact fields must agree exactly, moments to 1e-9 relative, quantiles within the KLL
sketch's rank error, category counts exactly while exact (and within the frequent-items
sketch's error once not). Merging is associative and commutative on exact fields, and
statistics survive a round trip through their file format.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import reduce
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.data import _model
from mloop.data._model import FeatureKind
from mloop.data._statistics import DatasetStatistics, FeatureStats, statistics_of_table

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0])
floats = st.one_of(finite, special, st.none())
ints = st.one_of(st.integers(-1000, 1000), st.none())
words = st.one_of(
    st.sampled_from(["", "a", "bb", "ccc", "é", "a b"]), st.text(max_size=4), st.none()
)
bools = st.one_of(st.booleans(), st.none())
int_lists = st.one_of(st.lists(st.integers(-5, 5), max_size=4), st.none())


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 40))
    column = lambda values: st.lists(values, min_size=n, max_size=n)  # noqa: E731
    return pa.table(
        {
            "f": pa.array(draw(column(floats)), pa.float64()),
            "i": pa.array(draw(column(ints)), pa.int64()),
            "s": pa.array(draw(column(words)), pa.string()),
            "b": pa.array(draw(column(bools)), pa.bool_()),
            "d": pa.array(draw(column(words)), pa.string()).dictionary_encode(),
            "l": pa.array(draw(column(int_lists)), pa.list_(pa.int64())),
        }
    )


@st.composite
def tables_and_cuts(draw: st.DrawFn, parts: int = 2) -> tuple[pa.Table, list[pa.Table]]:
    table = draw(tables())
    cuts = sorted(
        draw(st.lists(st.integers(0, table.num_rows), min_size=parts - 1, max_size=parts - 1))
    )
    bounds = [0, *cuts, table.num_rows]
    pieces = [table.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)]
    return table, pieces


def exact_fields(feature: FeatureStats) -> dict[str, Any]:
    """Fields that merge exactly (NaN-free, so == works)."""
    out: dict[str, Any] = {
        "kind": feature.kind,
        "dtype": feature.dtype,
        "count": feature.count,
        "missing": feature.missing,
        "nan": feature.nan,
        "inf": feature.inf,
        "zeros": feature.zeros,
        "min": feature.min,
        "max": feature.max,
        "finite": feature.moments.count,
        "exact": feature.exact,
    }
    if feature.kind is FeatureKind.CATEGORICAL and feature.exact:
        out["frequencies"] = feature.frequencies()
        out["distinct"] = feature.distinct_count
    if feature.kind is FeatureKind.NUMERIC and not math.isnan(feature.distinct_count):
        out["distinct"] = feature.distinct_count
    if feature.lengths is not None:
        out["lengths"] = (feature.lengths.moments.count, feature.lengths.min, feature.lengths.max)
    if feature.values is not None:
        out["values"] = exact_fields(feature.values)
    return out


def exact_view(stats: DatasetStatistics) -> dict[str, Any]:
    return {"rows": stats.num_rows, **{n: exact_fields(f) for n, f in stats.features.items()}}


def assert_moments_close(a: FeatureStats, b: FeatureStats) -> None:
    for ma, mb in [(a.moments, b.moments)] + (
        [(a.lengths.moments, b.lengths.moments)] if a.lengths and b.lengths else []
    ):
        assert ma.count == mb.count
        scale = max(abs(ma.mean), abs(mb.mean), 1.0)
        assert math.isclose(ma.mean, mb.mean, rel_tol=1e-9, abs_tol=1e-9 * scale)
        spread = max(ma.m2, mb.m2, ma.count * scale * scale * 1e-6, 1e-12)
        assert math.isclose(ma.m2, mb.m2, rel_tol=1e-9, abs_tol=1e-9 * spread)
    if a.values is not None and b.values is not None:
        assert_moments_close(a.values, b.values)


def assert_quantiles_within_rank_error(feature: FeatureStats, data: np.ndarray) -> None:
    """Every estimated quantile sits at a true rank within the sketch's rank error."""
    finite_data = np.sort(data[np.isfinite(data)])
    ranks = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    if finite_data.size == 0:
        assert all(math.isnan(q) for q in feature.quantiles(ranks))
        return
    eps = feature.rank_error + 1e-12
    n = finite_data.size
    for rank, q in zip(ranks, feature.quantiles(ranks), strict=True):
        low = np.searchsorted(finite_data, q, side="left") / n
        high = np.searchsorted(finite_data, q, side="right") / n
        assert low - eps <= rank <= high + eps, (rank, q, low, high, eps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_cuts())
def test_merge_of_parts_equals_stats_of_the_whole(case: tuple[pa.Table, list[pa.Table]]) -> None:
    table, (a, b) = case
    whole = statistics_of_table(table)
    merged = statistics_of_table(a).merge(statistics_of_table(b))
    assert exact_view(merged) == exact_view(whole)
    for name, feature in whole.features.items():
        assert_moments_close(feature, merged.features[name])
    for name in ("f", "i"):
        data = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        assert_quantiles_within_rank_error(
            merged.features[name], data[~np.isnan(data)] if name == "i" else data
        )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_cuts(parts=3))
def test_merge_is_associative_and_commutative_on_exact_fields(
    case: tuple[pa.Table, list[pa.Table]],
) -> None:
    _, pieces = case
    a, b, c = (statistics_of_table(p) for p in pieces)
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    swapped = c.merge(a).merge(b)
    assert exact_view(left) == exact_view(right)
    # commutative per feature (the order of features follows the first operand)
    assert exact_view(swapped) == exact_view(left)


@settings(max_examples=100, deadline=None)
@given(tables())
def test_round_trip_through_bytes(table: pa.Table) -> None:
    stats = statistics_of_table(table)
    loaded = DatasetStatistics.from_bytes(stats.to_bytes())
    # not bytes: an HLL sketch's hash set may serialize its entries in another order
    assert loaded.to_dict() == stats.to_dict()
    assert exact_view(loaded) == exact_view(stats)
    assert loaded.merge(loaded).to_dict() == stats.merge(stats).to_dict()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1_000, 30_000),
    parts=st.integers(2, 6),
    distribution=st.sampled_from(["normal", "lognormal", "integers", "bimodal"]),
)
def test_large_merges_keep_quantiles_within_rank_error(
    seed: int, size: int, parts: int, distribution: str
) -> None:
    rng = np.random.default_rng(seed)
    data = {
        "normal": lambda: rng.normal(size=size),
        "lognormal": lambda: rng.lognormal(sigma=2.0, size=size),
        "integers": lambda: rng.integers(0, 20, size).astype(np.float64),
        "bimodal": lambda: np.concatenate(
            [rng.normal(-5, 1, size // 2), rng.normal(5, 1, size - size // 2)]
        ),
    }[distribution]()
    cuts = np.sort(rng.integers(0, size, parts - 1))
    pieces = np.split(data, cuts)
    merged = reduce(
        DatasetStatistics.merge, (statistics_of_table(pa.table({"x": p})) for p in pieces)
    )
    whole = statistics_of_table(pa.table({"x": data}))
    feature = merged.features["x"]
    assert exact_fields(feature) == exact_fields(whole.features["x"])
    assert_moments_close(feature, whole.features["x"])
    assert feature.mean == pytest.approx(data.mean(), rel=1e-9, abs=1e-9)
    assert feature.std == pytest.approx(data.std(), rel=1e-9, abs=1e-9)
    assert_quantiles_within_rank_error(feature, data)
    cdf = feature.cdf([float(np.median(data))])
    assert abs(cdf[0] - np.mean(data < np.median(data))) <= feature.rank_error + 1e-12


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), parts=st.integers(2, 4))
def test_sketched_categories_merge_within_their_error(seed: int, parts: int) -> None:
    rng = np.random.default_rng(seed)
    limit = _model.EXACT_CATEGORY_LIMIT
    values = np.concatenate(
        [
            np.array([f"id{i}" for i in rng.permutation(limit + 2_000)]),
            rng.choice(["hot", "warm"], 20_000, p=[0.7, 0.3]),
        ]
    )
    rng.shuffle(values)
    truth = {"hot": int(np.sum(values == "hot")), "warm": int(np.sum(values == "warm"))}
    pieces = np.array_split(values, parts)
    merged = reduce(
        DatasetStatistics.merge, (statistics_of_table(pa.table({"s": p})) for p in pieces)
    ).features["s"]
    assert not merged.exact
    top = dict(merged.top_k(2))
    for key, count in truth.items():
        assert abs(top[key] - count) <= merged.frequency_error
    distinct = limit + 2_002
    assert abs(merged.distinct_count - distinct) <= 3 * 0.0163 * distinct


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.none()), max_size=60), st.integers(1, 12))
def test_any_floats_give_consistent_summaries(values: list[float | None], bins: int) -> None:
    stats = statistics_of_table(pa.table({"x": pa.array(values, pa.float64())}))
    feature = stats.features["x"]
    assert feature.count == len(values)
    assert feature.missing + feature.nan + feature.inf + feature.finite_count == len(values)
    for histogram in (feature.equi_width_histogram(bins), feature.quantile_histogram(bins)):
        assert sum(c for _, _, c in histogram) == feature.finite_count
    json.dumps(stats.to_dict(), allow_nan=False)
    assert exact_view(DatasetStatistics.from_bytes(stats.to_bytes())) == exact_view(stats)
