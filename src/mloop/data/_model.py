"""The statistics data model: what every part of the data package reads and writes.

A :class:`~mloop.data._statistics.DatasetStatistics` is built from partial results that
merge: statistics of A ∪ B equal ``stats(A).merge(stats(B))`` within each sketch's stated
error. Numeric moments merge exactly (Chan et al.), quantiles through a KLL sketch,
distinct counts through HLL, and category counts exactly while a column has at most
``EXACT_CATEGORY_LIMIT`` distinct values (then through a frequent-items sketch).

This module declares the shapes (kinds, :class:`Moments`, the on-disk format);
``_statistics.py`` computes and merges them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from mloop.errors import InvalidInput

FORMAT_VERSION = 1
FORMAT_NAME = "mloop.statistics"
EXACT_CATEGORY_LIMIT = 10_000
KLL_K = 400  # quantile sketch accuracy: normalized rank error about 0.68 % (99 % conf.)
FREQUENT_ITEMS_LG_MAX_K = 12  # 3 072 tracked items; count error <= 0.09 % of the rows
HLL_LG_K = 12  # distinct counts: relative standard error about 1.6 %


class FeatureKind(enum.StrEnum):
    NUMERIC = "numeric"  # ints, floats, decimals, timestamps (as epoch numbers)
    CATEGORICAL = "categorical"  # strings, booleans, dictionary columns
    LIST = "list"  # list columns: lengths are summarized, values as their own kind


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, mean and sum of squared deviations: the exactly mergeable core of mean/std.

    Kept as (count, mean, m2) rather than (sum, sum of squares) because the latter loses
    all precision for data with a large mean and a small spread; the pairwise update of
    Chan, Golub and LeVeque keeps it when partial results are merged in any order.
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def variance(self) -> float:
        """Population variance (ddof=0), as numpy's ``var`` default; NaN when empty."""
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.count else math.nan


@dataclass(frozen=True, slots=True)
class Lengths:
    """Summary of string lengths (characters) or list lengths (items): mergeable."""

    moments: Moments = Moments()
    min: int | None = None
    max: int | None = None

    def merge(self, other: Lengths) -> Lengths:
        return Lengths(
            self.moments.merge(other.moments),
            merge_optional(min, self.min, other.min),
            merge_optional(max, self.max, other.max),
        )

    @classmethod
    def of(cls, values: npt.NDArray[Any]) -> Lengths:
        """Summary of one batch of lengths (two-pass moments: precise for any scale)."""
        if values.size == 0:
            return cls()
        as_float = values.astype(np.float64, copy=False)
        mean = float(as_float.mean())
        dev = as_float - mean
        return cls(
            Moments(int(values.size), mean, float(np.einsum("i,i->", dev, dev))),
            int(values.min()),
            int(values.max()),
        )

    @classmethod
    def of_counts(cls, values: npt.NDArray[Any], counts: npt.NDArray[Any]) -> Lengths:
        """Summary of ``values[i]`` repeated ``counts[i]`` times (lengths of the distinct
        values of a column with their counts): :meth:`of` without expanding the rows."""
        n = int(counts.sum())
        if n == 0:
            return cls()
        as_float = values.astype(np.float64, copy=False)
        weights = counts.astype(np.float64, copy=False)
        mean = float(np.dot(as_float, weights) / n)
        dev = as_float - mean
        return cls(
            Moments(n, mean, float(np.dot(weights * dev, dev))),
            int(values[counts > 0].min()),
            int(values[counts > 0].max()),
        )


def merge_optional(pick: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def kind_of(dtype: pa.DataType) -> FeatureKind:
    if (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
        or pa.types.is_list_view(dtype)
        or pa.types.is_large_list_view(dtype)
        or pa.types.is_map(dtype)
    ):
        return FeatureKind.LIST
    if (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or (pa.types.is_temporal(dtype) and not pa.types.is_interval(dtype))
    ):
        return FeatureKind.NUMERIC
    return FeatureKind.CATEGORICAL  # strings, booleans, dictionaries, binary, null, others


GENERIC_DTYPE = {
    FeatureKind.NUMERIC: "double",
    FeatureKind.CATEGORICAL: "string",
    FeatureKind.LIST: "list",
}
"""The dtype recorded when parts of the data disagree on a column's exact Arrow type."""


# -- the stored format (JSON); validated completely before any statistics object is built --


class _Strict(BaseModel):
    # Moments of values near the float limit overflow to inf; the file keeps them as is.
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, ser_json_inf_nan="constants"
    )


class MomentsState(_Strict):
    count: int = Field(ge=0)
    mean: float
    m2: float


class LengthState(_Strict):
    """Lengths of strings (characters) or lists (items)."""

    moments: MomentsState
    min: int | None
    max: int | None


class FeatureState(_Strict):
    name: str
    kind: FeatureKind
    dtype: str
    count: int = Field(ge=0)
    missing: int = Field(ge=0)
    nan: int = Field(default=0, ge=0)
    inf: int = Field(default=0, ge=0)
    zeros: int = Field(default=0, ge=0)
    min: float | None = None
    max: float | None = None
    moments: MomentsState | None = None
    quantiles: str | None = None  # base64 of a DataSketches KLL (doubles) sketch
    numeric_distinct: list[float] | None = None  # exact distinct finite values while small
    counts: dict[str, int] | None = None  # exact category counts while small
    frequent: str | None = None  # base64 DataSketches frequent_strings sketch
    distinct: str | None = None  # base64 DataSketches HLL sketch
    lengths: LengthState | None = None
    values: FeatureState | None = None  # list columns: statistics of the flattened items


class StatisticsFile(_Strict):
    format: Literal["mloop.statistics"]
    format_version: int
    num_rows: int = Field(ge=0)
    features: list[FeatureState]


def moments_state(m: Moments) -> MomentsState:
    return MomentsState(count=m.count, mean=m.mean, m2=m.m2)


def moments_of(m: MomentsState | None) -> Moments:
    return Moments() if m is None else Moments(m.count, m.mean, m.m2)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"{where} holds a sketch that is not base64; the file is corrupt"
        ) from None


__all__ = [
    "EXACT_CATEGORY_LIMIT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FREQUENT_ITEMS_LG_MAX_K",
    "GENERIC_DTYPE",
    "HLL_LG_K",
    "KLL_K",
    "FeatureKind",
    "FeatureState",
    "LengthState",
    "Lengths",
    "Moments",
    "MomentsState",
    "StatisticsFile",
    "b64decode",
    "b64encode",
    "kind_of",
    "merge_optional",
    "moments_of",
    "moments_state",
]
