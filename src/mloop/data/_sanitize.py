"""Training-data sanitization (MITRE ATLAS AML.M0007): flag rows that should not train a model.

Five independent checks, each a reason a row is flagged:

``exact_duplicate``
    the row equals an earlier row in every column (the first copy is kept);
``near_duplicate``
    the row matches an earlier row in every non-numeric feature and lies within a tiny
    distance of it in standardized numeric features — far closer than rows of this data
    usually are (or has the same features and a different label);
``label_flip``
    the row's label disagrees with a strong majority of its ``k`` nearest neighbours in
    standardized numeric features (poisoning or labelling-error suspect; outliers are
    not judged, their neighbours being far away);
``outlier``
    a numeric feature lies more than ``outlier_z`` robust z-scores (median / MAD) from
    the column's median;
``deny_list``
    a string column contains a denied substring or matches a denied regular expression.

Everything runs vectorized over the whole table except the nearest-neighbour work, which
is bounded: the label-flip check runs on a random sample of at most ``max_knn_rows`` rows
(the report says how many rows it checked), and the near-duplicate distance is calibrated
on a smaller sample, then applied to every row through a grid (no pairwise search).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import cKDTree

from mloop.errors import InvalidInput

FORMAT_VERSION = 1
REASONS = ("exact_duplicate", "near_duplicate", "label_flip", "outlier", "deny_list")
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MAX_CLASSES = 50  # a label with more distinct values is treated as continuous: no flip check
KNN_DIMENSIONS = 10  # the label-flip search runs on at most this many principal components
CALIBRATION_ROWS = 4_000
NEAR_FALSE_SHARE = 1e-4  # near-duplicate flags expected among rows spread at random
EXAMPLES = 20

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


@dataclass
class SanitizeReport:
    """Which rows were flagged and why; ``rows`` maps each reason to sorted row numbers."""

    num_rows: int
    label: str | None = None
    rows: dict[str, IndexArray] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {reason: int(self.rows[reason].size) for reason in REASONS if reason in self.rows}

    def mask(self, reasons: Iterable[str] | None = None) -> BoolArray:
        """True for rows flagged for any of ``reasons`` (default: every reason)."""
        chosen = _check_reasons(reasons)
        out = np.zeros(self.num_rows, dtype=bool)
        for reason in chosen:
            out[self.rows.get(reason, np.empty(0, np.int64))] = True
        return out

    def flagged_rows(self) -> dict[int, list[str]]:
        """Row number → the reasons it was flagged, in row order."""
        found: dict[int, list[str]] = {}
        for reason in REASONS:
            for row in self.rows.get(reason, np.empty(0, np.int64)).tolist():
                found.setdefault(row, []).append(reason)
        return dict(sorted(found.items()))

    def cleaned(self, table: pa.Table, *, reasons: Iterable[str] | None = None) -> pa.Table:
        """``table`` without the flagged rows (for ``reasons``, default all); order kept."""
        if table.num_rows != self.num_rows:
            raise InvalidInput(
                f"this report is about {self.num_rows} rows but the table has "
                f"{table.num_rows}; clean the table the report was made from"
            )
        return table.filter(pa.array(~self.mask(reasons)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready report: counts, flagged rows per reason, and how each check ran."""
        return {
            "format": "mloop.sanitize",
            "format_version": FORMAT_VERSION,
            "num_rows": self.num_rows,
            "label": self.label,
            "flagged": int(np.count_nonzero(self.mask())),
            "counts": self.counts,
            "reasons": {
                reason: {"rows": self.rows[reason].tolist(), **self.details.get(reason, {})}
                for reason in REASONS
                if reason in self.rows
            },
        }


def sanitize(
    table: pa.Table | pa.RecordBatch,
    *,
    label: str | None = None,
    deny_list: Sequence[str | re.Pattern[str]] = (),
    k: int = 5,
    outlier_z: float = 6.0,
    flip_agreement: float = 0.8,
    near_ratio: float = 0.05,
    max_knn_rows: int = 20_000,
    seed: int = 0,
) -> SanitizeReport:
    """Flag suspicious training rows; nothing is removed until :meth:`SanitizeReport.cleaned`.

    ``label`` enables the label-flip check (classification labels: at most 50 classes).
    ``deny_list`` entries are case-sensitive substrings, or compiled patterns (use
    ``re.compile(..., re.I)`` for case-insensitive matching). A row is a label-flip suspect
    when at least ``flip_agreement`` of its ``k`` nearest neighbours share one label that
    is not its own. ``near_ratio`` sets the near-duplicate distance as a fraction of the
    typical nearest-neighbour distance. ``seed`` makes the sampling repeatable.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    _check_arguments(table, label, k, outlier_z, flip_agreement, near_ratio, max_knn_rows)
    n = table.num_rows
    report = SanitizeReport(n, label)
    features = [c for c in table.column_names if c != label]
    numeric = [c for c in features if _is_numeric(table.schema.field(c).type)]
    others = [c for c in features if c not in numeric]
    rng = np.random.default_rng(seed)

    frame = pl.from_arrow(table) if n else None
    assert frame is None or isinstance(frame, pl.DataFrame)
    exact = _not_first(frame, table.column_names)
    report.rows["exact_duplicate"] = _indices(exact)
    report.details["exact_duplicate"] = {"columns": list(table.column_names)}

    z, outliers, outlier_detail = _standardize(table, numeric, outlier_z)
    same_features = (
        _not_first(frame, features) & ~exact if label is not None and features else _none(n)
    )
    near, near_detail = _near_duplicates(frame, z, others, ~exact, near_ratio, rng)
    report.rows["near_duplicate"] = _indices(near | same_features)
    report.details["near_duplicate"] = {
        **near_detail,
        "same_features_other_label": int(np.count_nonzero(same_features)),
    }

    if label is not None:
        # an outlier's neighbours say nothing about its label: it is flagged as an outlier
        flips, flip_detail = _label_flips(
            table.column(label), z, ~outliers, k, flip_agreement, max_knn_rows, rng
        )
        report.rows["label_flip"] = _indices(flips)
        report.details["label_flip"] = flip_detail

    report.rows["outlier"] = _indices(outliers)
    report.details["outlier"] = outlier_detail

    denied, deny_detail = _deny_list(table, deny_list)
    report.rows["deny_list"] = _indices(denied)
    report.details["deny_list"] = deny_detail
    return report


# -- arguments ------------------------------------------------------------------------------


def _check_arguments(
    table: pa.Table,
    label: str | None,
    k: int,
    outlier_z: float,
    flip_agreement: float,
    near_ratio: float,
    max_knn_rows: int,
) -> None:
    if label is not None and label not in table.column_names:
        raise InvalidInput(
            f"label column {label!r} is not in the data; the columns are "
            f"{', '.join(table.column_names)}"
        )
    if len(set(table.column_names)) != len(table.column_names):
        raise InvalidInput("the table has two columns with one name; rename one")
    if k < 1:
        raise InvalidInput(f"k (neighbours) must be at least 1, got {k}")
    if not outlier_z > 0:
        raise InvalidInput(f"outlier_z must be positive, got {outlier_z}")
    if not 0.5 < flip_agreement <= 1.0:
        raise InvalidInput(f"flip_agreement must lie in (0.5, 1], got {flip_agreement}")
    if not near_ratio >= 0:
        raise InvalidInput(f"near_ratio must be zero or more, got {near_ratio}")
    if max_knn_rows <= k:
        raise InvalidInput(f"max_knn_rows must exceed k={k}, got {max_knn_rows}")


def _check_reasons(reasons: Iterable[str] | None) -> tuple[str, ...]:
    if reasons is None:
        return REASONS
    chosen = tuple(reasons)
    unknown = [r for r in chosen if r not in REASONS]
    if unknown:
        raise InvalidInput(
            f"unknown sanitize reason {unknown[0]!r}; choose from {', '.join(REASONS)}"
        )
    return chosen


def _is_numeric(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype)) or bool(
        pa.types.is_decimal(dtype)
    )


def _none(n: int) -> BoolArray:
    return np.zeros(n, dtype=bool)


def _indices(mask: BoolArray) -> IndexArray:
    return np.flatnonzero(mask).astype(np.int64)


# -- duplicates -----------------------------------------------------------------------------


def _not_first(frame: pl.DataFrame | None, columns: Sequence[str]) -> BoolArray:
    """True for rows equal (in ``columns``) to an earlier row."""
    if frame is None or not columns:
        return _none(0 if frame is None else frame.height)
    first = frame.select(pl.struct([pl.col(c) for c in columns]).is_first_distinct()).to_series()
    return ~first.to_numpy().astype(bool)


def _near_duplicates(
    frame: pl.DataFrame | None,
    z: FloatArray,
    others: Sequence[str],
    candidates: BoolArray,
    near_ratio: float,
    rng: np.random.Generator,
) -> tuple[BoolArray, dict[str, Any]]:
    n, d = z.shape
    detail: dict[str, Any] = {"numeric_columns": d, "threshold": None}
    if frame is None or d == 0 or n < 2 or near_ratio == 0:
        return _none(n), detail
    typical, dimension = _typical_nn_distance(z, rng)
    # Rows scattered at random in `dimension` dimensions have a nearest neighbour closer
    # than r times the median distance with probability about ln 2 * r**dimension; cap r
    # so honest rows are flagged at most NEAR_FALSE_SHARE of the time (matters in low
    # dimensions, where neighbours are naturally close).
    ratio = min(near_ratio, (NEAR_FALSE_SHARE / math.log(2.0)) ** (1.0 / dimension))
    threshold = ratio * typical
    detail.update(typical_distance=typical, dimension=dimension, ratio=ratio, threshold=threshold)
    if not threshold > 0:
        return _none(n), detail
    # Same grid cell means every coordinate within `cell`, so distance below `threshold`.
    # A second grid shifted by half a cell catches the pairs the first splits.
    cell = threshold / math.sqrt(d)
    limit = float(2**62)
    near = _none(n)
    for shift in (0.0, 0.5):
        keys = np.clip(np.floor(z / cell + shift), -limit, limit).astype(np.int64)
        cells = pl.DataFrame({f"__cell{j}": keys[:, j] for j in range(d)})
        if others:
            cells = pl.concat([frame.select(list(others)), cells], how="horizontal")
        near |= _not_first(cells, cells.columns)
    return near & candidates, detail


def _typical_nn_distance(z: FloatArray, rng: np.random.Generator) -> tuple[float, float]:
    """Median distance from a row to its nearest other row at the full row count, and the
    data's intrinsic dimension.

    Measured on a sample (brute force: exact, and fast for a few thousand rows in any
    dimension) and on half of it: how the distance shrinks as rows double gives the
    dimension, and from that the distance at the full row count.
    """
    n, d = z.shape
    size = min(n, CALIBRATION_ROWS)
    sample = z[rng.permutation(n)[:size]] if size < n else z[rng.permutation(n)]
    full = _median_nn(sample)
    half = _median_nn(sample[: size // 2]) if size >= 16 else 0.0
    if full > 0 and half > full:
        dimension = min(max(math.log(2.0) / math.log(half / full), 1.0), float(d))
    else:
        dimension = float(d)
    return float(full * (size / n) ** (1.0 / dimension)), dimension


def _median_nn(points: FloatArray) -> float:
    m = points.shape[0]
    if m < 2:
        return 0.0
    squares = np.einsum("ij,ij->i", points, points)
    nearest = np.empty(m)
    for start in range(0, m, 1024):
        block = points[start : start + 1024]
        dist = squares[start : start + 1024, None] + squares[None, :] - 2.0 * block @ points.T
        dist[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = np.inf
        nearest[start : start + block.shape[0]] = dist.min(axis=1)
    distances = np.sqrt(np.maximum(nearest, 0.0))
    scale = max(float(np.sqrt(squares.max())), 1.0)
    positive = distances[distances > 1e-9 * scale]  # exact copies say nothing about spacing
    return float(np.median(positive)) if positive.size else 0.0


# -- numeric features: standardized matrix and outliers --------------------------------------


def _standardize(
    table: pa.Table, numeric: Sequence[str], outlier_z: float
) -> tuple[FloatArray, BoolArray, dict[str, Any]]:
    """Robustly standardized numeric features (missing → 0) and the outlier rows."""
    n = table.num_rows
    z = np.zeros((n, len(numeric)), dtype=np.float64)
    outliers = _none(n)
    per_column: dict[str, int] = {}
    skipped: list[str] = []
    for j, name in enumerate(numeric):
        values = _as_float(table.column(name))
        finite = np.isfinite(values)
        if not finite.any():
            continue
        center, scale = _robust_center_scale(values[finite])
        if scale is None:
            skipped.append(name)
            spread = float(np.std(values[finite]))
            scale_for_distance = spread if spread > 0 else 1.0
        else:
            scale_for_distance = scale
            with np.errstate(invalid="ignore", over="ignore"):
                score = np.abs(values - center) / scale
            extreme = score > outlier_z  # NaN compares False; ±inf is extreme
            if extreme.any():
                per_column[name] = int(np.count_nonzero(extreme))
                outliers |= extreme
        with np.errstate(invalid="ignore", over="ignore"):
            z[:, j] = np.where(finite, (values - center) / scale_for_distance, 0.0)
    detail = {
        "threshold_z": outlier_z,
        "columns": per_column,
        "skipped_columns": skipped,  # almost constant: no robust scale to measure against
    }
    return z, outliers, detail


def _as_float(column: pa.ChunkedArray) -> FloatArray:
    as_double = pc.cast(column, pa.float64(), safe=False).fill_null(math.nan)
    return np.asarray(as_double.to_numpy(), dtype=np.float64)


def _robust_center_scale(values: FloatArray) -> tuple[float, float | None]:
    """Median and a robust standard deviation: MAD, else the central 98 % spread, else None."""
    center = float(np.median(values))
    mad = float(np.median(np.abs(values - center)))
    if mad > 0:
        return center, MAD_TO_STD * mad
    low, high = np.quantile(values, [0.01, 0.99])
    spread = float(high - low) / 4.6527  # the 1st to 99th percentile of a normal: 4.65 std
    return center, spread if spread > 0 else None


# -- label flips -------------------------------------------------------------------------------


def _label_flips(
    column: pa.ChunkedArray,
    z: FloatArray,
    usable: BoolArray,
    k: int,
    agreement: float,
    max_rows: int,
    rng: np.random.Generator,
) -> tuple[BoolArray, dict[str, Any]]:
    n, d = z.shape
    flips = _none(n)
    detail: dict[str, Any] = {"k": k, "agreement": agreement, "checked_rows": 0}
    if d == 0:
        detail["skipped"] = "no numeric features to find neighbours with"
        return flips, detail
    encoded = pc.dictionary_encode(column.combine_chunks())
    classes = encoded.dictionary
    if len(classes) > MAX_CLASSES:
        detail["skipped"] = f"the label has more than {MAX_CLASSES} values (not classification)"
        return flips, detail
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
    labelled = np.flatnonzero((codes >= 0) & usable)
    available = labelled.size
    if labelled.size > max_rows:
        labelled = np.sort(rng.choice(labelled, size=max_rows, replace=False))
    if labelled.size <= k:
        detail["skipped"] = f"fewer than {k + 1} labelled rows"
        return flips, detail
    points = _reduced(z[labelled])
    own = codes[labelled]
    _, neighbours = cKDTree(points).query(points, k=k + 1, workers=-1)
    # drop each row itself from its neighbours (it may not come first among exact copies)
    is_self = neighbours == np.arange(labelled.size)[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    neighbours = np.take_along_axis(neighbours, order, axis=1)[:, :k]
    theirs = own[neighbours]
    votes = np.stack([(theirs == c).sum(axis=1) for c in range(len(classes))], axis=1)
    majority = votes.argmax(axis=1)
    strength = votes.max(axis=1) / k
    suspect = (majority != own) & (strength >= agreement)
    flips[labelled[suspect]] = True
    names = classes.to_pylist()
    detail["checked_rows"] = int(labelled.size)
    detail["sampled"] = bool(labelled.size < available)
    detail["examples"] = [
        {
            "row": int(labelled[i]),
            "label": _plain(names[own[i]]),
            "neighbours_say": _plain(names[majority[i]]),
            "agreement": float(strength[i]),
        }
        for i in np.flatnonzero(suspect)[:EXAMPLES]
    ]
    return flips, detail


def _reduced(points: FloatArray) -> FloatArray:
    """The leading principal components (kd-trees slow down sharply past ~10 dimensions)."""
    if points.shape[1] <= KNN_DIMENSIONS:
        return points
    centered = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return np.asarray(centered @ vt[:KNN_DIMENSIONS].T, dtype=np.float64)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# -- deny list -------------------------------------------------------------------------------


def _deny_list(
    table: pa.Table, entries: Sequence[str | re.Pattern[str]]
) -> tuple[BoolArray, dict[str, Any]]:
    n = table.num_rows
    denied = _none(n)
    per_entry: dict[str, int] = {}
    per_column: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, (str, re.Pattern)) or (isinstance(entry, str) and not entry):
            raise InvalidInput(
                f"deny-list entries must be non-empty strings or compiled patterns, got {entry!r}"
            )
    strings = [
        (name, col)
        for name, col in zip(table.column_names, table.columns, strict=True)
        if _string_values(col) is not None
    ]
    for entry in entries:
        key = entry if isinstance(entry, str) else f"re:{entry.pattern}"
        hits = _none(n)
        for name, col in strings:
            values = _string_values(col)
            assert values is not None
            matched = _matches(values, entry)
            if matched.any():
                per_column[name] = per_column.get(name, 0) + int(np.count_nonzero(matched))
                hits |= matched
        per_entry[key] = int(np.count_nonzero(hits))
        denied |= hits
    detail = {
        "entries": per_entry,
        "columns": per_column,
        "searched_columns": [name for name, _ in strings],
    }
    return denied, detail


def _string_values(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    dtype = column.type
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if not (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    ):
        return None
    return column if column.type == pa.large_string() else pc.cast(column, pa.large_string())


def _matches(values: pa.ChunkedArray, entry: str | re.Pattern[str]) -> BoolArray:
    if isinstance(entry, str):
        found = pc.match_substring(values, entry)
    elif entry.flags & ~(re.IGNORECASE | re.UNICODE) == 0:
        try:  # Arrow's RE2 engine: fast, but without look-arounds or back-references
            found = pc.match_substring_regex(
                values, entry.pattern, ignore_case=bool(entry.flags & re.IGNORECASE)
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _python_matches(values, entry)
    else:
        return _python_matches(values, entry)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _python_matches(values: pa.ChunkedArray, pattern: re.Pattern[str]) -> BoolArray:
    """Python's ``re`` once per distinct value, mapped back to the rows."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    hits = np.array(
        [s is not None and pattern.search(s) is not None for s in encoded.dictionary.to_pylist()],
        dtype=bool,
    )
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))
    return np.where(codes >= 0, hits[np.maximum(codes, 0)] if hits.size else False, False)


__all__ = ["FORMAT_VERSION", "REASONS", "SanitizeReport", "sanitize"]
