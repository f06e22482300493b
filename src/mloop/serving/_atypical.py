"""Atypical-input detection (MITRE ATLAS AML.M0015, adversarial input detection).

A request unlike anything the model was trained on gets an answer the model never earned:
it may be an evasion attempt, a probe, or a broken client. The detector is fitted once from
the training data (or its stored statistics) and checks every request row with three
vectorized tests, each naming the feature that failed:

- **out of range**: a numeric value beyond the training band (min/max by default, or a
  quantile band), or not finite, or missing where training never had a missing value;
- **unseen category**: a string value training never contained (for columns of at most
  ``max_categories`` distinct values; wider columns are free text and not checked);
- **outlier score**: the robust Mahalanobis distance of the numeric features. Features are
  centred on their median and scaled by their MAD; location and scatter come from the
  75 % most central training rows (concentration steps, as in FastMCD), so the outliers
  the score must find cannot inflate the scatter that measures them. A row is atypical
  when its score is above the chosen quantile of the training rows' own scores.

Fitted from statistics alone (no rows, hence no covariance), the score is the norm of the
robust z-scores and its quantiles are those of a chi distribution with one degree of
freedom per feature.

The detector is stored as JSON (``to_json``/``from_json``, format ``mloop.atypical``
version 1): numbers and strings only, never pickle, checked before use.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.data import DatasetStatistics

FORMAT_NAME = "mloop.atypical"
FORMAT_VERSION = 1
MAD_TO_SD = 1.4826
IQR_TO_SD = 1.349
CENTRAL_SHARE = 0.75
MAX_CATEGORIES = 10_000
RANKS: tuple[float, ...] = tuple(
    sorted({round(r, 4) for r in [*np.linspace(0, 1, 101), *np.linspace(0.99, 1, 21)]})
)
_RIDGE = 1e-6
_BELOW, _ABOVE, _INFINITE, _MISSING = 1, 2, 3, 4
_SHOWN_CHARS = 40

FloatArray = npt.NDArray[np.float64]


# -- the stored form ------------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NumericFeature(_Doc):
    """Training band, robust centre and scale of one numeric feature."""

    name: str = Field(min_length=1)
    low: float
    high: float
    center: float
    scale: float = Field(gt=0)
    missing_seen: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> NumericFeature:
        if self.low > self.high:
            raise ValueError(f"feature {self.name!r}: low {self.low} is above high {self.high}")
        return self


class CategoricalFeature(_Doc):
    """The categories of one string feature; ``values`` None when it is free text."""

    name: str = Field(min_length=1)
    values: tuple[str, ...] | None
    missing_seen: bool = False


class Multivariate(_Doc):
    """The outlier score: ``||((z - location) @ whitening)||`` over the numeric features'
    robust z-scores, and the training scores at ``RANKS`` (``score_quantiles``)."""

    method: Literal["mahalanobis", "diagonal"]
    location: tuple[float, ...]
    whitening: tuple[tuple[float, ...], ...]
    score_quantiles: tuple[float, ...]

    @model_validator(mode="after")
    def _shapes(self) -> Multivariate:
        d = len(self.location)
        if len(self.whitening) != d or any(len(row) != d for row in self.whitening):
            raise ValueError(f"whitening must be {d}x{d} like location")
        if len(self.score_quantiles) != len(RANKS):
            raise ValueError(f"score_quantiles must hold {len(RANKS)} values")
        if any(b < a for a, b in zip(self.score_quantiles, self.score_quantiles[1:], strict=False)):
            raise ValueError("score_quantiles must not decrease")
        return self


class DetectorDoc(_Doc):
    format: Literal["mloop.atypical"]
    format_version: Literal[1]
    training_rows: int = Field(ge=0)
    source: Literal["rows", "statistics"]
    features: tuple[str, ...]
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    multivariate: Multivariate

    @model_validator(mode="after")
    def _consistent(self) -> DetectorDoc:
        named = [f.name for f in self.numeric] + [f.name for f in self.categorical]
        if sorted(named) != sorted(self.features) or len(set(named)) != len(named):
            raise ValueError("features must list each numeric and categorical feature once")
        if len(self.multivariate.location) != len(self.numeric):
            raise ValueError("the outlier score must cover every numeric feature")
        return self


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtypicalResult:
    """The verdict on a batch: per-row scores, flags, and the reasons of flagged rows."""

    scores: FloatArray
    threshold: float
    atypical: npt.NDArray[np.bool_]
    reasons: list[list[str]] = field(repr=False)

    @property
    def count(self) -> int:
        return int(self.atypical.sum())


# -- the detector ---------------------------------------------------------------------------


class AtypicalDetector:
    """Scores request rows against the training data. Build with :meth:`fit`,
    :meth:`from_statistics` or :meth:`from_json`; thread-safe (read-only once built)."""

    def __init__(self, doc: DetectorDoc) -> None:
        self.doc = doc
        self.features = doc.features
        self._numeric = doc.numeric
        self._categorical = doc.categorical
        self._low = np.array([f.low for f in doc.numeric], dtype=np.float64)
        self._high = np.array([f.high for f in doc.numeric], dtype=np.float64)
        self._center = np.array([f.center for f in doc.numeric], dtype=np.float64)
        self._scale = np.array([f.scale for f in doc.numeric], dtype=np.float64)
        self._missing_ok = np.array([f.missing_seen for f in doc.numeric], dtype=bool)
        mv = doc.multivariate
        d = len(doc.numeric)
        self._location = np.array(mv.location, dtype=np.float64).reshape(d)
        self._whitening = np.array(mv.whitening, dtype=np.float64).reshape(d, d)
        self._quantiles = np.array(mv.score_quantiles, dtype=np.float64)
        self._domains = {
            f.name: np.array(sorted(f.values), dtype=str)
            for f in doc.categorical
            if f.values is not None
        }

    def __repr__(self) -> str:
        return (
            f"<AtypicalDetector {len(self._numeric)} numeric, {len(self._categorical)} "
            f"categorical features, {self.doc.multivariate.method}, from {self.doc.source}>"
        )

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        features: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        range_quantiles: tuple[float, float] = (0.0, 1.0),
        max_categories: int = MAX_CATEGORIES,
    ) -> AtypicalDetector:
        """Fit from training rows: a pandas/Polars DataFrame, a pyarrow Table, a mapping of
        column name to values, or an ``[N, F]`` array (``features`` names its columns,
        default ``x0``…). ``exclude`` drops columns such as the label. ``range_quantiles``
        narrows the per-feature band from min/max to those training quantiles."""
        low_q, high_q = range_quantiles
        if not 0.0 <= low_q < high_q <= 1.0:
            raise InvalidInput(
                f"range_quantiles must satisfy 0 <= low < high <= 1, got {range_quantiles}"
            )
        columns = _columns(data, features)
        skip = set(exclude)
        columns = {name: values for name, values in columns.items() if name not in skip}
        if not columns:
            raise InvalidInput("no features left to fit the atypical-input detector on")
        rows = len(next(iter(columns.values())))
        if rows == 0:
            raise InvalidInput("the atypical-input detector needs at least one training row")
        numeric: list[NumericFeature] = []
        categorical: list[CategoricalFeature] = []
        numeric_values: list[FloatArray] = []
        for name, values in columns.items():
            as_float = _as_float(values)
            if as_float is None:
                categorical.append(_fit_categorical(name, values, max_categories))
            else:
                numeric.append(_fit_numeric(name, as_float, low_q, high_q))
                numeric_values.append(as_float)
        if numeric:
            matrix = np.column_stack(numeric_values)
            center = np.array([f.center for f in numeric])
            scale = np.array([f.scale for f in numeric])
            z = (matrix - center) / scale
            location, whitening, method = _robust_scatter(np.where(np.isfinite(z), z, 0.0))
            scores = _score_rows(matrix, center, scale, location, whitening)
            finite = scores[np.isfinite(scores)]
            quantiles = np.quantile(finite, RANKS) if finite.size else np.zeros(len(RANKS))
        else:
            location, whitening, method = np.zeros(0), np.zeros((0, 0)), "diagonal"
            quantiles = np.zeros(len(RANKS))
        doc = DetectorDoc(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            training_rows=rows,
            source="rows",
            features=tuple(columns),
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            multivariate=Multivariate(
                method=method,
                location=tuple(float(v) for v in location),
                whitening=tuple(tuple(float(v) for v in row) for row in whitening),
                score_quantiles=tuple(float(v) for v in np.maximum.accumulate(quantiles)),
            ),
        )
        return cls(doc)

    @classmethod
    def from_statistics(
        cls,
        stats: DatasetStatistics,
        *,
        features: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> AtypicalDetector:
        """Build from a dataset version's stored statistics (no rows are read): bands from
        min/max, centre and scale from the median and interquartile range, categories from
        exact counts; the outlier score treats features as independent."""
        from scipy.stats import chi

        from mloop.data import FeatureKind

        skip = set(exclude)
        names = list(features) if features is not None else list(stats.features)
        missing = [n for n in names if n not in stats.features]
        if missing:
            raise InvalidInput(
                f"the statistics have no feature {missing[0]!r}; they have "
                f"{', '.join(stats.features) or 'none'}"
            )
        numeric: list[NumericFeature] = []
        categorical: list[CategoricalFeature] = []
        for name in names:
            if name in skip:
                continue
            fs = stats.features[name]
            if fs.kind is FeatureKind.NUMERIC and fs.min is not None and fs.max is not None:
                q25, median, q75 = fs.quantiles([0.25, 0.5, 0.75])
                scale = (q75 - q25) / IQR_TO_SD
                if not scale > 0:
                    scale = fs.std if fs.std > 0 else 1.0
                numeric.append(
                    NumericFeature(
                        name=name,
                        low=fs.min,
                        high=fs.max,
                        center=median,
                        scale=scale,
                        missing_seen=fs.missing + fs.nan > 0,
                    )
                )
            elif fs.kind is FeatureKind.CATEGORICAL:
                values = tuple(sorted(fs.frequencies())) if fs.exact else None
                categorical.append(
                    CategoricalFeature(name=name, values=values, missing_seen=fs.missing > 0)
                )
        if not numeric and not categorical:
            raise InvalidInput("the statistics hold no numeric or categorical feature to check")
        d = len(numeric)
        ranks = np.minimum(np.array(RANKS), 0.99999)
        quantiles = chi.ppf(ranks, d) if d else np.zeros(len(RANKS))
        doc = DetectorDoc(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            training_rows=stats.num_rows,
            source="statistics",
            features=(*(f.name for f in numeric), *(f.name for f in categorical)),
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            multivariate=Multivariate(
                method="diagonal",
                location=(0.0,) * d,
                whitening=tuple(tuple(float(i == j) for j in range(d)) for i in range(d)),
                score_quantiles=tuple(float(v) for v in quantiles),
            ),
        )
        return cls(doc)

    # -- storing ----------------------------------------------------------------------------

    def to_json(self) -> str:
        return self.doc.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> AtypicalDetector:
        """Check the whole document before building anything; anything odd is InvalidInput."""
        try:
            header = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("this is not an atypical-input detector (not JSON)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise InvalidInput(
                f"this is not an atypical-input detector (no {FORMAT_NAME!r} format marker)"
            )
        if header.get("format_version") != FORMAT_VERSION:
            raise InvalidInput(
                f"atypical-input detector format version {header.get('format_version')!r} is "
                f"not supported (this mloop reads version {FORMAT_VERSION}); upgrade mloop or "
                "fit the detector again"
            )
        try:
            doc = DetectorDoc.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the document"
            raise InvalidInput(
                f"atypical-input detector is malformed at {where}: {first['msg']}"
            ) from None
        return cls(doc)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON form atomically (a reader never sees half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AtypicalDetector:
        return cls.from_json(Path(path).read_bytes())

    # -- scoring ----------------------------------------------------------------------------

    def threshold(self, quantile: float) -> float:
        """The outlier score at ``quantile`` (0 < q <= 1) of the training rows' scores."""
        if not 0.0 < quantile <= 1.0:
            raise InvalidInput(f"an atypical threshold is a quantile in (0, 1], got {quantile}")
        return float(np.interp(quantile, RANKS, self._quantiles))

    def score(self, batch: Any) -> FloatArray:
        """The outlier score of each row (higher = more atypical; infinite for ±inf)."""
        matrix = self._tensor(batch)
        if matrix is None:
            matrix = self._numeric_matrix(_columns(batch, self.features))
        return self._scores(matrix)

    def _tensor(self, batch: Any) -> FloatArray | None:
        """The batch itself when it is already the numeric matrix (one tensor input)."""
        if (
            isinstance(batch, np.ndarray)
            and batch.ndim == 2
            and batch.dtype.kind in "iuf"
            and not self._categorical
            and batch.shape[1] == len(self._numeric)
        ):
            return batch.astype(np.float64, copy=False)
        return None

    def check(self, batch: Any, quantile: float = 0.99) -> AtypicalResult:
        """Scores, flags and reasons for each row; reasons are built for flagged rows only."""
        threshold = self.threshold(quantile)
        matrix = self._tensor(batch)
        if matrix is None:
            columns = _columns(batch, self.features)
            matrix = self._numeric_matrix(columns)
        else:
            columns = {f.name: matrix[:, j] for j, f in enumerate(self._numeric)}
        n = matrix.shape[0] if self._numeric else _length(columns)
        scores = self._scores(matrix)
        flags = scores > threshold
        if self._numeric:  # NaN compares False; ±inf falls outside every band
            flags |= (
                (matrix < self._low)
                | (matrix > self._high)
                | (np.isnan(matrix) & ~self._missing_ok)
            ).any(axis=1)
        unseen: dict[str, npt.NDArray[np.bool_]] = {}
        for feature in self._categorical:
            values = columns[feature.name]
            absent = _is_missing(values)
            bad = absent if not feature.missing_seen else np.zeros(n, dtype=bool)
            domain = self._domains.get(feature.name)
            if domain is not None:
                text = np.asarray(values).astype(str)
                bad = bad | (~absent & ~np.isin(text, domain))
            unseen[feature.name] = bad
            flags |= bad
        reasons: list[list[str]] = [[] for _ in range(n)]
        flagged = np.flatnonzero(flags)
        if flagged.size:  # the only per-row Python work, and only for flagged rows
            self._explain(reasons, flagged, matrix, columns, unseen, scores, threshold, quantile)
        return AtypicalResult(scores=scores, threshold=threshold, atypical=flags, reasons=reasons)

    def reasons(self, batch: Any, quantile: float = 0.99) -> list[list[str]]:
        """For each row, why it is atypical (an empty list when it is typical)."""
        return self.check(batch, quantile).reasons

    def _numeric_matrix(self, columns: Mapping[str, Any]) -> FloatArray:
        if not self._numeric:
            return np.zeros((_length(columns), 0))
        parts = []
        for feature in self._numeric:
            values = _as_float(columns[feature.name])
            if values is None:
                raise InvalidInput(
                    f"feature {feature.name!r} must be numeric (it was numeric in training)"
                )
            parts.append(values)
        return np.column_stack(parts)

    def _scores(self, matrix: FloatArray) -> FloatArray:
        return _score_rows(matrix, self._center, self._scale, self._location, self._whitening)

    def _explain(
        self,
        reasons: list[list[str]],
        flagged: npt.NDArray[np.intp],
        matrix: FloatArray,
        columns: Mapping[str, Any],
        unseen: Mapping[str, npt.NDArray[np.bool_]],
        scores: FloatArray,
        threshold: float,
        quantile: float,
    ) -> None:
        """Fill ``reasons`` for the ``flagged`` rows (each feature named)."""
        sub = matrix[flagged]
        finite, nan = np.isfinite(sub), np.isnan(sub)
        sub_codes = (
            (finite & (sub < self._low)) * _BELOW
            + (finite & (sub > self._high)) * _ABOVE
            + (~finite & ~nan) * _INFINITE
            + (nan & ~self._missing_ok) * _MISSING
        )
        z = np.abs((sub - self._center) / self._scale) if self._numeric else sub
        z = np.where(np.isfinite(z), z, 0.0)
        worst = z.argmax(axis=1) if self._numeric else np.zeros(len(flagged), dtype=np.intp)
        outlier = (scores[flagged] > threshold) & np.isfinite(scores[flagged])
        bad_categories = {name: bad[flagged] for name, bad in unseen.items() if bad.any()}
        for i, row in enumerate(flagged.tolist()):
            out = reasons[row]
            for j in np.flatnonzero(sub_codes[i]).tolist():
                out.append(self._numeric_reason(j, int(sub_codes[i, j]), float(sub[i, j])))
            for name, bad in bad_categories.items():
                if bad[i]:
                    value = columns[name][row]
                    if _is_null(value):
                        out.append(f"{name} is missing (it never was in training)")
                    else:
                        out.append(f"{name}={_shown(value)} was never seen in training")
            if outlier[i]:
                k = int(worst[i])
                out.append(
                    f"outlier score {scores[row]:.3g} is above {threshold:.3g}, the "
                    f"{quantile:g} quantile of the training rows (most unusual: "
                    f"{self._numeric[k].name}, {z[i, k]:.1f} robust SDs from its median)"
                )

    def _numeric_reason(self, j: int, code: int, value: float) -> str:
        f = self._numeric[j]
        band = f"[{f.low:g}, {f.high:g}]"
        if code == _BELOW:
            return f"{f.name}={value:g} is below the training range {band}"
        if code == _ABOVE:
            return f"{f.name}={value:g} is above the training range {band}"
        if code == _INFINITE:
            return f"{f.name}={value:g} is not finite"
        return f"{f.name} is missing (it never was in training)"


# -- helpers --------------------------------------------------------------------------------


def _columns(data: Any, names: Sequence[str] | None) -> dict[str, Any]:
    """Column name → values for every supported input form."""
    if isinstance(data, Mapping):
        columns = dict(data)
    elif hasattr(data, "column_names") and hasattr(data, "column"):  # pyarrow Table
        columns = {n: data.column(n).to_numpy(zero_copy_only=False) for n in data.column_names}
    elif (
        hasattr(data, "columns")
        and hasattr(data, "__getitem__")
        and not isinstance(data, np.ndarray)
    ):  # pandas or Polars DataFrame
        columns = {str(c): np.asarray(data[c]) for c in data.columns}
    else:
        array = np.asarray(data)
        if array.ndim == 1 and names is not None and len(names) == array.shape[0]:
            array = array.reshape(1, -1)  # one row
        if array.ndim != 2:
            raise InvalidInput(
                f"expected rows of features (a 2-D array, a DataFrame or columns by name), "
                f"got an array of shape {array.shape}"
            )
        labels = list(names) if names is not None else [f"x{i}" for i in range(array.shape[1])]
        if len(labels) != array.shape[1]:
            raise InvalidInput(
                f"the array has {array.shape[1]} columns but {len(labels)} features are named "
                f"({', '.join(labels)})"
            )
        return {name: array[:, i] for i, name in enumerate(labels)}
    if names is None:
        return columns
    absent = [n for n in names if n not in columns]
    if absent:
        raise InvalidInput(
            f"feature {absent[0]!r} is missing from the input; it has "
            f"{', '.join(map(str, columns)) or 'no columns'}"
        )
    return {n: columns[n] for n in names}


def _length(columns: Mapping[str, Any]) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput(f"the input's columns differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _as_float(values: Any) -> FloatArray | None:
    """Values as float64 (None → NaN), or None when the column is not numeric."""
    array = np.asarray(values)
    if array.dtype.kind in "iufb":
        return array.astype(np.float64)
    if array.dtype.kind == "O":
        try:
            flat = [math.nan if _is_null(v) else v for v in array.ravel()]
            if any(isinstance(v, str | bytes) for v in flat):
                return None
            return np.asarray(flat, dtype=np.float64).reshape(array.shape)
        except (TypeError, ValueError):
            return None
    return None


def _is_missing(values: Any) -> npt.NDArray[np.bool_]:
    array = np.asarray(values, dtype=object)
    return np.fromiter((_is_null(v) for v in array), dtype=bool, count=array.shape[0])


def _is_null(value: Any) -> bool:
    """None, NaN, or pandas' NA / NaT (by type name: pandas is optional)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in {"NAType", "NaTType"}


def _fit_numeric(name: str, values: FloatArray, low_q: float, high_q: float) -> NumericFeature:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise InvalidInput(f"feature {name!r} has no finite value in the training data")
    low, high = (float(v) for v in np.quantile(finite, [low_q, high_q]))
    center = float(np.median(finite))
    scale = float(np.median(np.abs(finite - center)) * MAD_TO_SD)
    if not scale > 0:
        scale = float(finite.std()) or 1.0
    return NumericFeature(
        name=name,
        low=low,
        high=high,
        center=center,
        scale=scale,
        missing_seen=bool(np.isnan(values).any()),
    )


def _fit_categorical(name: str, values: Any, max_categories: int) -> CategoricalFeature:
    absent = _is_missing(values)
    present = np.asarray(values, dtype=object)[~absent].astype(str)
    domain = np.unique(present)
    return CategoricalFeature(
        name=name,
        values=tuple(domain.tolist()) if domain.size <= max_categories else None,
        missing_seen=bool(absent.any()),
    )


def _score_rows(
    matrix: FloatArray,
    center: FloatArray,
    scale: FloatArray,
    location: FloatArray,
    whitening: FloatArray,
) -> FloatArray:
    """Outlier scores of raw rows: infinite where a value is, and over the observed
    features alone where a value is missing (the distance in the observed features'
    marginal, i.e. as if the missing value took its most likely value given the others)."""
    n, d = matrix.shape
    if d == 0:
        return np.zeros(n)
    z = (matrix - center) / scale
    nan = np.isnan(z)
    infinite = np.isinf(z).any(axis=1)
    z = np.where(np.isfinite(z), z, 0.0)
    incomplete = np.flatnonzero(nan.any(axis=1))
    scores = _norms(_whiten(z, location, whitening))
    if incomplete.size:
        scatter = np.linalg.inv(whitening @ whitening.T)
        patterns, which = np.unique(nan[incomplete], axis=0, return_inverse=True)
        which = which.reshape(-1)
        for p, pattern in enumerate(patterns):
            rows = incomplete[which == p]
            seen = ~pattern
            if not seen.any():
                scores[rows] = 0.0
                continue
            marginal = np.linalg.cholesky(np.linalg.inv(scatter[np.ix_(seen, seen)]))
            scores[rows] = _norms(_whiten(z[np.ix_(rows, seen)], location[seen], marginal))
    scores[infinite] = np.inf
    return scores


def _robust_scatter(
    z: FloatArray,
) -> tuple[FloatArray, FloatArray, Literal["mahalanobis", "diagonal"]]:
    """Location and whitening matrix of the most central ``CENTRAL_SHARE`` of the rows."""
    n, d = z.shape
    h = max(d + 1, math.ceil(CENTRAL_SHARE * n))
    if n < 2 * (d + 1) or h >= n + 1:
        return np.zeros(d), np.eye(d), "diagonal"
    subset = np.sort(np.argsort(_norms(z), kind="stable")[:h])
    location, whitening = _fit_subset(z[subset])
    for _ in range(30):
        distances = _norms(_whiten(z, location, whitening))
        chosen = np.sort(np.argsort(distances, kind="stable")[:h])
        if np.array_equal(chosen, subset):
            break
        subset = chosen
        location, whitening = _fit_subset(z[subset])
    return location, whitening, "mahalanobis"


def _fit_subset(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    d = rows.shape[1]
    location = rows.mean(axis=0)
    scatter = np.atleast_2d(np.cov(rows, rowvar=False)) + _RIDGE * np.eye(d)
    whitening = np.linalg.cholesky(np.linalg.inv(scatter))
    return location, whitening


def _whiten(z: FloatArray, location: FloatArray, whitening: FloatArray) -> FloatArray:
    """``(z - location) @ whitening`` row by row, without BLAS: a row's score must not
    depend on the batch it arrives in (BLAS kernels sum in batch-dependent orders)."""
    whitened: FloatArray = np.einsum("ij,jk->ik", z - location, whitening, optimize=False)
    return whitened


def _norms(rows: FloatArray) -> FloatArray:
    squared: FloatArray = np.einsum("ij,ij->i", rows, rows)
    return np.sqrt(squared)


def _shown(value: Any) -> str:
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 4] + "…'"


def detector_for_model_version(
    name: str,
    version: int,
    *,
    features: Sequence[str] | None = None,
    exclude: Iterable[str] = (),
    store: Any = None,
) -> AtypicalDetector:
    """A detector built from the stored statistics of the data a registered version was
    trained on (its lineage), so serving needs no extra file. ``features`` defaults to the
    column names of the model's input signature; a tensor signature needs them listed in
    column order."""
    from mloop.data import get_dataset_version
    from mloop.registry import get_model_version

    mv = get_model_version(name, version, store=store)
    if not mv.dataset_versions:
        raise InvalidInput(
            f"model {name} version {version} records no training dataset; register it with "
            "dataset_versions=[…] or fit AtypicalDetector on the training data yourself"
        )
    stats = None
    for ref in mv.dataset_versions:
        part = get_dataset_version(ref).statistics()
        stats = part if stats is None else stats.merge(part)
    assert stats is not None
    if features is None:
        features = _signature_columns(mv.source)
    return AtypicalDetector.from_statistics(stats, features=features, exclude=exclude)


def _signature_columns(source: str) -> list[str] | None:
    from mloop.models import ColumnSchema, resolve_package
    from mloop.models._manifest import MANIFEST_NAME, Manifest

    package = resolve_package(source)
    manifest = Manifest.from_json((package / MANIFEST_NAME).read_bytes())
    signature = manifest.signature
    if signature is None:
        return None
    inputs = signature.inputs
    if isinstance(inputs, ColumnSchema):
        return inputs.names
    raise InvalidInput(
        "the model takes one tensor, so its columns have no names; pass features=[…] in the "
        "tensor's column order"
    )


__all__ = ["AtypicalDetector", "AtypicalResult", "detector_for_model_version"]
