"""What changed between two dataset versions: files, rows, schema and statistics.

Everything is computed from the versions' manifests and stored statistics, so a diff of
two 10 TB versions reads two small files, never the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.data._versions import DatasetVersion, open_registry

if TYPE_CHECKING:
    from mloop.data._drift import DriftConfig, DriftReport
    from mloop.data._statistics import DatasetStatistics

SHIFT_STATISTICS = ("mean", "missing", "distinct")
RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SchemaChange:
    """A column added, removed, or whose type (or feature kind) changed."""

    column: str
    change: str  # "added", "removed" or "type_changed"
    before: str | None = None
    after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class StatShift:
    """One statistic of one column that moved between the versions."""

    column: str
    statistic: str
    before: float | None
    after: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "statistic": self.statistic,
            "before": _json_number(self.before),
            "after": _json_number(self.after),
        }


@dataclass(frozen=True)
class DatasetDiff:
    """Differences from version ``a`` to version ``b``."""

    a: str
    b: str
    digest_a: str
    digest_b: str
    rows_a: int | None
    rows_b: int | None
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    schema_changes: list[SchemaChange] = field(default_factory=list)
    stat_shifts: list[StatShift] = field(default_factory=list)
    drift: DriftReport | None = None

    @property
    def changed(self) -> bool:
        """Whether the versions hold different content."""
        return self.digest_a != self.digest_b

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "changed": self.changed,
            "digests": {"a": self.digest_a, "b": self.digest_b},
            "rows": {"a": self.rows_a, "b": self.rows_b},
            "files": {
                "added": self.files_added,
                "removed": self.files_removed,
                "changed": self.files_changed,
            },
            "schema_changes": [c.to_dict() for c in self.schema_changes],
            "stat_shifts": [s.to_dict() for s in self.stat_shifts],
            "drift": None if self.drift is None else self.drift.to_dict(),
        }


def diff(
    a: DatasetVersion | str | tuple[str, int],
    b: DatasetVersion | str | tuple[str, int],
    *,
    drift_config: DriftConfig | None = None,
) -> DatasetDiff:
    """Compare two versions (objects, ``"name@3"`` or ``("name", 3)``), typically of one
    dataset; drift scores come from :func:`~mloop.data.detect_drift` with ``drift_config``."""
    first, second = _version(a), _version(b)
    files_a = {f.path: f for f in first.files}
    files_b = {f.path: f for f in second.files}
    changed = [
        path
        for path in sorted(files_a.keys() & files_b.keys())
        if _identity(files_a[path]) != _identity(files_b[path])
    ]
    result = DatasetDiff(
        a=first.ref,
        b=second.ref,
        digest_a=first.digest,
        digest_b=second.digest,
        rows_a=first.num_rows,
        rows_b=second.num_rows,
        files_added=sorted(files_b.keys() - files_a.keys()),
        files_removed=sorted(files_a.keys() - files_b.keys()),
        files_changed=changed,
    )
    if first.statistics_digest is None or second.statistics_digest is None:
        return result
    if first.digest == second.digest:
        return result
    stats_a, stats_b = first.statistics(), second.statistics()
    from mloop.data._drift import detect_drift

    return DatasetDiff(
        **{
            **{k: getattr(result, k) for k in result.__dataclass_fields__},
            "schema_changes": schema_changes(stats_a, stats_b),
            "stat_shifts": stat_shifts(stats_a, stats_b),
            "drift": detect_drift(stats_a, stats_b, drift_config),
        }
    )


def _version(item: DatasetVersion | str | tuple[str, int]) -> DatasetVersion:
    if isinstance(item, DatasetVersion):
        return item
    with open_registry() as registry:
        return registry.get(item)


def _identity(file: Any) -> tuple[Any, ...]:
    return (file.size, file.digest, file.uri, file.etag, file.mtime_ns)


def schema_changes(a: DatasetStatistics, b: DatasetStatistics) -> list[SchemaChange]:
    """Columns added, removed, or with a different type, from two statistics."""
    changes = [
        SchemaChange(name, "removed", _type(a.features[name]), None)
        for name in a.features
        if name not in b.features
    ]
    changes += [
        SchemaChange(name, "added", None, _type(b.features[name]))
        for name in b.features
        if name not in a.features
    ]
    for name in a.features:
        if name in b.features:
            before, after = _type(a.features[name]), _type(b.features[name])
            if before != after:
                changes.append(SchemaChange(name, "type_changed", before, after))
    return changes


def _type(feature: Any) -> str:
    """The column's type: its Arrow type when recorded, else its feature kind."""
    for attribute in ("arrow_type", "dtype", "type", "data_type"):
        value = getattr(feature, attribute, None)
        if value:
            return str(value)
    return str(getattr(feature.kind, "value", feature.kind))


def stat_shifts(a: DatasetStatistics, b: DatasetStatistics) -> list[StatShift]:
    """Mean, missing count and distinct count per shared column, where they moved."""
    shifts = []
    for name in a.features:
        if name not in b.features:
            continue
        for statistic in SHIFT_STATISTICS:
            before = _statistic(a.features[name], statistic)
            after = _statistic(b.features[name], statistic)
            if before is None and after is None:
                continue
            if before is not None and after is not None and _close(before, after):
                continue
            shifts.append(StatShift(name, statistic, before, after))
    return shifts


def _statistic(feature: Any, statistic: str) -> float | None:
    names = {
        "mean": ("mean",),
        "missing": ("missing",),
        "distinct": ("distinct", "distinct_count", "approx_distinct"),
    }[statistic]
    for name in names:
        value = getattr(feature, name, None)
        if callable(value):
            value = value()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _close(x: float, y: float) -> bool:
    if math.isnan(x) and math.isnan(y):
        return True
    return math.isclose(x, y, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)


__all__ = ["DatasetDiff", "SchemaChange", "StatShift", "diff", "schema_changes", "stat_shifts"]
