"""Drift (window vs window) and skew (training vs serving): one engine over statistics.

:func:`detect_drift` compares two :class:`~mloop.data._statistics.DatasetStatistics`
feature by feature with the method the :class:`DriftConfig` picks for the feature's kind
(or names for the feature), and also compares the shares of missing, NaN and infinite
values: a change in presence is drift even when the present values look alike.

Distances, not p-values, decide by default. On a million rows every p-value test rejects
for changes nobody cares about; a distance has a meaning that does not depend on the
sample size. The defaults (``wasserstein`` 0.05 for numbers, ``linf`` 0.01 for categories,
presence 0.01) were chosen with ``bench/drift.py``: on 1M vs 1M rows they flag every
injected change and no unchanged column. ``docs/drift.md`` explains the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.data._drift_methods import DriftMethod, get_drift_method
from mloop.data._model import FeatureKind
from mloop.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from mloop.data._statistics import DatasetStatistics, FeatureStats

CONFIG_VERSION = 1
REPORT_VERSION = 1
DEFAULT_PRESENCE_THRESHOLD = 0.01


@dataclass
class MethodChoice:
    """A method, its threshold (``None``: the method's default) and its parameters."""

    method: str
    threshold: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> tuple[DriftMethod, float]:
        method = get_drift_method(self.method)
        threshold = method.default_threshold if self.threshold is None else self.threshold
        return method, threshold


@dataclass
class FeatureOverride:
    """Per-feature settings; unset fields fall back to the defaults for the feature's kind."""

    method: str | None = None
    threshold: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    presence_threshold: float | None = None
    skip: bool = False


def _default_methods() -> dict[FeatureKind, MethodChoice]:
    return {
        FeatureKind.NUMERIC: MethodChoice("wasserstein", 0.05),
        FeatureKind.CATEGORICAL: MethodChoice("linf", 0.01),
    }


@dataclass
class DriftConfig:
    """Which method and threshold decide for each feature, and how the verdict is formed.

    ``defaults`` maps a feature kind to its method; ``features`` overrides it per feature.
    A list feature is compared through its items, with the method for the items' kind.
    ``presence_threshold`` bounds the change in the share of missing, NaN or infinite
    values (``None`` turns the check off). The overall verdict is "drifted" when any
    feature drifts, or, with ``drift_share`` set, when at least that share of the compared
    features drifts.
    """

    defaults: dict[FeatureKind, MethodChoice] = field(default_factory=_default_methods)
    features: dict[str, FeatureOverride] = field(default_factory=dict)
    presence_threshold: float | None = DEFAULT_PRESENCE_THRESHOLD
    drift_share: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "drift config") -> DriftConfig:
        """Build and check a config; a bad key or value raises :class:`InvalidInput`."""
        return _parse_config(data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DriftConfig:
        """Read a config from a YAML file (see ``docs/drift.md`` for the format)."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInput(
                f"cannot read drift config {str(path)!r}: {error.strerror or error}; check the path"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidInput(
                f"drift config {str(path)!r} is not valid YAML: {error}".replace("\n", " ")
            ) from None
        if data is None:
            data = {}
        return _parse_config(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        """The config in the shape :meth:`from_dict` reads."""

        def choice(c: MethodChoice) -> dict[str, Any]:
            out: dict[str, Any] = {"method": c.method}
            if c.threshold is not None:
                out["threshold"] = c.threshold
            if c.params:
                out["params"] = dict(c.params)
            return out

        features: dict[str, Any] = {}
        for name, o in self.features.items():
            entry: dict[str, Any] = {}
            for key in ("method", "threshold", "presence_threshold"):
                if getattr(o, key) is not None:
                    entry[key] = getattr(o, key)
            if o.params:
                entry["params"] = dict(o.params)
            if o.skip:
                entry["skip"] = True
            features[name] = entry
        return {
            "version": CONFIG_VERSION,
            "defaults": {kind.value: choice(c) for kind, c in self.defaults.items()},
            "presence_threshold": self.presence_threshold,
            "drift_share": self.drift_share,
            "features": features,
        }

    def choice_for(self, name: str, kind: FeatureKind) -> MethodChoice:
        """The method, threshold and parameters that decide for one feature."""
        base = self.defaults.get(kind) or _default_methods().get(kind) or MethodChoice("none")
        override = self.features.get(name)
        if override is None:
            return base
        if override.method is not None and override.method != base.method:
            return MethodChoice(override.method, override.threshold, dict(override.params))
        params = {**base.params, **override.params}
        threshold = base.threshold if override.threshold is None else override.threshold
        return MethodChoice(base.method, threshold, params)


# -- config parsing --------------------------------------------------------------------

_TOP_KEYS = {"version", "defaults", "features", "presence_threshold", "drift_share"}
_CHOICE_KEYS = {"method", "threshold", "params"}
_FEATURE_KEYS = {"method", "threshold", "params", "presence_threshold", "skip"}


def _bad(source: str, where: str, what: str) -> InvalidInput:
    return InvalidInput(f"{source}: {where} {what}", details={"key": where, "source": source})


def _check_keys(source: str, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise _bad(
            source,
            f"{prefix}{unknown[0]}",
            f"is not a known key: use {', '.join(sorted(allowed))}",
        )


def _mapping(source: str, where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(source, where, f"must be a mapping, got {type(value).__name__}")
    return value


def _number(source: str, where: str, value: Any, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(source, where, f"must be a number, got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise _bad(source, where, f"must be {bound}, got {value!r}")
    return float(value)


def _method_name(source: str, where: str, value: Any, kind: FeatureKind | None) -> str:
    if not isinstance(value, str):
        raise _bad(source, where, f"must be a method name, got {value!r}")
    try:
        method = get_drift_method(value)
    except ConfigError as error:
        raise _bad(
            source, where, error.message.replace("unknown drift method", "names unknown method")
        ) from None
    if kind is not None and kind not in method.kinds:
        kinds = ", ".join(sorted(k.value for k in method.kinds))
        raise _bad(
            source, where, f"names {value!r}, which works on {kinds} features, not {kind.value}"
        )
    return value


def _params(source: str, where: str, value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in _mapping(source, where, value).items()}


def _parse_config(data: Any, source: str) -> DriftConfig:
    top = _mapping(source, "the top level", data)
    _check_keys(source, "", top, _TOP_KEYS)
    version = top.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise _bad(source, "version", f"is {version!r}; this mloop reads version {CONFIG_VERSION}")
    config = DriftConfig()
    defaults = _mapping(source, "defaults", top.get("defaults", {}))
    for raw_kind, raw_choice in defaults.items():
        where = f"defaults.{raw_kind}"
        try:
            kind = FeatureKind(raw_kind)
        except ValueError:
            valid = ", ".join(k.value for k in FeatureKind)
            raise _bad(source, where, f"is not a feature kind: use {valid}") from None
        if kind is FeatureKind.LIST:
            raise _bad(
                source,
                where,
                "cannot be set: list features are compared through their items, with the "
                "defaults for the items' kind (numeric or categorical)",
            )
        choice = _mapping(source, where, raw_choice)
        _check_keys(source, where, choice, _CHOICE_KEYS)
        if "method" not in choice:
            raise _bad(source, f"{where}.method", "is required")
        method = _method_name(source, f"{where}.method", choice["method"], kind)
        threshold = choice.get("threshold")
        config.defaults[kind] = MethodChoice(
            method,
            None if threshold is None else _number(source, f"{where}.threshold", threshold),
            _params(source, f"{where}.params", choice.get("params", {})),
        )
    features = _mapping(source, "features", top.get("features") or {})
    for raw_name, raw_override in features.items():
        where = f"features.{raw_name}"
        entry = _mapping(source, where, raw_override or {})
        _check_keys(source, where, entry, _FEATURE_KEYS)
        override = FeatureOverride()
        if entry.get("method") is not None:
            override.method = _method_name(source, f"{where}.method", entry["method"], None)
        if entry.get("threshold") is not None:
            override.threshold = _number(source, f"{where}.threshold", entry["threshold"])
        if entry.get("presence_threshold") is not None:
            override.presence_threshold = _number(
                source, f"{where}.presence_threshold", entry["presence_threshold"], upper=1.0
            )
        override.params = _params(source, f"{where}.params", entry.get("params", {}))
        skip = entry.get("skip", False)
        if not isinstance(skip, bool):
            raise _bad(source, f"{where}.skip", f"must be true or false, got {skip!r}")
        override.skip = skip
        config.features[str(raw_name)] = override
    if "presence_threshold" in top:
        value = top["presence_threshold"]
        config.presence_threshold = (
            None if value is None else _number(source, "presence_threshold", value, upper=1.0)
        )
    if top.get("drift_share") is not None:
        share = _number(source, "drift_share", top["drift_share"], upper=1.0)
        if share == 0:
            raise _bad(source, "drift_share", "must be above 0 (leave it out for 'any feature')")
        config.drift_share = share
    return config


# -- report ----------------------------------------------------------------------------


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


@dataclass
class FeatureDrift:
    """The verdict for one feature: score against threshold, and the evidence."""

    name: str
    kind: FeatureKind | str
    method: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.kind),
            "method": self.method,
            "score": _json_number(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "details": _jsonable(self.details),
        }


@dataclass
class DriftReport:
    """Per-feature verdicts and the overall one."""

    features: list[FeatureDrift]
    drifted: bool
    reference_rows: int = 0
    current_rows: int = 0
    drift_share: float | None = None

    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def share_drifted(self) -> float:
        return len(self.drifted_features()) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": REPORT_VERSION,
            "drifted": self.drifted,
            "drifted_features": self.drifted_features(),
            "share_drifted": self.share_drifted(),
            "drift_share": self.drift_share,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "features": [f.to_dict() for f in self.features],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- engine ----------------------------------------------------------------------------


def _presence(stats: FeatureStats | None, rows: int) -> dict[str, float]:
    if stats is None or rows <= 0:
        return {"missing": 0.0, "nan": 0.0, "inf": 0.0}
    return {
        "missing": float(stats.missing) / rows,
        "nan": float(stats.nan) / rows,
        "inf": float(stats.inf) / rows,
    }


def _absent(name: str, kind: FeatureKind, side: str, threshold: float | None) -> FeatureDrift:
    return FeatureDrift(
        name,
        kind,
        "presence",
        1.0,
        DEFAULT_PRESENCE_THRESHOLD if threshold is None else threshold,
        True,
        {"reason": f"the feature is absent from the {side}"},
    )


def _compare(
    name: str,
    ref: FeatureStats,
    cur: FeatureStats,
    ref_rows: int,
    cur_rows: int,
    config: DriftConfig,
) -> FeatureDrift:
    kind = FeatureKind(ref.kind)
    if FeatureKind(cur.kind) is not kind:
        return FeatureDrift(
            name,
            kind,
            "type",
            1.0,
            0.0,
            True,
            {"reason": f"the kind changed from {kind.value} to {FeatureKind(cur.kind).value}"},
        )
    compared_ref, compared_cur, compared_kind = ref, cur, kind
    details: dict[str, Any] = {}
    if kind is FeatureKind.LIST:
        items_ref, items_cur = ref.values, cur.values
        if items_ref is None or items_cur is None or items_ref.kind is not items_cur.kind:
            method_name, score, threshold, by_method = "none", 0.0, 0.0, False
            details["note"] = "list items are not comparable (no item statistics, or kinds differ)"
        else:
            compared_ref, compared_cur = items_ref, items_cur
            compared_kind = FeatureKind(items_ref.kind)
            details["compared"] = f"list items ({compared_kind.value})"
            details["avg_length"] = [ref.avg_length, cur.avg_length]
    if kind is not FeatureKind.LIST or details.get("compared"):
        choice = config.choice_for(name, compared_kind)
        method, threshold = choice.resolve()
        if compared_kind not in method.kinds:
            kinds = ", ".join(sorted(k.value for k in method.kinds))
            raise InvalidInput(
                f"drift method {method.name!r} chosen for feature {name!r} works on {kinds} "
                f"features, but {name!r} is {compared_kind.value}: pick another method in "
                "the drift config"
            )
        result = method.fn(compared_ref, compared_cur, choice.params)
        method_name, score = method.name, float(result.score)
        by_method = method.drifted(score, threshold)
        details.update(result.details)
    reasons = [method_name] if by_method else []
    override = config.features.get(name)
    presence_threshold = config.presence_threshold
    if override is not None and override.presence_threshold is not None:
        presence_threshold = override.presence_threshold
    if presence_threshold is not None:
        before, after = _presence(ref, ref_rows), _presence(cur, cur_rows)
        change = max(abs(after[k] - before[k]) for k in before)
        moved = change > presence_threshold
        details["presence"] = {
            "reference": before,
            "current": after,
            "change": change,
            "threshold": presence_threshold,
            "drifted": moved,
        }
        if moved:
            reasons.append("presence")
    details["reasons"] = reasons
    return FeatureDrift(name, kind, method_name, score, threshold, bool(reasons), details)


def detect_drift(
    reference: DatasetStatistics,
    current: DatasetStatistics,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature.

    The same call serves drift (previous window as reference) and skew (training
    statistics as reference). Features only one side has are reported as drifted with
    method ``presence``; skip them (e.g. the label at serving time) in the config.
    """
    config = config or DriftConfig()
    results: list[FeatureDrift] = []
    names = list(reference.features) + [n for n in current.features if n not in reference.features]
    for name in names:
        override = config.features.get(name)
        if override is not None and override.skip:
            continue
        ref = reference.features.get(name)
        cur = current.features.get(name)
        threshold = override.presence_threshold if override else None
        threshold = config.presence_threshold if threshold is None else threshold
        if cur is None and ref is not None:
            results.append(_absent(name, FeatureKind(ref.kind), "current", threshold))
        elif ref is None and cur is not None:
            results.append(_absent(name, FeatureKind(cur.kind), "reference", threshold))
        elif ref is not None and cur is not None:
            results.append(
                _compare(name, ref, cur, int(reference.num_rows), int(current.num_rows), config)
            )
    flagged = sum(f.drifted for f in results)
    if config.drift_share is None:
        verdict = flagged > 0
    else:
        verdict = bool(results) and flagged / len(results) >= config.drift_share
    return DriftReport(
        results,
        verdict,
        int(reference.num_rows),
        int(current.num_rows),
        config.drift_share,
    )


def render_drift_html(
    report: DriftReport, reference: DatasetStatistics, current: DatasetStatistics
) -> str:
    """A self-contained HTML page: the verdict table and overlaid histograms per drift."""
    from mloop.data._drift_html import render

    return render(report, reference, current)


__all__ = [
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "FeatureOverride",
    "MethodChoice",
    "detect_drift",
    "render_drift_html",
]
