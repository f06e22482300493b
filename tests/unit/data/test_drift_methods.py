"""Each drift method against a direct computation (scipy or the formula written out).

Small samples keep the quantile sketch exact, so numeric methods must match scipy to
float precision; on a larger sample the sketch estimates, and the result must stay within
the sketch's rank error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from mloop.data._drift_methods import (
    DEFAULT_BINS,
    MethodResult,
    drift_methods,
    get_drift_method,
    register_drift_method,
)
from mloop.data._model import FeatureKind
from mloop.data._statistics import FeatureStats, statistics_of_table
from mloop.errors import ConfigError, InvalidInput


def feature(values: Any, name: str = "x") -> FeatureStats:
    return statistics_of_table(pa.table({name: values})).features[name]


def score(method: str, ref: FeatureStats, cur: FeatureStats, **params: Any) -> MethodResult:
    return get_drift_method(method).fn(ref, cur, params)


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(0, 1, 300), rng.normal(0.3, 1.3, 250)


@pytest.fixture(scope="module")
def discrete() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    return rng.poisson(3, 200).astype(float), rng.poisson(3.6, 180).astype(float)


def reference_bins(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Shares per bin [e_i, e_i+1) with open ends: the written-out binning."""
    index = np.searchsorted(np.asarray(edges), values, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def written_psi(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    p = (p + eps) / (1 + eps * p.size)
    q = (q + eps) / (1 + eps * q.size)
    return float(np.sum((q - p) * np.log(q / p)))


# -- numeric, exact sketches -------------------------------------------------------------


@pytest.mark.parametrize("data", ["samples", "discrete"])
def test_ks_matches_scipy(data: str, request: pytest.FixtureRequest) -> None:
    a, b = request.getfixturevalue(data)
    got = score("ks", feature(a), feature(b)).score
    assert got == pytest.approx(scipy_stats.ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("data", ["samples", "discrete"])
def test_wasserstein_matches_scipy_normalized_by_reference_std(
    data: str, request: pytest.FixtureRequest
) -> None:
    a, b = request.getfixturevalue(data)
    ref = feature(a)
    result = score("wasserstein", ref, feature(b))
    distance = scipy_stats.wasserstein_distance(a, b)
    assert result.details["distance"] == pytest.approx(distance, rel=1e-9)
    assert float(ref.moments.std) == pytest.approx(np.std(a), rel=1e-9)
    assert result.score == pytest.approx(distance / np.std(a), rel=1e-9)


@pytest.mark.parametrize("data", ["samples", "discrete"])
def test_numeric_jensen_shannon_over_reference_quantile_bins(
    data: str, request: pytest.FixtureRequest
) -> None:
    a, b = request.getfixturevalue(data)
    result = score("jensen_shannon", feature(a), feature(b))
    edges = result.details["edges"]
    assert len(edges) <= DEFAULT_BINS - 1
    assert set(edges) <= set(a.tolist())  # cut at reference values ...
    p, q = reference_bins(edges, a), reference_bins(edges, b)
    if data == "samples":  # ... holding about equal reference mass
        assert np.allclose(p, 1 / DEFAULT_BINS, atol=2 / a.size)
    assert result.score == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_numeric_psi_written_out(samples: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = samples
    result = score("psi", feature(a), feature(b), bins=10)
    edges = result.details["edges"]
    assert len(edges) == 9
    expected = written_psi(reference_bins(edges, a), reference_bins(edges, b))
    assert result.score == pytest.approx(expected, rel=1e-12)


small_samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=120
)


@settings(max_examples=40, deadline=None)
@given(small_samples, small_samples)
def test_ks_and_wasserstein_exact_on_any_small_sample(a: list[float], b: list[float]) -> None:
    ref, cur = feature(a), feature(b)
    ks = score("ks", ref, cur).score
    # the two-sample KS statistic written out (scipy's p-value warns on tiny samples)
    points = np.sort(np.asarray(a + b))
    ecdf_a = np.searchsorted(np.sort(a), points, side="right") / len(a)
    ecdf_b = np.searchsorted(np.sort(b), points, side="right") / len(b)
    assert ks == pytest.approx(float(np.max(np.abs(ecdf_a - ecdf_b))), abs=1e-12)
    distance = score("wasserstein", ref, cur).details["distance"]
    expected = scipy_stats.wasserstein_distance(a, b)
    assert distance == pytest.approx(expected, rel=1e-9, abs=1e-9 * (1 + max(map(abs, a + b))))


def test_identical_numeric_scores_zero(samples: tuple[np.ndarray, np.ndarray]) -> None:
    a, _ = samples
    for method in ("ks", "wasserstein", "jensen_shannon", "psi"):
        assert score(method, feature(a), feature(a)).score == pytest.approx(0.0, abs=1e-12)


def test_numeric_methods_ignore_missing_nan_and_inf() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan, np.inf])
    b = np.array([1.0, 2.0, 3.0, 4.0])
    ref = feature(pa.array([*a, None], pa.float64()))
    assert score("ks", ref, feature(b)).score == 0.0
    assert score("wasserstein", ref, feature(b)).score == 0.0


def test_one_side_without_values() -> None:
    empty = feature(pa.array([None, None], pa.float64()))
    full = feature([1.0, 2.0])
    assert score("ks", full, empty).score == 1.0
    assert score("wasserstein", empty, empty).score == 0.0
    assert score("wasserstein", full, empty).score == float("inf")


def test_constant_reference_normalizes_by_current_std() -> None:
    result = score("wasserstein", feature([5.0] * 10), feature([5.0, 7.0] * 5))
    assert result.details["normalized_by"] == "current std"
    assert result.details["distance"] == pytest.approx(1.0)


# -- numeric, estimated sketches --------------------------------------------------------


def test_sketched_numeric_within_rank_error() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 1, 60_000), rng.normal(0.1, 1.1, 50_000)
    ref, cur = feature(a), feature(b)
    assert not ref.exact or ref.kind is FeatureKind.NUMERIC
    ks = score("ks", ref, cur).score
    assert ks == pytest.approx(scipy_stats.ks_2samp(a, b).statistic, abs=0.01)
    w = score("wasserstein", ref, cur).details["distance"]
    assert w == pytest.approx(scipy_stats.wasserstein_distance(a, b), abs=0.02)


# -- categorical -------------------------------------------------------------------------

REF = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
CUR = ["a"] * 40 + ["b"] * 30 + ["c"] * 20 + ["new"] * 10


def shares(values: list[str], keys: list[str]) -> np.ndarray:
    return np.array([values.count(k) for k in keys], dtype=float) / len(values)


def test_linf_counts_unseen_categories() -> None:
    result = score("linf", feature(REF), feature(CUR))
    assert result.score == pytest.approx(0.10)
    assert result.details["category"] in {"a", "new"}  # both moved by 10 points
    only_new = score("linf", feature(["a"] * 10), feature(["a"] * 7 + ["z"] * 3))
    assert only_new.score == pytest.approx(0.3)
    assert only_new.details["unseen_in_reference"] == ["z"]


def test_categorical_jensen_shannon_matches_scipy() -> None:
    keys = ["a", "b", "c", "new"]
    expected = jensenshannon(shares(REF, keys), shares(CUR, keys), base=2)
    assert score("jensen_shannon", feature(REF), feature(CUR)).score == pytest.approx(expected)


def test_categorical_psi_written_out() -> None:
    keys = ["a", "b", "c", "new"]
    expected = written_psi(shares(REF, keys), shares(CUR, keys))
    assert score("psi", feature(REF), feature(CUR)).score == pytest.approx(expected, rel=1e-12)


def test_chi_square_matches_contingency_test() -> None:
    table = np.array([[50, 30, 20, 0], [40, 30, 20, 10]])
    statistic, pvalue, dof, _ = scipy_stats.chi2_contingency(table, correction=False)
    result = score("chi_square", feature(REF), feature(CUR))
    assert result.details["statistic"] == pytest.approx(statistic)
    assert result.details["dof"] == dof
    assert result.score == pytest.approx(pvalue)
    method = get_drift_method("chi_square")
    assert method.drifted(result.score, 0.05) == bool(pvalue < 0.05)


def test_chi_square_goodness_of_fit_agrees_when_no_new_categories() -> None:
    cur = ["a"] * 45 + ["b"] * 35 + ["c"] * 20
    result = score("chi_square", feature(REF), feature(cur))
    table = np.array([[50, 30, 20], [45, 35, 20]])
    assert result.details["statistic"] == pytest.approx(
        scipy_stats.chi2_contingency(table, correction=False)[0]
    )


def test_categorical_missing_values_are_not_a_category() -> None:
    ref = feature(pa.array(["a", "b", None, None], pa.string()))
    cur = feature(pa.array(["a", "b"], pa.string()))
    assert score("linf", ref, cur).score == 0.0


# -- registry ----------------------------------------------------------------------------


def test_builtins_register_through_the_public_hook() -> None:
    methods = drift_methods()
    assert {"linf", "jensen_shannon", "psi", "chi_square", "ks", "wasserstein"} <= set(methods)
    assert methods["linf"].kinds == frozenset({FeatureKind.CATEGORICAL})
    assert methods["ks"].kinds == frozenset({FeatureKind.NUMERIC})


def test_register_a_third_party_method() -> None:
    def mean_gap(ref: FeatureStats, cur: FeatureStats, params: Mapping[str, Any]) -> MethodResult:
        return MethodResult(abs(float(cur.moments.mean) - float(ref.moments.mean)))

    register_drift_method("test_mean_gap", "numeric", mean_gap, default_threshold=0.5)
    try:
        got = get_drift_method("test_mean_gap")
        assert got.fn(feature([1.0, 2.0]), feature([3.0, 4.0]), {}).score == 2.0
        with pytest.raises(InvalidInput, match="already registered"):
            register_drift_method("test_mean_gap", "numeric", mean_gap)
        register_drift_method("test_mean_gap", "numeric", mean_gap, replace=True)
    finally:
        from mloop.data import _drift_methods

        _drift_methods._REGISTRY.pop("test_mean_gap", None)


def test_register_rejects_bad_kind_and_name() -> None:
    def fn(ref: FeatureStats, cur: FeatureStats, params: Mapping[str, Any]) -> MethodResult:
        return MethodResult(0.0)

    with pytest.raises(InvalidInput, match="unknown feature kind"):
        register_drift_method("test_x", "tensor", fn)
    with pytest.raises(InvalidInput, match="not valid"):
        register_drift_method("bad name", "numeric", fn)


def test_unknown_method_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"use one of .*linf"):
        get_drift_method("nope")


def test_bad_parameter_is_named() -> None:
    with pytest.raises(InvalidInput, match="'bins'"):
        score("jensen_shannon", feature([1.0, 2.0]), feature([1.0, 2.0]), bins=1)
