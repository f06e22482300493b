"""Validate data (through its statistics) against a schema: a list of anomalies.

Validation never re-reads data: it compares the statistics of a new batch with what the
schema allows, so it costs the same for a thousand rows or a billion. Each anomaly says
what is wrong, how much of the data it touches (``share``: a fraction of the rows), and
what to do about it — fix the data, or, if the change is expected, update schema.yaml.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from mloop.data._model import FeatureKind
from mloop.data._schema import GENERIC_DTYPES, Feature, Schema, feature_type_of, kind_of_type
from mloop.data._statistics import DatasetStatistics, FeatureStats

EXAMPLES_SHOWN = 5
_REINFER = "run `mloop data infer-schema` again"


class Severity(enum.StrEnum):
    ERROR = "ERROR"  # the data breaks the schema: stop the pipeline
    WARNING = "WARNING"  # worth a look, not a reason to stop


class AnomalyKind(enum.StrEnum):
    MISSING_COLUMN = "missing_column"
    NEW_COLUMN = "new_column"
    UNEXPECTED_COLUMN = "unexpected_column"  # present in an environment that does not list it
    TYPE_CHANGE = "type_change"
    UNSEEN_CATEGORIES = "unseen_categories"
    OUT_OF_RANGE = "out_of_range"
    PRESENCE_DROP = "presence_drop"
    UNEXPECTED_NAN = "unexpected_nan"
    UNEXPECTED_INF = "unexpected_inf"
    LIST_LENGTH = "list_length"


@dataclass
class Anomaly:
    """One way the data departs from the schema.

    ``share`` is the fraction of rows affected when it can be measured; ``values`` holds
    the first few offending values (unseen categories).
    """

    feature: str
    kind: AnomalyKind
    severity: Severity
    description: str
    share: float | None = None
    values: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "description": self.description,
            "share": self.share,
            "values": list(self.values),
        }


def validate_statistics(
    stats: DatasetStatistics, schema: Schema, *, environment: str = "TRAINING"
) -> list[Anomaly]:
    """Anomalies of the data summarized by ``stats`` against ``schema`` in ``environment``.

    Features are checked in schema order, then columns the schema does not know are
    reported (WARNING). A feature whose ``environments`` do not include ``environment``
    may be absent; if it is present, that is a WARNING (a label in serving data leaks).
    """
    env = environment.upper()
    anomalies: list[Anomaly] = []
    for feature in schema.features:
        fs = stats.features.get(feature.name)
        expected = feature.expected_in(env)
        if fs is None:
            if expected and feature.presence > 0:
                anomalies.append(_missing_column(feature, env))
            continue
        if not expected:
            anomalies.append(_unexpected_column(feature, env))
            continue
        anomalies.extend(_check_feature(feature, fs, stats.num_rows))
    known = set(schema.names)
    anomalies.extend(
        _new_column(fs, env) for name, fs in stats.features.items() if name not in known
    )
    return anomalies


def _check_feature(feature: Feature, fs: FeatureStats, num_rows: int) -> list[Anomaly]:
    changed = _type_change(feature, fs)
    if changed is not None:
        return [changed]
    rows = fs.count or num_rows
    if rows == 0:
        return []
    found = [_presence_drop(feature, fs, rows)]
    if feature.domain is not None and fs.kind is FeatureKind.CATEGORICAL:
        found.append(_unseen_categories(feature, fs, rows))
    if fs.kind is FeatureKind.NUMERIC:
        found.append(_out_of_range(feature, fs, rows))
        found.append(_nan(feature, fs, rows))
        found.append(_inf(feature, fs, rows))
    if fs.kind is FeatureKind.LIST:
        found.append(_list_length(feature, fs))
    return [a for a in found if a is not None]


# -- one check each ------------------------------------------------------------------------


def _missing_column(feature: Feature, env: str) -> Anomaly:
    need = "required" if feature.required else f"expected in {feature.presence:.0%} of rows"
    return Anomaly(
        feature.name,
        AnomalyKind.MISSING_COLUMN,
        Severity.ERROR,
        f"Column {feature.name!r} is {need} in {env} data but the data has no such column. "
        f"Add the column upstream; if {env} data does not need it, set its 'environments' "
        f"in schema.yaml to the environments that do (e.g. [TRAINING]).",
        share=1.0,
    )


def _unexpected_column(feature: Feature, env: str) -> Anomaly:
    listed = ", ".join(feature.environments or [])
    return Anomaly(
        feature.name,
        AnomalyKind.UNEXPECTED_COLUMN,
        Severity.WARNING,
        f"Column {feature.name!r} is present in {env} data but the schema expects it only in "
        f"{listed}. If {env} data should carry it, add {env!r} to its 'environments' in "
        f"schema.yaml; otherwise drop it (a label in serving data can leak into predictions).",
    )


def _new_column(fs: FeatureStats, env: str) -> Anomaly:
    return Anomaly(
        fs.name,
        AnomalyKind.NEW_COLUMN,
        Severity.WARNING,
        f"Column {fs.name!r} ({fs.dtype}) is in the {env} data but not in the schema. If it "
        f"is a new feature, add it to schema.yaml or {_REINFER}; otherwise drop it upstream.",
    )


def _type_change(feature: Feature, fs: FeatureStats) -> Anomaly | None:
    actual = feature_type_of(fs.dtype)
    if actual is None or actual == feature.type:
        return None  # an all-missing column has no type to disagree with
    if feature.type == "float" and actual == "int":
        return None  # integers are valid floats
    if fs.dtype in GENERIC_DTYPES and fs.kind is kind_of_type(feature.type):
        return None  # parts of the data had different exact types of the same kind
    return Anomaly(
        feature.name,
        AnomalyKind.TYPE_CHANGE,
        Severity.ERROR,
        f"Column {feature.name!r} has type {actual} (Arrow {fs.dtype}) but the schema says "
        f"{feature.type}. Cast it back to {feature.type} upstream; if the change is intended, "
        f"set 'type: {actual}' in schema.yaml (and check its domain/range) or {_REINFER}.",
        share=1.0,
    )


def _presence_drop(feature: Feature, fs: FeatureStats, rows: int) -> Anomaly | None:
    present = (rows - fs.missing) / rows
    if present >= feature.presence - 1e-12:
        return None
    missing = fs.missing / rows
    allowed = 1.0 - feature.presence
    return Anomaly(
        feature.name,
        AnomalyKind.PRESENCE_DROP,
        Severity.ERROR,
        f"Column {feature.name!r} is missing in {_pct(missing)} of rows ({fs.missing} of "
        f"{rows}); the schema allows at most {_pct(allowed)} (presence {feature.presence:g}). "
        f"Find out why values went missing upstream; if this is expected, lower 'presence' "
        f"of {feature.name!r} in schema.yaml or {_REINFER}.",
        share=missing,
    )


def _unseen_categories(feature: Feature, fs: FeatureStats, rows: int) -> Anomaly | None:
    assert feature.domain is not None
    domain = set(feature.domain)
    counts = fs.frequencies()
    present = rows - fs.missing
    in_domain = sum(n for value, n in counts.items() if value in domain)
    unseen_rows = max(0, present - in_domain)
    unseen = [value for value in counts if value not in domain]
    if unseen_rows == 0 and not unseen:
        return None
    share = unseen_rows / rows
    shown = ", ".join(repr(v) for v in unseen[:EXAMPLES_SHOWN])
    more = f" and {len(unseen) - EXAMPLES_SHOWN} more" if len(unseen) > EXAMPLES_SHOWN else ""
    estimate = "" if fs.exact else "about "
    what = f": {shown}{more}" if unseen else " (too many distinct values to list)"
    first = repr(unseen[0]) if unseen else "the new values"
    return Anomaly(
        feature.name,
        AnomalyKind.UNSEEN_CATEGORIES,
        Severity.ERROR,
        f"Column {feature.name!r} has values outside its domain in {estimate}{_pct(share)} of "
        f"rows{what}. If this is expected, add {first} to the domain of {feature.name!r} in "
        f"schema.yaml or {_REINFER}; otherwise fix the data upstream.",
        share=share,
        values=unseen[:EXAMPLES_SHOWN],
    )


def _out_of_range(feature: Feature, fs: FeatureStats, rows: int) -> Anomaly | None:
    if feature.range is None or fs.min is None or fs.max is None:
        return None
    low, high = feature.range
    below_min = math.isfinite(low) and fs.min < low
    above_max = math.isfinite(high) and fs.max > high
    if not (below_min or above_max):
        return None
    n = fs.finite_count
    below = above = 0.0
    if below_min:
        below = max(fs.cdf([float(low)])[0], 1.0 / n)
    if above_max:
        point = math.nextafter(float(high), math.inf)  # cdf counts values < point: <= high
        at_most = fs.cdf([point])[0] if math.isfinite(point) else 1.0
        above = max(1.0 - at_most, 1.0 / n)
    share = (below + above) * n / rows
    parts = []
    if below_min:
        parts.append(f"{_pct(below * n / rows)} of rows below the minimum {low:g}")
    if above_max:
        parts.append(f"{_pct(above * n / rows)} above the maximum {high:g}")
    return Anomaly(
        feature.name,
        AnomalyKind.OUT_OF_RANGE,
        Severity.ERROR,
        f"Column {feature.name!r} has {' and '.join(parts)} (values seen: {fs.min:g} to "
        f"{fs.max:g}). If this is expected, widen 'range' of {feature.name!r} in schema.yaml "
        f"or {_REINFER}; otherwise fix the data upstream.",
        share=share,
    )


def _nan(feature: Feature, fs: FeatureStats, rows: int) -> Anomaly | None:
    if fs.nan == 0 or feature.allow_nan:
        return None
    share = fs.nan / rows
    return Anomaly(
        feature.name,
        AnomalyKind.UNEXPECTED_NAN,
        Severity.ERROR,
        f"Column {feature.name!r} has NaN in {_pct(share)} of rows ({fs.nan}) but the schema "
        f"does not allow NaN. Fix the computation that produced them; if NaN is meaningful "
        f"here, set 'allow_nan: true' for {feature.name!r} in schema.yaml.",
        share=share,
    )


def _inf(feature: Feature, fs: FeatureStats, rows: int) -> Anomaly | None:
    if fs.inf == 0 or feature.allow_inf:
        return None
    share = fs.inf / rows
    return Anomaly(
        feature.name,
        AnomalyKind.UNEXPECTED_INF,
        Severity.ERROR,
        f"Column {feature.name!r} has infinite values in {_pct(share)} of rows ({fs.inf}) but "
        f"the schema does not allow them. Fix the computation that produced them (a division "
        f"by zero?); if infinities are meaningful here, set 'allow_inf: true' for "
        f"{feature.name!r} in schema.yaml.",
        share=share,
    )


def _list_length(feature: Feature, fs: FeatureStats) -> Anomaly | None:
    if feature.list_length is None or fs.lengths is None:
        return None
    low, high = feature.list_length
    shortest, longest = fs.lengths.min, fs.lengths.max
    if shortest is None or longest is None or (shortest >= low and longest <= high):
        return None
    return Anomaly(
        feature.name,
        AnomalyKind.LIST_LENGTH,
        Severity.ERROR,
        f"Column {feature.name!r} has lists of {shortest} to {longest} items; the schema "
        f"allows {low} to {high}. If this is expected, widen 'list_length' of "
        f"{feature.name!r} in schema.yaml or {_REINFER}; otherwise fix the data upstream.",
    )


def _pct(fraction: float) -> str:
    if fraction == 0:
        return "0%"
    if fraction < 0.0001:
        return "<0.01%"
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


__all__ = ["Anomaly", "AnomalyKind", "Severity", "validate_statistics"]
