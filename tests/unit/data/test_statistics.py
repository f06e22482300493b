"""Statistics of small, known data: every number checked against numpy or by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from mloop.data import _executors, _model
from mloop.data._executors import (
    InlineExecutor,
    available_executors,
    get_executor,
    register_executor,
)
from mloop.data._model import FeatureKind, Moments
from mloop.data._statistics import (
    DatasetStatistics,
    FeatureStats,
    compute_statistics,
    statistics_of_table,
)
from mloop.errors import ConfigError, InvalidInput


def stats_of(**columns: object) -> DatasetStatistics:
    return statistics_of_table(pa.table(columns))


def test_numeric_exact_fields_match_numpy() -> None:
    values = [1.5, -2.0, 0.0, 7.25, None, 0.0, 3.0]
    feature = stats_of(x=pa.array(values, pa.float64())).features["x"]
    present = np.array([v for v in values if v is not None])
    assert feature.kind is FeatureKind.NUMERIC
    assert feature.dtype == "double"
    assert (feature.count, feature.missing, feature.zeros) == (7, 1, 2)
    assert (feature.min, feature.max) == (-2.0, 7.25)
    assert feature.mean == pytest.approx(present.mean(), rel=1e-12)
    assert feature.std == pytest.approx(present.std(), rel=1e-12)
    assert feature.distinct_count == 5
    assert feature.avg_length is None


def test_nan_and_inf_are_counted_apart_from_finite_values() -> None:
    feature = stats_of(x=[1.0, math.nan, math.inf, -math.inf, 3.0, None]).features["x"]
    assert (feature.count, feature.missing, feature.nan, feature.inf) == (6, 1, 1, 2)
    assert feature.finite_count == 2
    assert (feature.min, feature.max, feature.mean) == (1.0, 3.0, 2.0)
    assert feature.quantiles([0.0, 1.0]) == [1.0, 3.0]
    assert sum(c for _, _, c in feature.equi_width_histogram(4)) == 2


def test_integers_and_timestamps_are_numeric() -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2, 3, None], pa.int32()),
            "t": pa.array([0, 1_000_000, None, None], pa.timestamp("us")),
            "d": pa.array([1, 3], pa.decimal128(5, 2)).cast(pa.decimal128(5, 2)).take([0, 1, 1, 0]),
        }
    )
    stats = statistics_of_table(table)
    assert stats.features["i"].mean == 2.0
    assert stats.features["t"].max == 1_000_000.0
    assert stats.features["d"].kind is FeatureKind.NUMERIC
    assert stats.features["d"].mean == 2.0


def test_quantiles_are_exact_for_small_data_and_within_rank_error_for_large() -> None:
    small = stats_of(x=[float(v) for v in range(101)]).features["x"]
    assert small.quantiles([0.0, 0.5, 1.0]) == [0.0, 50.0, 100.0]
    assert small.rank_error == 0.0

    rng = np.random.default_rng(7)
    values = rng.normal(size=200_000)
    big = stats_of(x=values).features["x"]
    assert 0 < big.rank_error < 0.01
    ordered = np.sort(values)
    for rank, estimate in zip(
        [0.01, 0.25, 0.5, 0.75, 0.99], big.quantiles([0.01, 0.25, 0.5, 0.75, 0.99]), strict=True
    ):
        true_rank = np.searchsorted(ordered, estimate) / values.size
        assert abs(true_rank - rank) <= big.rank_error


def test_cdf_follows_kll_semantics() -> None:
    feature = stats_of(x=[1.0, 2.0, 2.0, 3.0]).features["x"]
    assert feature.cdf([2.0]) == [0.25, 1.0]  # values < 2, then everything
    assert feature.cdf([0.0, 10.0]) == [0.0, 1.0, 1.0]
    with pytest.raises(InvalidInput, match="strictly increasing"):
        feature.cdf([2.0, 1.0])


def test_histograms_sum_to_the_finite_count() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.exponential(size=50_000), [math.nan] * 10])
    feature = stats_of(x=values).features["x"]
    for histogram in (feature.equi_width_histogram(10), feature.quantile_histogram(10)):
        assert sum(count for _, _, count in histogram) == 50_000
        assert histogram[0][0] == feature.min
        assert histogram[-1][1] == feature.max
        assert all(low < high for low, high, _ in histogram)
    exact = stats_of(x=[0.0, 1.0, 2.0, 3.0]).features["x"].equi_width_histogram(3)
    assert exact == [(0.0, 1.0, 1), (1.0, 2.0, 1), (2.0, 3.0, 2)]
    assert stats_of(x=[5.0, 5.0]).features["x"].equi_width_histogram() == [(5.0, 5.0, 2)]


def test_quantile_histogram_collapses_ties() -> None:
    feature = stats_of(x=[0.0] * 90 + [1.0] * 10).features["x"]
    # deciles are 0 (x9) and 1 (x2): one bin, closed on the right, holds everything
    assert feature.quantile_histogram(10) == [(0.0, 1.0, 100)]


def test_categorical_counts_top_k_and_lengths() -> None:
    values = ["b", "a", "b", "", None, "ccc", "b", "a"]
    feature = stats_of(s=values).features["s"]
    assert feature.kind is FeatureKind.CATEGORICAL
    assert (feature.count, feature.missing) == (8, 1)
    assert feature.exact
    assert feature.frequencies() == {"b": 3, "a": 2, "": 1, "ccc": 1}
    assert feature.top_k(2) == [("b", 3), ("a", 2)]
    assert feature.distinct_count == 4
    present = [v for v in values if v is not None]
    assert feature.avg_length == pytest.approx(sum(map(len, present)) / len(present))
    assert feature.lengths is not None
    assert (feature.lengths.min, feature.lengths.max) == (0, 3)
    with pytest.raises(InvalidInput, match="numeric"):
        feature.quantiles([0.5])


def test_booleans_and_dictionary_columns_are_categorical() -> None:
    table = pa.table(
        {
            "flag": pa.array([True, False, True, None]),
            "dict": pa.array(["x", "y", "x", None]).dictionary_encode(),
        }
    )
    stats = statistics_of_table(table)
    assert stats.features["flag"].frequencies() == {"true": 2, "false": 1}
    assert stats.features["flag"].avg_length is None
    assert stats.features["dict"].kind is FeatureKind.CATEGORICAL
    assert stats.features["dict"].frequencies() == {"x": 2, "y": 1}
    assert stats.features["dict"].avg_length == 1.0


def test_many_categories_switch_to_sketches() -> None:
    limit = _model.EXACT_CATEGORY_LIMIT
    values = [f"id{i}" for i in range(limit + 500)] + ["hot"] * 5000
    feature = stats_of(s=values).features["s"]
    assert not feature.exact
    assert feature.top_k(1)[0][0] == "hot"
    assert abs(feature.top_k(1)[0][1] - 5000) <= feature.frequency_error
    assert feature.distinct_count == pytest.approx(limit + 501, rel=0.05)
    assert feature.to_dict()["distinct_exact"] is False


def test_list_columns_summarize_lengths_and_items() -> None:
    lists = pa.array([[1, 2], [], None, [3, 4, 5]], pa.list_(pa.int64()))
    feature = statistics_of_table(pa.table({"l": lists})).features["l"]
    assert feature.kind is FeatureKind.LIST
    assert (feature.count, feature.missing) == (4, 1)
    assert feature.avg_length == pytest.approx(5 / 3)
    assert feature.lengths is not None
    assert (feature.lengths.min, feature.lengths.max) == (0, 3)
    assert feature.values is not None
    assert feature.values.mean == 3.0
    assert feature.distinct_count == 5
    strings = pa.array([["a"], ["a", "b"]], pa.list_(pa.string()))
    inner = statistics_of_table(pa.table({"l": strings})).features["l"].values
    assert inner is not None
    assert inner.frequencies() == {"a": 2, "b": 1}


def test_struct_columns_are_flattened() -> None:
    table = pa.table({"s": pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}])})
    stats = statistics_of_table(table)
    assert list(stats.features) == ["s.a", "s.b"]
    assert stats.features["s.b"].missing == 1


def test_all_null_column_adopts_the_type_seen_elsewhere() -> None:
    empty = statistics_of_table(pa.table({"x": pa.nulls(3)}))
    full = stats_of(x=[1.0, 2.0])
    merged = empty.merge(full)
    assert merged.features["x"].kind is FeatureKind.NUMERIC
    assert (merged.features["x"].count, merged.features["x"].missing) == (5, 3)
    assert full.merge(empty).features["x"].dtype == "double"


def test_merge_of_a_column_present_on_one_side_counts_missing() -> None:
    left = stats_of(a=[1, 2], b=["x", "y"])
    right = stats_of(a=[3])
    merged = left.merge(right)
    assert merged.num_rows == 3
    assert list(merged.features) == ["a", "b"]
    assert (merged.features["b"].count, merged.features["b"].missing) == (3, 1)
    assert merged.features["b"].frequencies() == {"x": 1, "y": 1}
    reverse = right.merge(left)
    assert (reverse.features["b"].count, reverse.features["b"].missing) == (3, 1)


def test_merge_rejects_conflicting_kinds_and_names() -> None:
    with pytest.raises(InvalidInput, match="make the column's type the same"):
        stats_of(a=[1.0]).merge(stats_of(a=["x"]))
    left, right = stats_of(a=[1]), stats_of(b=[1])
    with pytest.raises(InvalidInput, match="cannot merge"):
        left.features["a"].merge(right.features["b"])


def test_merge_does_not_change_its_inputs() -> None:
    left, right = stats_of(a=[1.0, 2.0], s=["x", "y"]), stats_of(a=[3.0], s=["x"])
    before = left.to_bytes()
    left.merge(right)
    assert left.to_bytes() == before


def test_moments_merge_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1e6, 1, 1000), rng.normal(1e6, 2, 333)

    def of(x: np.ndarray) -> Moments:
        return Moments(x.size, float(x.mean()), float(((x - x.mean()) ** 2).sum()))

    merged = of(a).merge(of(b))
    both = np.concatenate([a, b])
    assert merged.count == both.size
    assert merged.mean == pytest.approx(both.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(both.var(), rel=1e-9)
    assert math.isnan(Moments().std)


def test_to_dict_is_json_and_complete() -> None:
    stats = stats_of(
        x=[1.0, 2.0, None], s=["a", "bb", "a"], e=pa.array([None, None, None], pa.float64())
    )
    summary = json.loads(json.dumps(stats.to_dict(), allow_nan=False))
    x = summary["features"]["x"]
    for key in (
        "count",
        "missing",
        "zeros",
        "min",
        "max",
        "mean",
        "std",
        "quantiles",
        "equi_width_histogram",
        "quantile_histogram",
        "distinct",
    ):
        assert key in x
    assert set(x["quantiles"]) == {"0", "0.01", "0.25", "0.5", "0.75", "0.99", "1"}
    s = summary["features"]["s"]
    assert s["top_k"] == [["a", 2], ["bb", 1]]
    assert s["avg_length"] == pytest.approx(4 / 3)
    e = summary["features"]["e"]
    assert e["mean"] is None
    assert e["quantiles"]["0.5"] is None


def test_round_trip_through_bytes() -> None:
    table = pa.table(
        {
            "x": [1.0, math.nan, 2.0],
            "s": ["a", None, "b"],
            "l": pa.array([[1], None, [2, 3]], pa.list_(pa.int64())),
        }
    )
    stats = statistics_of_table(table)
    loaded = DatasetStatistics.from_bytes(stats.to_bytes())
    assert loaded.to_dict() == stats.to_dict()
    assert loaded.to_bytes() == stats.to_bytes()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x04garbage", "not JSON"),
        (b"[1, 2]", "format marker"),
        (b'{"format": "mloop.statistics", "format_version": 99}', "version 99"),
        (
            b'{"format": "mloop.statistics", "format_version": 1, "num_rows": -1, "features": []}',
            "malformed",
        ),
    ],
)
def test_from_bytes_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        DatasetStatistics.from_bytes(data)


def test_from_bytes_rejects_corrupt_sketches() -> None:
    document = json.loads(stats_of(x=[1.0, 2.0]).to_bytes())
    document["features"][0]["quantiles"] = "AAAA"
    with pytest.raises(InvalidInput, match="corrupt"):
        DatasetStatistics.from_bytes(json.dumps(document).encode())
    document["features"][0]["quantiles"] = "not base64!"
    with pytest.raises(InvalidInput, match="base64"):
        DatasetStatistics.from_bytes(json.dumps(document).encode())


def test_feature_stats_api_on_empty_numeric() -> None:
    feature = FeatureStats.for_type("x", pa.float64())
    assert feature.equi_width_histogram() == []
    assert all(math.isnan(q) for q in feature.quantiles([0.5]))
    assert feature.frequencies() == {}


def test_compute_statistics_accepts_pandas_and_polars() -> None:
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    expected = stats_of(x=[1.0, 2.0], s=["a", "b"]).to_dict()
    frame = {"x": [1.0, 2.0], "s": ["a", "b"]}
    from_pandas = compute_statistics(pd.DataFrame(frame), executor="inline").to_dict()
    from_polars = compute_statistics(pl.DataFrame(frame), executor="inline").to_dict()
    for result in (from_pandas, from_polars):
        assert result["features"]["x"] == expected["features"]["x"]
        assert result["features"]["s"]["top_k"] == expected["features"]["s"]["top_k"]


def test_compute_statistics_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    compute_statistics(
        pa.table({"x": [1, 2, 3]}), executor="inline", progress=lambda d, t: calls.append((d, t))
    )
    assert calls[0] == (0, 3)
    assert calls[-1] == (3, 3)


def test_unknown_input_type_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="cannot compute statistics of a int"):
        compute_statistics(42)


def test_executor_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_executors, "_REGISTRY", dict(_executors._REGISTRY))
    assert {"inline", "local", "ray"} <= set(available_executors())
    with pytest.raises(ConfigError, match="unknown executor 'nope'"):
        get_executor("nope")
    seen: list[str] = []

    def factory(setting: str) -> InlineExecutor:
        seen.append(setting)
        return InlineExecutor()

    register_executor("mine", factory)
    monkeypatch.setenv("MLOOP_EXECUTOR", "mine://somewhere")
    stats = compute_statistics(pa.table({"x": [1, 2]}))
    assert stats.num_rows == 2
    assert seen == ["mine://somewhere"]
    with pytest.raises(ConfigError):
        register_executor("a://b", factory)


def test_ray_executor_without_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'mloop\[ray\]'"):
        get_executor("ray://head:10001")


def test_numeric_distinct_is_exact_until_the_limit() -> None:
    few = stats_of(x=[1.0, 2.0, 2.0, 3.0]).features["x"]
    assert (few.exact, few.distinct_count) == (True, 3.0)
    many = stats_of(x=np.arange(_model.EXACT_CATEGORY_LIMIT + 1, dtype=np.float64)).features["x"]
    assert not many.exact
    assert math.isnan(many.distinct_count)
    assert many.to_dict()["distinct"] is None
    half = _model.EXACT_CATEGORY_LIMIT // 2 + 1
    a = stats_of(x=np.arange(half, dtype=np.float64))
    b = stats_of(x=np.arange(half, 2 * half, dtype=np.float64))
    assert a.features["x"].exact
    assert not a.merge(b).features["x"].exact


def test_batches_that_start_all_missing_take_the_later_type() -> None:
    from mloop.data._statistics import StatisticsBuilder

    builder = StatisticsBuilder()
    builder.add(pa.table({"x": pa.nulls(2), "l": pa.array([[], None], pa.list_(pa.null()))}))
    builder.add(pa.table({"x": [1.5, 2.5], "l": pa.array([[1], [2, 3]], pa.list_(pa.int64()))}))
    stats = builder.result()
    x, lists = stats.features["x"], stats.features["l"]
    assert (x.kind, x.dtype, x.count, x.missing, x.mean) == (
        FeatureKind.NUMERIC,
        "double",
        4,
        2,
        2.0,
    )
    assert lists.values is not None
    assert lists.values.kind is FeatureKind.NUMERIC
    assert lists.values.mean == 2.0
    with pytest.raises(InvalidInput, match="changed from double to string"):
        builder.add(pa.table({"x": ["oops"]}))


def test_interval_columns_do_not_break_statistics() -> None:
    table = pa.table({"i": pa.array([(1, 2, 3), None], pa.month_day_nano_interval())})
    feature = statistics_of_table(table).features["i"]
    assert (feature.kind, feature.count, feature.missing) == (FeatureKind.CATEGORICAL, 2, 1)


def test_mixed_type_pandas_column_is_invalid_input() -> None:
    pd = pytest.importorskip("pandas")
    with pytest.raises(InvalidInput, match="give every column a single type"):
        compute_statistics(pd.DataFrame({"a": [1, "x"]}))


def test_values_near_the_float_limit() -> None:
    stats = stats_of(x=[1e308, -1e308, 1.7e308])
    feature = stats.features["x"]
    assert (feature.min, feature.max) == (-1e308, 1.7e308)
    assert math.isinf(feature.std)
    assert sum(c for _, _, c in feature.equi_width_histogram(4)) == 3
    json.dumps(stats.to_dict(), allow_nan=False)
    loaded = DatasetStatistics.from_bytes(stats.to_bytes())
    assert math.isinf(loaded.features["x"].moments.m2)
