"""Thin typed wrappers over Apache DataSketches.

The DataSketches Python bindings are untyped, mutate in place on ``merge`` and cannot be
pickled. These wrappers give mloop a typed surface, merges that return a new sketch (so a
statistics object never changes under a caller that still holds it), and ``to_bytes`` /
``from_bytes`` built on the library's own portable serialization, which is what crosses
process and Ray boundaries and what is stored in statistics files.
"""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasketches
import numpy as np
import numpy.typing as npt

from mloop.data._model import FREQUENT_ITEMS_LG_MAX_K, HLL_LG_K, KLL_K
from mloop.errors import InvalidInput

_KLL_M = 8  # DataSketches' minimum level width
_KLL_FAMILY = 15
_KLL_SERIAL_VERSION = 1  # the full (non-empty, non-single-item) serialization layout
_KLL_PREAMBLE_INTS = 5
#: sorted batches at least this long are compacted in numpy (the GIL is held only for a
#: merge of about k values); shorter ones go through the bindings' update, which for
#: sorted input keeps the top values at weight one (tighter upper tails on small data)
KLL_NUMPY_MIN = 1 << 16


def _kll_level_capacity(k: int, num_levels: int, height: int) -> int:
    """DataSketches' ``kll_helper::level_capacity`` (integer arithmetic, same rounding)."""
    depth = num_levels - height - 1

    def aux(k_: int, d: int) -> int:
        return int(((((2 * k_) << d) // 3**d) + 1) >> 1)

    cap = aux(k, depth) if depth <= 30 else aux(aux(k, depth // 2), depth - depth // 2)
    return max(_KLL_M, cap)


def kll_sketch_of_sorted(
    ordered: npt.NDArray[np.float64], k: int = KLL_K, bits: int | None = None
) -> bytes:
    """A serialized KLL sketch of ``ordered`` (finite, ascending, non-empty) built in numpy.

    The same compactions the sketch itself performs, applied to the whole sorted batch:
    each level keeps every other value from a random offset and passes them up with double
    weight (an odd value out stays behind), until the top level fits in ``k``. Every
    compaction of a sorted level moves any rank by at most its weight with a random sign,
    so the sketch obeys KLL's error bound; it deserializes into an ordinary KLL sketch.
    """
    coins = secrets.randbits(64) if bits is None else bits
    # the smallest and largest values stay at weight one, so rank 0 and 1 answer exactly
    current = ordered[1:-1]
    odd = current[-1:] if current.size % 2 else current[:0]
    kept = [np.concatenate([ordered[:1], odd, ordered[-1:]])]
    current = current[: current.size - odd.size]
    height = 0
    while True:
        current = current[(coins >> (height % 64)) & 1 :: 2]
        height += 1
        if current.size <= k:
            break
        odd = current[-1:] if current.size % 2 else current[:0]
        kept.append(odd)
        current = current[: current.size - odd.size]
    kept.append(current)
    num_levels = len(kept)
    capacity = sum(_kll_level_capacity(k, num_levels, h) for h in range(num_levels))
    total = sum(level.size for level in kept)
    starts = [capacity - total]
    for level in kept[:-1]:
        starts.append(starts[-1] + level.size)
    header = struct.pack(
        f"<BBBBHBBQHBB{num_levels}I2d",
        _KLL_PREAMBLE_INTS,
        _KLL_SERIAL_VERSION,
        _KLL_FAMILY,
        0,  # flags: not empty, level zero not marked sorted, not a single item
        k,
        _KLL_M,
        0,
        int(ordered.size),
        k,  # min_k
        num_levels,
        0,
        *starts,
        float(ordered[0]),
        float(ordered[-1]),
    )
    return header + np.concatenate(kept).astype("<f8", copy=False).tobytes()


def _corrupt(kind: str, exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"stored {kind} sketch does not deserialize ({exc}); the statistics file is "
        "corrupt: compute the statistics again"
    )


class QuantileSketch:
    """KLL quantile sketch over doubles: mergeable, rank error about ``rank_error``."""

    __slots__ = ("_sketch",)

    def __init__(self, sketch: Any = None) -> None:
        self._sketch = sketch if sketch is not None else datasketches.kll_doubles_sketch(KLL_K)

    def update(self, values: npt.NDArray[np.float64]) -> None:
        """Add finite values (sorted is fastest); the bindings take a whole array at once.

        The bindings only accept writable arrays, and Arrow hands out read-only views, so
        those are copied (cheap next to the sketch update itself).
        """
        if values.size:
            self._sketch.update(np.require(values, np.float64, ["C_CONTIGUOUS", "WRITEABLE"]))

    def update_sorted(self, ordered: npt.NDArray[np.float64]) -> None:
        """Add finite values sorted ascending: long batches are compacted in numpy first
        (:func:`kll_sketch_of_sorted`) and merged, which costs far less than the bindings'
        per-value update and holds the GIL only for the merge."""
        if ordered.size < KLL_NUMPY_MIN:
            self.update(ordered)
            return
        batch = datasketches.kll_doubles_sketch.deserialize(kll_sketch_of_sorted(ordered))
        self._sketch.merge(batch)

    @property
    def n(self) -> int:
        return int(self._sketch.n)

    @property
    def is_empty(self) -> bool:
        return bool(self._sketch.is_empty())

    @property
    def is_exact(self) -> bool:
        """True while the sketch still holds every value (answers are then exact)."""
        return not bool(self._sketch.is_estimation_mode())

    @property
    def rank_error(self) -> float:
        """Normalized rank error of single quantiles and CDF values (99 % confidence)."""
        return 0.0 if self.is_exact else float(self._sketch.normalized_rank_error(False))

    def quantiles(self, ranks: Sequence[float]) -> list[float]:
        if self.is_empty:
            return [math.nan] * len(ranks)
        return [float(q) for q in self._sketch.get_quantiles(list(ranks))]

    def cdf(self, split_points: Sequence[float]) -> list[float]:
        if self.is_empty:
            return [math.nan] * (len(split_points) + 1)
        return [float(c) for c in self._sketch.get_cdf(list(split_points), False)]

    def merged(self, other: QuantileSketch) -> QuantileSketch:
        result = self.copy()
        if not other.is_empty:
            result._sketch.merge(other._sketch)
        return result

    def copy(self) -> QuantileSketch:
        return QuantileSketch.from_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        try:
            return cls(datasketches.kll_doubles_sketch.deserialize(data))
        except Exception as exc:  # the bindings raise RuntimeError/ValueError/IndexError
            raise _corrupt("quantile", exc) from None


class FrequentItemsSketch:
    """Frequent-items (misra-gries) sketch over strings, updated with weights."""

    __slots__ = ("_sketch",)

    def __init__(self, sketch: Any = None) -> None:
        self._sketch = (
            sketch
            if sketch is not None
            else datasketches.frequent_strings_sketch(FREQUENT_ITEMS_LG_MAX_K)
        )

    def update_counts(self, counts: Mapping[str, int] | Iterable[tuple[str, int]]) -> None:
        """Add items with their counts: one call per distinct value, never one per row."""
        items = counts.items() if isinstance(counts, Mapping) else counts
        update = self._sketch.update
        for item, weight in items:
            if weight > 0:
                update(item, int(weight))

    @property
    def total_weight(self) -> int:
        return int(self._sketch.total_weight)

    @property
    def max_error(self) -> int:
        """Largest amount by which any estimate can be off (in rows)."""
        return math.ceil(float(self._sketch.epsilon) * self.total_weight)

    def estimates(self) -> dict[str, int]:
        """Every tracked item with its estimated count (no false negatives above the error)."""
        rows = self._sketch.get_frequent_items(
            datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES
        )
        return {str(item): int(estimate) for item, estimate, _lower, _upper in rows}

    def merged(self, other: FrequentItemsSketch) -> FrequentItemsSketch:
        result = self.copy()
        if not other._sketch.is_empty():
            result._sketch.merge(other._sketch)
        return result

    def copy(self) -> FrequentItemsSketch:
        return FrequentItemsSketch.from_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> FrequentItemsSketch:
        try:
            return cls(datasketches.frequent_strings_sketch.deserialize(data))
        except Exception as exc:
            raise _corrupt("frequent-items", exc) from None


class DistinctSketch:
    """HyperLogLog distinct counter over strings (relative error about 1.6 % at lg_k=12)."""

    __slots__ = ("_sketch",)

    def __init__(self, sketch: Any = None) -> None:
        self._sketch = sketch if sketch is not None else datasketches.hll_sketch(HLL_LG_K)

    def update_many(self, items: Iterable[str]) -> None:
        update = self._sketch.update
        for item in items:
            update(item)

    @property
    def estimate(self) -> float:
        return float(self._sketch.get_estimate())

    @property
    def relative_error(self) -> float:
        """Relative standard error of the estimate (about 1.04 / sqrt(2**lg_k))."""
        return abs(float(datasketches.hll_sketch.get_rel_err(True, True, HLL_LG_K, 1)))

    def merged(self, other: DistinctSketch) -> DistinctSketch:
        union = datasketches.hll_union(HLL_LG_K)
        union.update(self._sketch)
        union.update(other._sketch)
        return DistinctSketch(union.get_result(datasketches.tgt_hll_type.HLL_8))

    def copy(self) -> DistinctSketch:
        return DistinctSketch.from_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize_compact())

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctSketch:
        try:
            return cls(datasketches.hll_sketch.deserialize(data))
        except Exception as exc:
            raise _corrupt("distinct-count", exc) from None


__all__ = ["DistinctSketch", "FrequentItemsSketch", "QuantileSketch"]
