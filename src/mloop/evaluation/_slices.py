"""Slices: the rows sharing a value of one feature (``sex``) or of a cross (``sex*age_bucket``).

A numeric column with many distinct values would make one slice per value, each too small
to say anything; it is cut into quartiles instead (``age=[31, 45)``). Missing values form
their own slice, ``(missing)``, because that is often exactly where a model fails.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

MAX_DISTINCT_NUMERIC = 10
NUMERIC_BINS = 4
MAX_SLICES_PER_SPEC = 1000
MISSING = "(missing)"
_NAME = re.compile(r"^[^*=&\n]{1,250}$")


@dataclass(frozen=True)
class SliceRows:
    """One slice: the spec it came from, its key (``sex=F & age=<30``) and its rows."""

    spec: str
    values: tuple[str, ...]
    key: str
    rows: np.ndarray[Any, Any]


def parse_slice(spec: str) -> tuple[str, ...]:
    """``"sex*age_bucket"`` → ``("sex", "age_bucket")``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput(f"slice {spec!r} is empty; name a column (sex) or a cross (sex*age)")
    parts = tuple(p.strip() for p in spec.split("*"))
    for part in parts:
        if not _NAME.match(part):
            raise InvalidInput(
                f"slice {spec!r} has an empty or invalid column name {part!r}; write a column "
                "name (sex) or columns joined by '*' (sex*age_bucket)"
            )
    if len(set(parts)) != len(parts):
        raise InvalidInput(f"slice {spec!r} names a column twice")
    return parts


def slice_key(features: Sequence[str], values: Sequence[str]) -> str:
    return " & ".join(f"{f}={v}" for f, v in zip(features, values, strict=True))


def check_columns(frame: pd.DataFrame, specs: Sequence[str], what: str = "slice") -> None:
    present = set(map(str, frame.columns))
    for spec in specs:
        for column in parse_slice(spec):
            if column not in present:
                raise InvalidInput(
                    f"{what} column {column!r} is not in the data; its columns are "
                    f"{', '.join(sorted(present)[:30])}"
                )


def labels_of(series: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """Each row's slice value as text, numeric columns with many values cut into quartiles."""
    import pandas as pd

    missing = series.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and series.nunique(dropna=True) > MAX_DISTINCT_NUMERIC:
        edges = np.unique(
            np.nanquantile(series.to_numpy(dtype=np.float64), np.linspace(0, 1, NUMERIC_BINS + 1))
        )
        codes = np.clip(
            np.searchsorted(edges, series.to_numpy(dtype=np.float64), side="right") - 1,
            0,
            len(edges) - 2,
        )
        names = [
            f"[{_num(edges[i])}, {_num(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}"
            for i in range(len(edges) - 1)
        ]
        text = np.asarray(names, dtype=object)[codes]
    else:
        text = series.astype(str).to_numpy(dtype=object)
    text[missing] = MISSING
    return text


def _num(x: float) -> str:
    return f"{x:.4g}"


def slice_rows(frame: pd.DataFrame, spec: str) -> list[SliceRows]:
    """The slices of ``spec`` in ``frame``, largest first, each with its row positions.

    Each column's values are factorised to integer codes and a cross is their mixed-radix
    combination, so grouping a million rows is a few vectorised passes, not a Python loop.
    """
    import pandas as pd

    features = parse_slice(spec)
    columns = [labels_of(frame[f]) for f in features]
    combined = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column, sort=True)
        combined = combined * max(len(uniques), 1) + codes
    groups, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    if groups.size > MAX_SLICES_PER_SPEC:
        raise InvalidInput(
            f"slice {spec!r} has {groups.size} distinct values, over {MAX_SLICES_PER_SPEC}; "
            "slice on a coarser column (bucket it first)"
        )
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(groups.size + 1))
    found = []
    for i, row in enumerate(first):
        values = tuple(str(column[row]) for column in columns)
        rows = order[bounds[i] : bounds[i + 1]]
        found.append(SliceRows(spec, values, slice_key(features, values), rows))
    found.sort(key=lambda s: (-s.rows.size, s.key))
    return found
