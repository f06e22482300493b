"""One column's mergeable summary (:class:`FeatureStats`): exact counts, moments and
min/max, and the sketches (quantiles, distinct values, frequent items) that keep it small
whatever the size of the column. It is updated one Arrow chunk at a time with vectorized
calls, merges with another column's summary, and round-trips through the versioned
statistics file (:mod:`._model`). :mod:`._statistics` builds data-set statistics from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mloop.data import _readers
from mloop.data._model import (
    EXACT_CATEGORY_LIMIT,
    GENERIC_DTYPE,
    FeatureKind,
    FeatureState,
    Lengths,
    LengthState,
    Moments,
    b64decode,
    b64encode,
    kind_of,
    merge_optional,
    moments_of,
    moments_state,
)
from mloop.data._sketches import DistinctSketch, FrequentItemsSketch, QuantileSketch
from mloop.errors import InvalidInput

SUMMARY_QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
NULL_DTYPE = "null"


@dataclass(eq=False)
class FeatureStats:
    """Statistics of one column. Build with :func:`statistics_of_table`, combine with merge.

    ``count`` is every row seen (missing included); numeric fields (``nan``, ``inf``,
    ``zeros``, ``min``, ``max``, ``moments``) describe finite values only, so one stray
    infinity cannot turn a mean into ``inf``. ``exact`` says whether category counts are
    exact (categorical) or whether distinct values are still tracked exactly (numeric).
    """

    name: str
    kind: FeatureKind
    dtype: str
    count: int = 0
    missing: int = 0
    nan: int = 0
    inf: int = 0
    zeros: int = 0
    min: float | None = None
    max: float | None = None
    moments: Moments = field(default_factory=Moments)
    exact: bool = True
    lengths: Lengths | None = None
    values: FeatureStats | None = None
    _quantiles: QuantileSketch | None = field(default=None, repr=False)
    _numeric_distinct: set[float] | None = field(default=None, repr=False)
    _counts: dict[str, int] | None = field(default=None, repr=False)
    _frequent: FrequentItemsSketch | None = field(default=None, repr=False)
    _distinct: DistinctSketch | None = field(default=None, repr=False)

    @classmethod
    def empty(
        cls, name: str, kind: FeatureKind, dtype: str, *, value_type: pa.DataType | None = None
    ) -> FeatureStats:
        """Statistics of zero rows, ready to be updated or merged."""
        stats = cls(name=name, kind=kind, dtype=dtype)
        if kind is FeatureKind.NUMERIC:
            stats._quantiles = QuantileSketch()
            stats._numeric_distinct = set()
        elif kind is FeatureKind.CATEGORICAL:
            stats._counts = {}
            stats._distinct = DistinctSketch()
        else:
            stats.lengths = Lengths()
            if value_type is not None:
                stats.values = FeatureStats.empty(
                    f"{name}[]",
                    kind_of(value_type),
                    str(value_type),
                    value_type=_list_value_type(value_type),
                )
        return stats

    @classmethod
    def for_type(cls, name: str, dtype: pa.DataType) -> FeatureStats:
        return cls.empty(name, kind_of(dtype), str(dtype), value_type=_list_value_type(dtype))

    @property
    def has_values(self) -> bool:
        return self.count > self.missing

    # -- reading --------------------------------------------------------------------------

    @property
    def finite_count(self) -> int:
        return self.moments.count

    @property
    def mean(self) -> float:
        return self.moments.mean if self.moments.count else math.nan

    @property
    def std(self) -> float:
        return self.moments.std

    def _sketch(self) -> QuantileSketch:
        if self._quantiles is None:
            raise InvalidInput(
                f"feature {self.name!r} is {self.kind.value}; quantiles, CDFs and histograms "
                "need a numeric feature"
            )
        return self._quantiles

    @property
    def rank_error(self) -> float:
        """Normalized rank error of quantiles/CDF values (0 while the sketch is exact)."""
        return self._sketch().rank_error

    def quantiles(self, ranks: Sequence[float]) -> list[float]:
        """Values at the given ranks in [0, 1] of the finite values (NaN when none)."""
        if any(not 0.0 <= r <= 1.0 for r in ranks):
            raise InvalidInput(f"quantile ranks must lie in [0, 1], got {list(ranks)}")
        return self._sketch().quantiles(ranks)

    def cdf(self, split_points: Sequence[float]) -> list[float]:
        """Fractions of finite values below each split point, then 1.0 (KLL ``get_cdf``)."""
        points = [float(p) for p in split_points]
        if any(not math.isfinite(p) for p in points) or any(
            a >= b for a, b in itertools.pairwise(points)
        ):
            raise InvalidInput(f"split points must be finite and strictly increasing, got {points}")
        return self._sketch().cdf(points)

    def _histogram(self, edges: list[float]) -> list[tuple[float, float, int]]:
        n = self.finite_count
        inner = edges[1:-1]
        cumulative = [0, *(round(c * n) for c in self._sketch().cdf(inner)[:-1]), n]
        return [
            (edges[i], edges[i + 1], max(0, cumulative[i + 1] - cumulative[i]))
            for i in range(len(edges) - 1)
        ]

    def equi_width_histogram(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """(low, high, count) over [min, max] in equal widths; counts sum to finite values.

        Bins are half-open [low, high) except the last; counts come from the KLL sketch, so
        they are exact while the sketch is and within its rank error times n otherwise.
        """
        self._check_bins(bins)
        if self.min is None or self.max is None:
            return []
        if self.min == self.max:
            return [(self.min, self.max, self.finite_count)]
        low, high = self.min, self.max  # blended, not low + i * width: no overflow near 1e308
        edges = [low * (1 - i / bins) + high * (i / bins) for i in range(bins + 1)]
        edges[0], edges[-1] = self.min, self.max
        return self._histogram(_strictly_increasing(edges))

    def quantile_histogram(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """Bins bounded by quantiles (about equal counts); ties collapse into fewer bins."""
        self._check_bins(bins)
        if self.min is None or self.max is None:
            return []
        edges = self.quantiles([i / bins for i in range(bins + 1)])
        edges[0], edges[-1] = self.min, self.max
        edges = _strictly_increasing(edges)
        if len(edges) < 2:
            return [(self.min, self.max, self.finite_count)]
        return self._histogram(edges)

    def _check_bins(self, bins: int) -> None:
        self._sketch()
        if bins < 1:
            raise InvalidInput(f"a histogram needs at least one bin, got {bins}")

    def frequencies(self) -> dict[str, int]:
        """Category counts, most frequent first: exact when ``exact``, else sketch estimates."""
        if self._counts is not None:
            counts = self._counts
        elif self._frequent is not None:
            counts = self._frequent.estimates()
        else:
            return {}
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def top_k(self, k: int = 10) -> list[tuple[str, int]]:
        return list(self.frequencies().items())[:k]

    @property
    def frequency_error(self) -> int:
        """Largest error of a category count, in rows (0 while exact)."""
        return 0 if self._frequent is None else self._frequent.max_error

    @property
    def distinct_count(self) -> float:
        """Distinct non-missing values: exact when ``exact``, else an HLL estimate.

        Numeric columns track distinct values exactly up to ``EXACT_CATEGORY_LIMIT`` and
        report NaN beyond (hashing every number would cost more than the rest together);
        list columns report the distinct items.
        """
        if self.kind is FeatureKind.LIST:
            return self.values.distinct_count if self.values is not None else math.nan
        if self.kind is FeatureKind.NUMERIC:
            return (
                float(len(self._numeric_distinct))
                if self._numeric_distinct is not None
                else math.nan
            )
        if self._counts is not None:
            return float(len(self._counts))
        return self._distinct.estimate if self._distinct is not None else math.nan

    @property
    def avg_length(self) -> float | None:
        """Mean length of strings (characters) or lists (items); None for other columns."""
        if self.lengths is None or self.lengths.moments.count == 0:
            return None
        return self.lengths.moments.mean

    # -- building -------------------------------------------------------------------------

    def update(self, arr: pa.Array | pa.ChunkedArray) -> None:
        """Add one column chunk of this feature's type (in place: only while building)."""
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        for chunk in chunks:
            if kind_of(chunk.type) is not self.kind and not pa.types.is_null(chunk.type):
                raise InvalidInput(
                    f"column {self.name!r} changed type to {chunk.type} within one source"
                )
            self.count += len(chunk)
            self.missing += chunk.null_count
            if chunk.null_count == len(chunk):
                continue
            if self.kind is FeatureKind.NUMERIC:
                self._update_numeric(chunk)
            elif self.kind is FeatureKind.CATEGORICAL:
                self._update_categorical(chunk)
            else:
                self._update_list(chunk)

    def _update_numeric(self, chunk: pa.Array) -> None:
        values = _readers.numeric_values(chunk.drop_null() if chunk.null_count else chunk)
        if pa.types.is_floating(chunk.type):
            finite = np.isfinite(values)
            n_finite = int(np.count_nonzero(finite))
            if n_finite != values.size:
                n_nan = int(np.count_nonzero(np.isnan(values)))
                self.nan += n_nan
                self.inf += values.size - n_finite - n_nan
                values = values[finite]
        if values.size == 0:
            return
        # Sorted first: np.sort releases the GIL (columns sort in parallel threads), the KLL
        # update of sorted input is three times faster, and min, max and distinct values
        # come for free. KLL's error bound holds for any input order.
        values = np.sort(values)
        self.zeros += int(values.size - np.count_nonzero(values))
        low, high = float(values[0]), float(values[-1])
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308 overflow: inf
            mean = float(values.mean())
            dev = values - mean
            batch = Moments(int(values.size), mean, float(np.einsum("i,i->", dev, dev)))
        self.moments = self.moments.merge(batch)
        assert self._quantiles is not None
        self._quantiles.update_sorted(values)
        if self._numeric_distinct is not None:
            self._track_numeric_distinct(values)

    def _track_numeric_distinct(self, ordered: npt.NDArray[np.float64]) -> None:
        seen = self._numeric_distinct
        assert seen is not None
        first = np.empty(ordered.size, dtype=bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        unique = ordered[first]
        if unique.size <= EXACT_CATEGORY_LIMIT:
            seen.update(unique.tolist())
        if unique.size > EXACT_CATEGORY_LIMIT or len(seen) > EXACT_CATEGORY_LIMIT:
            self._numeric_distinct = None
            self.exact = False

    def _update_categorical(self, chunk: pa.Array) -> None:
        if pa.types.is_null(chunk.type):
            return
        counted = pc.value_counts(chunk)
        keys_arr = counted.field("values")
        counts_np = _readers.as_numpy(counted.field("counts"))
        valid = keys_arr.is_valid()
        if keys_arr.null_count:
            keys_arr = keys_arr.filter(valid)
            counts_np = counts_np[_readers.as_numpy(valid)]
        keys = _readers.category_keys(keys_arr)
        counts = counts_np.tolist()
        assert self._distinct is not None
        self._distinct.update_many(keys)
        self._add_counts(zip(keys, counts, strict=True))
        # lengths of the distinct values weighted by their counts: no pass over the rows
        lengths = _readers.string_lengths(keys_arr)
        if lengths is not None:
            batch = Lengths.of_counts(_readers.as_numpy(lengths), counts_np)
            self.lengths = batch if self.lengths is None else self.lengths.merge(batch)

    def _add_counts(self, items: Iterable[tuple[str, int]]) -> None:
        if self._counts is None:
            assert self._frequent is not None
            self._frequent.update_counts(items)
            return
        counts = self._counts
        for key, n in items:
            counts[key] = counts.get(key, 0) + n
        if len(counts) > EXACT_CATEGORY_LIMIT:
            self._frequent = FrequentItemsSketch()
            self._frequent.update_counts(counts)
            self._counts = None
            self.exact = False

    def _update_list(self, chunk: pa.Array) -> None:
        if pa.types.is_map(chunk.type):
            offsets = _readers.as_numpy(chunk.offsets)
            lengths = np.diff(offsets)[_readers.as_numpy(chunk.is_valid())]
        else:
            lengths = _readers.as_numpy(pc.list_value_length(chunk).drop_null())
            if self.values is not None:
                flat = pc.list_flatten(chunk)
                self.values = adapt_feature(self.values, self.values.name, flat.type, 0)
                self.values.update(flat)
        batch = Lengths.of(lengths)
        self.lengths = batch if self.lengths is None else self.lengths.merge(batch)

    # -- merging --------------------------------------------------------------------------

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Statistics of both inputs' rows together; neither input is changed."""
        if other.name != self.name:
            raise InvalidInput(f"cannot merge statistics of {self.name!r} with {other.name!r}")
        left, right = self, other
        if left.kind is not right.kind or NULL_DTYPE in (left.dtype, right.dtype):
            if not left.has_values:
                left = right._empty_like(left.count, left.missing)
            elif not right.has_values:
                right = left._empty_like(right.count, right.missing)
            else:
                raise InvalidInput(
                    f"column {self.name!r} holds {left.kind.value} values ({left.dtype}) in one "
                    f"part of the data and {right.kind.value} values ({right.dtype}) in another; "
                    "make the column's type the same everywhere"
                )
        dtype = left.dtype if left.dtype == right.dtype else GENERIC_DTYPE[left.kind]
        out = FeatureStats(
            name=self.name,
            kind=left.kind,
            dtype=dtype,
            count=left.count + right.count,
            missing=left.missing + right.missing,
            nan=left.nan + right.nan,
            inf=left.inf + right.inf,
            zeros=left.zeros + right.zeros,
            min=merge_optional(min, left.min, right.min),
            max=merge_optional(max, left.max, right.max),
            moments=left.moments.merge(right.moments),
        )
        if left.lengths is not None or right.lengths is not None:
            out.lengths = (left.lengths or Lengths()).merge(right.lengths or Lengths())
        if left.kind is FeatureKind.NUMERIC:
            assert left._quantiles is not None
            assert right._quantiles is not None
            out._quantiles = left._quantiles.merged(right._quantiles)
            if left._numeric_distinct is not None and right._numeric_distinct is not None:
                union = left._numeric_distinct | right._numeric_distinct
                out._numeric_distinct = union if len(union) <= EXACT_CATEGORY_LIMIT else None
            out.exact = out._numeric_distinct is not None
        elif left.kind is FeatureKind.CATEGORICAL:
            left._merge_categories_into(out, right)
        elif left.values is not None and right.values is not None:
            out.values = left.values.merge(right.values)
        else:
            out.values = left.values or right.values
        return out

    def _merge_categories_into(self, out: FeatureStats, other: FeatureStats) -> None:
        assert self._distinct is not None
        assert other._distinct is not None
        out._distinct = self._distinct.merged(other._distinct)
        if self._counts is not None and other._counts is not None:
            out._counts = dict(self._counts)
            out._add_counts(other._counts.items())
            return
        sketch = (self._frequent or FrequentItemsSketch()).merged(
            other._frequent or FrequentItemsSketch()
        )
        sketch.update_counts(self._counts or {})
        sketch.update_counts(other._counts or {})
        out._frequent, out._counts, out.exact = sketch, None, False

    def _empty_like(self, count: int, missing: int) -> FeatureStats:
        """Statistics of ``count`` rows, ``missing`` of them missing, of this feature's kind."""
        empty = FeatureStats.empty(self.name, self.kind, self.dtype)
        empty.count, empty.missing = count, missing
        if self.values is not None:
            empty.values = self.values._empty_like(0, 0)
        return empty

    # -- output ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary for reports and the CLI (not the mergeable state)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
            "distinct": _finite_or_none(self.distinct_count),
            "distinct_exact": self._distinct_exact(),
        }
        if self.kind is FeatureKind.NUMERIC:
            ranks = SUMMARY_QUANTILES
            out |= {
                "nan": self.nan,
                "inf": self.inf,
                "zeros": self.zeros,
                "min": self.min,
                "max": self.max,
                "mean": _finite_or_none(self.mean),
                "std": _finite_or_none(self.std),
                "quantiles": {
                    format(r, "g"): _finite_or_none(q)
                    for r, q in zip(ranks, self.quantiles(ranks), strict=True)
                },
                "rank_error": self.rank_error,
                "equi_width_histogram": [list(b) for b in self.equi_width_histogram()],
                "quantile_histogram": [list(b) for b in self.quantile_histogram()],
            }
        elif self.kind is FeatureKind.CATEGORICAL:
            out |= {
                "exact": self.exact,
                "top_k": [list(item) for item in self.top_k()],
                "frequency_error": self.frequency_error,
            }
        if self.lengths is not None:
            out |= {
                "avg_length": self.avg_length,
                "min_length": self.lengths.min,
                "max_length": self.lengths.max,
            }
        if self.values is not None:
            out["values"] = self.values.to_dict()
        return out

    def _distinct_exact(self) -> bool:
        if self.kind is FeatureKind.LIST:
            return self.values._distinct_exact() if self.values is not None else False
        if self.kind is FeatureKind.NUMERIC:
            return self._numeric_distinct is not None
        return self._counts is not None

    def to_state(self) -> FeatureState:
        """The complete mergeable state, as stored in statistics files."""
        return FeatureState(
            name=self.name,
            kind=self.kind,
            dtype=self.dtype,
            count=self.count,
            missing=self.missing,
            nan=self.nan,
            inf=self.inf,
            zeros=self.zeros,
            min=self.min,
            max=self.max,
            moments=moments_state(self.moments),
            quantiles=b64encode(self._quantiles.to_bytes())
            if self._quantiles is not None
            else None,
            numeric_distinct=sorted(self._numeric_distinct)
            if self._numeric_distinct is not None
            else None,
            counts=dict(self._counts) if self._counts is not None else None,
            frequent=b64encode(self._frequent.to_bytes()) if self._frequent is not None else None,
            distinct=b64encode(self._distinct.to_bytes()) if self._distinct is not None else None,
            lengths=LengthState(
                moments=moments_state(self.lengths.moments),
                min=self.lengths.min,
                max=self.lengths.max,
            )
            if self.lengths is not None
            else None,
            values=self.values.to_state() if self.values is not None else None,
        )

    @classmethod
    def from_state(cls, state: FeatureState) -> FeatureStats:
        """Rebuild from a validated state; contradictions raise InvalidInput."""
        where = f"feature {state.name!r} in the statistics file"
        if state.missing > state.count:
            raise InvalidInput(f"{where} has more missing values than rows; the file is corrupt")
        stats = cls(
            name=state.name,
            kind=state.kind,
            dtype=state.dtype,
            count=state.count,
            missing=state.missing,
            nan=state.nan,
            inf=state.inf,
            zeros=state.zeros,
            min=state.min,
            max=state.max,
            moments=moments_of(state.moments),
        )
        if state.lengths is not None:
            stats.lengths = Lengths(
                moments_of(state.lengths.moments), state.lengths.min, state.lengths.max
            )
        if state.kind is FeatureKind.NUMERIC:
            if state.quantiles is None:
                raise InvalidInput(f"{where} has no quantile sketch; the file is corrupt")
            stats._quantiles = QuantileSketch.from_bytes(b64decode(state.quantiles, where))
            stats._numeric_distinct = (
                set(state.numeric_distinct) if state.numeric_distinct is not None else None
            )
            stats.exact = stats._numeric_distinct is not None
        elif state.kind is FeatureKind.CATEGORICAL:
            if state.distinct is None or (state.counts is None) == (state.frequent is None):
                raise InvalidInput(
                    f"{where} needs a distinct sketch and either counts or a frequent-items sketch"
                )
            stats._distinct = DistinctSketch.from_bytes(b64decode(state.distinct, where))
            stats._counts = dict(state.counts) if state.counts is not None else None
            if state.frequent is not None:
                stats._frequent = FrequentItemsSketch.from_bytes(b64decode(state.frequent, where))
                stats.exact = False
        elif state.values is not None:
            stats.values = cls.from_state(state.values)
        return stats


def adapt_feature(
    stats: FeatureStats | None, name: str, dtype: pa.DataType, rows: int
) -> FeatureStats:
    """The statistics to update with a column of ``dtype``: a feature seen only missing so
    far (or never, for ``rows`` rows) takes the new type; a real type change is an error."""
    if stats is None:
        stats = FeatureStats.for_type(name, dtype)
        stats.count = stats.missing = rows
        return stats
    if pa.types.is_null(dtype) or (stats.kind is kind_of(dtype) and stats.dtype != NULL_DTYPE):
        return stats
    if stats.has_values:
        raise InvalidInput(
            f"column {name!r} changed from {stats.dtype} to {dtype} within one source"
        )
    fresh = FeatureStats.for_type(name, dtype)
    fresh.count, fresh.missing = stats.count, stats.missing
    return fresh


def _list_value_type(dtype: pa.DataType) -> pa.DataType | None:
    if kind_of(dtype) is FeatureKind.LIST and not pa.types.is_map(dtype):
        return dtype.value_type
    return None


def _strictly_increasing(edges: list[float]) -> list[float]:
    out: list[float] = []
    for edge in edges:
        if not out or edge > out[-1]:
            out.append(edge)
    return out


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
