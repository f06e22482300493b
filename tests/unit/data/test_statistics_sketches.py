"""The numpy-built KLL sketch of a sorted batch and the pandas-free Arrow-to-numpy path."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.data import _readers
from mloop.data._model import KLL_K, Lengths
from mloop.data._sketches import (
    KLL_NUMPY_MIN,
    QuantileSketch,
    _kll_level_capacity,
    kll_sketch_of_sorted,
)
from mloop.data._statistics import StatisticsBuilder, _prefetched, statistics_of_table


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000, 1_000_000])
def test_level_capacities_match_the_library(n: int) -> None:
    sketch = datasketches.kll_doubles_sketch(KLL_K)
    sketch.update(np.arange(n, dtype=np.float64))
    data = bytes(sketch.serialize())
    num_levels = data[18]
    first_level = struct.unpack_from("<I", data, 20)[0]
    retained = (len(data) - 20 - 4 * num_levels - 16) // 8
    capacity = sum(_kll_level_capacity(KLL_K, num_levels, h) for h in range(num_levels))
    assert first_level + retained == capacity


@pytest.mark.parametrize("n", [KLL_K + 1, KLL_NUMPY_MIN, 12_345, 250_001])
def test_sketch_of_sorted_is_a_valid_kll_within_its_rank_error(n: int) -> None:
    values = np.sort(np.random.default_rng(n).lognormal(0, 1, n))
    sketch = datasketches.kll_doubles_sketch.deserialize(kll_sketch_of_sorted(values))
    assert sketch.n == n
    assert (sketch.get_min_value(), sketch.get_max_value()) == (values[0], values[-1])
    assert sketch.is_estimation_mode()
    assert sketch.get_quantiles([0.0, 1.0]) == [values[0], values[-1]]
    ranks = [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]
    true_ranks = np.searchsorted(values, sketch.get_quantiles(ranks)) / n
    assert np.abs(true_ranks - ranks).max() <= sketch.normalized_rank_error(False)
    # it behaves as any KLL sketch afterwards: updates, merges both ways, serialization
    sketch.update(np.random.default_rng(1).normal(size=5_000))
    other = datasketches.kll_doubles_sketch(KLL_K)
    other.update(values.copy())
    other.merge(sketch)
    sketch.merge(other)
    again = datasketches.kll_doubles_sketch.deserialize(bytes(sketch.serialize()))
    assert again.n == 3 * n + 10_000


def test_update_sorted_matches_update_within_rank_error() -> None:
    rng = np.random.default_rng(7)
    batches = [np.sort(rng.normal(0, 1, size)) for size in (10, 300_000, 5_000, 200_000)]
    everything = np.sort(np.concatenate(batches))
    built = QuantileSketch()
    for batch in batches:
        built.update_sorted(batch)
    assert built.n == everything.size
    ranks = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]
    quantiles = built.quantiles(ranks)
    true_ranks = np.searchsorted(everything, quantiles) / everything.size
    assert np.abs(true_ranks - ranks).max() <= built.rank_error
    restored = QuantileSketch.from_bytes(built.to_bytes())
    assert restored.quantiles(ranks) == quantiles


def test_short_sorted_batches_stay_exact() -> None:
    sketch = QuantileSketch()
    sketch.update_sorted(np.arange(KLL_K, dtype=np.float64))
    assert sketch.is_exact
    assert sketch.quantiles([0.0, 1.0]) == [0.0, KLL_K - 1.0]


@pytest.mark.parametrize(
    "arr",
    [
        pa.array([1.5, -2.0, 3.0], pa.float64()),
        pa.array([1.5, -2.0, 3.0], pa.float32()),
        pa.array([1, -2, 3], pa.int8()),
        pa.array([1, 2, 2**40], pa.int64()),
        pa.array([1, 2, 3], pa.uint16()),
        pa.array([True, False, True, True], pa.bool_()),
        pa.array([0.0, 1.0, 2.0, 3.0, 4.0], pa.float64()).slice(2, 2),
        pa.array([True, False, True, False, False], pa.bool_()).slice(1, 3),
        pa.array([1.0, None, 3.0], pa.float64()),
        pa.array([], pa.float64()),
    ],
)
def test_as_numpy_matches_to_numpy(arr: pa.Array) -> None:
    expected = arr.to_numpy(zero_copy_only=False)
    got = _readers.as_numpy(arr)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_statistics_of_a_file_do_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's to_numpy imports pandas (about 0.2 s); reading a file must not need it."""
    path = tmp_path / "data.parquet"
    table = pa.table(
        {
            "x": pa.array([1.0, None, 2.0]),
            "i": pa.array([1, 2, None], pa.int32()),
            "b": [True, False, None],
            "s": ["a", None, "bb"],
            "l": [[1], None, [2, 3]],
        }
    )
    pq.write_table(table, path)
    code = (
        "import sys\n"
        "from mloop.data._statistics import compute_statistics\n"
        f"stats = compute_statistics({str(path)!r}, executor='inline')\n"
        "assert stats.num_rows == 3, stats.num_rows\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prefetched_batches_keep_order_and_raise_in_place() -> None:
    table = pa.table({"x": pa.array(np.arange(10, dtype=np.float64))})

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=3)
        raise ValueError("broken after the data")

    seen: list[pa.RecordBatch] = []

    def consume() -> None:
        seen.extend(_prefetched(batches()))

    with pytest.raises(ValueError, match="broken after the data"):
        consume()
    builder = StatisticsBuilder()
    for batch in seen:
        builder.add(batch)
    assert builder.result().features["x"].quantiles([0.0, 1.0]) == [0.0, 9.0]
    assert [b.num_rows for b in seen] == [3, 3, 3, 1]


def test_lengths_of_counts_match_lengths_of_the_rows() -> None:
    lengths = np.array([3, 0, 17, 5], dtype=np.int32)
    counts = np.array([4, 1, 2, 9], dtype=np.int64)
    weighted = Lengths.of_counts(lengths, counts)
    expanded = Lengths.of(np.repeat(lengths, counts))
    assert (weighted.min, weighted.max) == (expanded.min, expanded.max) == (0, 17)
    assert weighted.moments.count == expanded.moments.count == 16
    assert weighted.moments.mean == pytest.approx(expanded.moments.mean, rel=1e-12)
    assert weighted.moments.std == pytest.approx(expanded.moments.std, rel=1e-12)
    assert Lengths.of_counts(lengths[:0], counts[:0]) == Lengths()


def test_string_lengths_come_from_distinct_values_with_nulls_and_dictionaries() -> None:
    words = ["a", "bbb", None, "a", "cc", None, "bbb", "bbb"]
    expected = Lengths.of(np.array([1, 3, 1, 2, 3, 3]))
    for column in (pa.array(words), pa.array(words).dictionary_encode()):
        feature = statistics_of_table(pa.table({"s": column})).features["s"]
        assert feature.lengths is not None
        assert (feature.lengths.min, feature.lengths.max) == (1, 3)
        assert feature.lengths.moments.count == expected.moments.count
        assert feature.lengths.moments.mean == pytest.approx(expected.moments.mean)
        assert feature.lengths.moments.std == pytest.approx(expected.moments.std)
