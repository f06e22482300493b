"""Data schemas: what a feature is allowed to look like, inferred from statistics.

A schema is inferred once from the training data's statistics (:func:`infer_schema`),
written as YAML for people to read and edit (:meth:`Schema.to_yaml`), then used to
validate every later batch (``_validation.validate_statistics``). Inference leaves a
little room where a second sample of the same data would differ by chance — numeric
ranges get a margin, presence a few points of slack — so clean data passes and real
changes do not.

The YAML carries ``format_version``; a reader checks the whole document (pydantic) before
building anything, and every error names the feature and field to fix.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mloop.data._model import FeatureKind
from mloop.data._statistics import DatasetStatistics, FeatureStats
from mloop.errors import Conflict, InvalidInput

FORMAT_VERSION = 1
"""Version of the schema YAML format this mloop writes and reads."""

FeatureType = Literal["int", "float", "string", "bool", "timestamp", "list"]
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)

DEFAULT_MAX_DOMAIN = 50
RANGE_MARGIN = 0.1  # continuous ranges grow by at least 10 % of their span on each side
PRESENCE_SLACK = 0.05  # a sometimes-missing feature may be missing 5 points more often

_KIND_OF_TYPE: dict[str, FeatureKind] = {
    "int": FeatureKind.NUMERIC,
    "float": FeatureKind.NUMERIC,
    "timestamp": FeatureKind.NUMERIC,
    "string": FeatureKind.CATEGORICAL,
    "bool": FeatureKind.CATEGORICAL,
    "list": FeatureKind.LIST,
}
# dtypes the statistics record when parts of the data disagree on the exact Arrow type
GENERIC_DTYPES = frozenset({"double", "string", "list"})


def kind_of_type(feature_type: str) -> FeatureKind:
    return _KIND_OF_TYPE[feature_type]


def feature_type_of(dtype: str) -> FeatureType | None:
    """The schema type of an Arrow type string (``str(pa.DataType)``); None for ``null``."""
    if dtype == "null":
        return None
    if dtype == "list" or dtype.startswith(
        ("list<", "large_list<", "fixed_size_list<", "list_view<", "large_list_view<", "map<")
    ):
        return "list"
    if dtype == "bool":
        return "bool"
    if dtype.startswith(("int", "uint", "time32", "time64", "duration")):
        return "int"
    if dtype in ("halffloat", "float", "double") or dtype.startswith("decimal"):
        return "float"
    if dtype.startswith(("timestamp", "date32", "date64")):
        return "timestamp"
    return "string"  # strings, binary, dictionaries and anything else counted as categories


@dataclass
class Feature:
    """What one column may contain.

    ``presence`` is the minimum fraction of rows with a value (1.0: required). ``domain``
    lists the allowed categories of a string/bool feature; ``range`` bounds numbers
    (inclusive; ``±inf`` leaves a side open); ``allow_nan``/``allow_inf`` permit
    non-finite floats; ``list_length`` bounds list lengths. ``environments`` names where
    the feature is expected (``None``: everywhere; the label is typically ``["TRAINING"]``).
    """

    name: str
    type: FeatureType
    presence: float = 1.0
    domain: list[str] | None = None
    range: tuple[float, float] | None = None
    allow_nan: bool = False
    list_length: tuple[int, int] | None = None
    environments: list[str] | None = None
    description: str = ""
    allow_inf: bool = False

    @property
    def required(self) -> bool:
        return self.presence >= 1.0

    def expected_in(self, environment: str) -> bool:
        """Whether the feature belongs in data of ``environment`` (case-insensitive)."""
        if self.environments is None:
            return True
        return environment.upper() in {e.upper() for e in self.environments}


@dataclass
class Schema:
    """The features of a data set; ``version`` is the YAML format version."""

    features: list[Feature] = field(default_factory=list)
    version: int = FORMAT_VERSION
    frozen: bool = False

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(
                f"schema lists feature {duplicates[0]!r} more than once; keep one entry"
            )

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    def __getitem__(self, name: str) -> Feature:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def freeze(self) -> Schema:
        """Mark the schema as curated: :meth:`update_from` refuses it. Returns ``self``."""
        self.frozen = True
        return self

    def update_from(
        self, stats: DatasetStatistics, *, max_domain: int = DEFAULT_MAX_DOMAIN
    ) -> Schema:
        """A copy widened to accept ``stats`` too: new categories join domains, ranges and
        list lengths grow, presence may fall, NaN becomes allowed once seen, and new
        columns are added as inferred. ``self`` is not changed.

        A frozen schema is a decision a person made, so it is never widened automatically.
        """
        if self.frozen:
            raise Conflict(
                "the schema is frozen, so it is not widened from new data; edit schema.yaml "
                "by hand, or set 'frozen: false' in it to let mloop update it"
            )
        inferred = infer_schema(stats, max_domain=max_domain)
        fresh = {f.name: f for f in inferred.features}
        features: list[Feature] = []
        for old in self.features:
            new = fresh.pop(old.name, None)
            fs = stats.features.get(old.name)
            if new is None or fs is None:
                features.append(replace(old))
                continue
            features.append(_widened(old, new, fs))
        features.extend(fresh.values())
        return Schema(features, self.version, frozen=False)

    # -- YAML ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The YAML document as plain data: stable key order, unset options left out."""
        return {
            "format_version": self.version,
            "frozen": self.frozen,
            "features": [_feature_dict(f) for f in self.features],
        }

    def to_yaml(self) -> str:
        body = yaml.dump(
            self.to_dict(),
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=100,
        )
        return _YAML_HEADER + body

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "schema") -> Schema:
        if not isinstance(data, dict):
            raise InvalidInput(
                f"{source} is not a schema: expected a mapping with 'format_version' and "
                "'features'; write one with `mloop data infer-schema`"
            )
        version = data.get("format_version")
        if "format_version" not in data:
            raise InvalidInput(
                f"{source} has no 'format_version'; add 'format_version: {FORMAT_VERSION}' "
                "at the top"
            )
        if type(version) is not int or version != FORMAT_VERSION:
            raise InvalidInput(
                f"{source} has format_version {version!r}, which this mloop does not read "
                f"(it reads {FORMAT_VERSION}); upgrade mloop or infer the schema again"
            )
        try:
            document = _SchemaDoc.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(_explain(exc, data, source)) from None
        features = [
            Feature(
                name=f.name,
                type=f.type,
                presence=f.presence,
                domain=None if f.domain is None else list(f.domain),
                range=f.range,
                allow_nan=f.allow_nan,
                list_length=f.list_length,
                environments=f.environments,
                description=f.description,
                allow_inf=f.allow_inf,
            )
            for f in document.features
        ]
        return cls(features, document.format_version, document.frozen)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "schema.yaml") -> Schema:
        """Parse and check a schema document; every problem is one :class:`InvalidInput`."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "it does not parse"
            raise InvalidInput(f"{source} is not valid YAML{where}: {problem}") from None
        return cls.from_dict(data, source=source)


# -- inference ----------------------------------------------------------------------------


def infer_schema(stats: DatasetStatistics, *, max_domain: int = DEFAULT_MAX_DOMAIN) -> Schema:
    """A schema that accepts the data summarized by ``stats`` and data like it.

    - type from the Arrow type (all-missing columns become ``string``);
    - presence 1.0 if never missing, else the observed fraction less 5 points, rounded
      down to a percent;
    - a categorical domain when the column has at most ``max_domain`` distinct values and
      they were counted exactly;
    - a numeric range from min/max: exact for discrete columns (at most ``max_domain``
      distinct values, each seen five times on average), otherwise widened on each side
      by the larger of 10 % of the span and the distance from the 1st/99th percentile to
      the min/max (long tails reach further), never below zero for a column that never
      was; timestamps get no range (new data is later);
    - ``allow_nan``/``allow_inf`` when NaN/infinities were seen;
    - list lengths from the shortest and longest list, with the same margin when they vary.
    """
    if max_domain < 0:
        raise InvalidInput(f"max_domain must be zero or more, got {max_domain}")
    features = [_infer_feature(fs, stats.num_rows, max_domain) for fs in stats.features.values()]
    return Schema(features)


def _infer_feature(fs: FeatureStats, num_rows: int, max_domain: int) -> Feature:
    ftype = feature_type_of(fs.dtype) or "string"
    feature = Feature(name=fs.name, type=ftype, presence=_presence(fs, num_rows))
    if ftype == "string" and fs.kind is FeatureKind.CATEGORICAL:
        counts = fs.frequencies()
        if fs.exact and 0 < len(counts) <= max_domain:
            feature.domain = sorted(counts)
    elif ftype in ("int", "float") and fs.min is not None and fs.max is not None:
        # discrete: few values, each seen several times (codes, ratings, flags)
        distinct = fs.distinct_count
        discrete = fs.exact and distinct <= max_domain and 5 * distinct <= fs.finite_count
        q01, q99 = fs.quantiles([0.01, 0.99])
        feature.range = _inferred_range(
            fs.min, fs.max, (q01, q99), integer=ftype == "int", exact=discrete
        )
    if ftype == "float":
        feature.allow_nan = fs.nan > 0
        feature.allow_inf = fs.inf > 0
    if ftype == "list" and fs.lengths is not None:
        low, high = fs.lengths.min, fs.lengths.max
        if low is not None and high is not None:
            pad = math.ceil(RANGE_MARGIN * (high - low))
            feature.list_length = (max(0, low - pad), high + pad)
    return feature


def _presence(fs: FeatureStats, num_rows: int) -> float:
    rows = fs.count or num_rows
    if rows == 0 or fs.missing == 0:
        return 1.0
    present = (rows - fs.missing) / rows
    return max(0.0, math.floor(round((present - PRESENCE_SLACK) * 100, 6)) / 100)


def _inferred_range(
    low: float,
    high: float,
    tails: tuple[float, float],
    *,
    integer: bool,
    exact: bool,
) -> tuple[float, float]:
    if integer:
        low, high = math.floor(low), math.ceil(high)
    if exact or high == low:
        return (int(low), int(high)) if integer else (low, high)
    span = high - low
    # A long tail (max far beyond the 99th percentile) will reach further in new data.
    below = max(RANGE_MARGIN * span, tails[0] - low if math.isfinite(tails[0]) else 0.0)
    above = max(RANGE_MARGIN * span, high - tails[1] if math.isfinite(tails[1]) else 0.0)
    lo, hi = low - below, high + above
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return math.floor(lo), math.ceil(hi)
    # round outward to three significant digits of the span: readable and still covering
    exponent = math.floor(math.log10(span)) - 2
    step = 10.0**exponent
    digits = max(0, -exponent)
    lo_r = round(math.floor(lo / step) * step, digits)
    hi_r = round(math.ceil(hi / step) * step, digits)
    return min(lo_r, lo), max(hi_r, hi)


def _widened(old: Feature, new: Feature, fs: FeatureStats) -> Feature:
    out = replace(old)
    if old.type == "int" and new.type == "float":
        out.type = "float"
    out.presence = min(old.presence, new.presence)
    if old.domain is not None and kind_of_type(old.type) is FeatureKind.CATEGORICAL:
        if fs.kind is FeatureKind.CATEGORICAL and fs.exact:
            out.domain = sorted(set(old.domain) | set(fs.frequencies()))
        elif fs.kind is FeatureKind.CATEGORICAL:
            out.domain = None  # too many categories to enumerate any more
    if old.range is not None and fs.min is not None and fs.max is not None:
        out.range = (min(old.range[0], fs.min), max(old.range[1], fs.max))
    out.allow_nan = old.allow_nan or fs.nan > 0
    out.allow_inf = old.allow_inf or fs.inf > 0
    if old.list_length is not None and new.list_length is not None and fs.lengths is not None:
        low = fs.lengths.min if fs.lengths.min is not None else old.list_length[0]
        high = fs.lengths.max if fs.lengths.max is not None else old.list_length[1]
        out.list_length = (min(old.list_length[0], low), max(old.list_length[1], high))
    return out


# -- YAML writing -------------------------------------------------------------------------

_YAML_HEADER = (
    "# mloop schema: what each feature may look like. Edit freely; see docs/schema-validation.md.\n"
    "# presence: minimum fraction of rows with a value (1.0 = required)\n"
)


class _Flow(list[Any]):
    """A short list written on one line: ``range: [0, 120]``."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=True)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML folds unusual line breaks (NEL, LS, PS, CR) in plain and single-quoted text;
    # double quotes escape them, so the text reads back exactly.
    style = (
        '"' if any(c in _ODD_BREAKS or not (c.isprintable() or c == " ") for c in data) else None
    )
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ODD_BREAKS = frozenset("\x85\u2028\u2029\r")
_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(str, _represent_str)


def _feature_dict(f: Feature) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": f.type}
    if f.description:
        out["description"] = f.description
    out["presence"] = float(f.presence)
    if f.environments is not None:
        out["environments"] = _Flow(f.environments)
    if f.domain is not None:
        out["domain"] = list(f.domain)
    if f.range is not None:
        out["range"] = _Flow(f.range)
    if f.type == "float" or f.allow_nan:
        out["allow_nan"] = f.allow_nan
    if f.type == "float" or f.allow_inf:
        out["allow_inf"] = f.allow_inf
    if f.list_length is not None:
        out["list_length"] = _Flow(f.list_length)
    return out


# -- YAML reading: the whole document is checked before any Feature is built ---------------

_Number = int | float


class _FeatureDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: FeatureType
    description: str = ""
    presence: float = Field(default=1.0, ge=0.0, le=1.0)
    environments: list[str] | None = None
    domain: list[str] | None = None
    range: tuple[_Number, _Number] | None = None
    allow_nan: bool = False
    allow_inf: bool = False
    list_length: tuple[int, int] | None = None

    @field_validator("name", "description", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {value!r}; put it in quotes")
        return value

    @field_validator("domain", mode="before")
    @classmethod
    def _domain_values(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, bool) or item is None:
                raise ValueError(
                    f"value {item!r} must be quoted: YAML reads unquoted yes/no/true/false/"
                    "null as booleans or null, not as the text in your data"
                )
            out.append(str(item) if isinstance(item, (int, float)) else item)
        if len(set(out)) != len(out):
            raise ValueError("lists a value more than once; keep one of each")
        return out

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not e.strip() for e in value):
            raise ValueError("environment names must not be empty (e.g. TRAINING, SERVING)")
        return value

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is None:
            return None
        if any(isinstance(v, float) and math.isnan(v) for v in value):
            raise ValueError("bounds must be numbers, not NaN; use .inf/-.inf for an open side")
        if value[0] > value[1]:
            raise ValueError(f"minimum {value[0]} is above maximum {value[1]}")
        return value

    @field_validator("list_length")
    @classmethod
    def _list_length(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] < 0 or value[0] > value[1]):
            raise ValueError(
                f"must be [shortest, longest] with 0 <= shortest <= longest, got {list(value)}"
            )
        return value

    @model_validator(mode="after")
    def _fits_type(self) -> _FeatureDoc:
        if self.domain is not None and self.type not in ("string", "bool"):
            raise ValueError(f"'domain' applies to string and bool features, not {self.type}")
        if self.range is not None and self.type not in ("int", "float", "timestamp"):
            raise ValueError(f"'range' applies to numeric features, not {self.type}")
        if self.list_length is not None and self.type != "list":
            raise ValueError(f"'list_length' applies to list features, not {self.type}")
        if (self.allow_nan or self.allow_inf) and self.type != "float":
            raise ValueError(f"only float features can hold NaN or infinity, not {self.type}")
        return self


class _SchemaDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int
    frozen: bool = False
    features: list[_FeatureDoc]

    @model_validator(mode="after")
    def _unique(self) -> _SchemaDoc:
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise ValueError(f"feature {f.name!r} is listed twice; keep one entry")
            seen.add(f.name)
        return self


_FEATURE_FIELDS = tuple(_FeatureDoc.model_fields)
_SCHEMA_FIELDS = tuple(_SchemaDoc.model_fields)


def _explain(exc: ValidationError, data: dict[str, Any], source: str) -> str:
    """One line naming, for each problem (up to three), the feature and field to fix."""
    problems = [_problem(error, data) for error in exc.errors()]
    shown = "; ".join(problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{source} is not a valid schema: {shown}{more}"


def _problem(error: Any, data: dict[str, Any]) -> str:
    loc: Sequence[Any] = error["loc"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = _FEATURE_FIELDS if loc and loc[0] == "features" else _SCHEMA_FIELDS
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"valid fields: {', '.join(known)}"
        message = f"unknown field ({hint})"
    if len(loc) >= 2 and loc[0] == "features" and isinstance(loc[1], int):
        where = _feature_label(data, loc[1])
        rest = [str(p) for p in loc[2:]]
        if rest:
            field_name = rest[0] + "".join(f"[{p}]" for p in rest[1:])
            return f"{where}, field {field_name!r}: {message}"
        return f"{where}: {message}"
    return f"field {'.'.join(str(p) for p in loc) or '(top level)'!r}: {message}"


def _feature_label(data: dict[str, Any], index: int) -> str:
    features = data.get("features")
    entry = features[index] if isinstance(features, list) and index < len(features) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str):
        return f"feature {name!r}"
    return f"feature #{index + 1}"


__all__ = [
    "DEFAULT_MAX_DOMAIN",
    "FEATURE_TYPES",
    "FORMAT_VERSION",
    "GENERIC_DTYPES",
    "Feature",
    "FeatureType",
    "Schema",
    "feature_type_of",
    "infer_schema",
    "kind_of_type",
]
