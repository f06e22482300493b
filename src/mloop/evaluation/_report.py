"""``EvaluationReport``: everything one evaluation found, as objects, JSON and HTML.

The JSON form (:meth:`EvaluationReport.to_dict`) is the stable one: it is what the
metadata store keeps and what ``mloop evaluate --json`` prints. NaN (an undefined metric)
becomes ``null`` so any JSON reader takes it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.evaluation._bootstrap import MetricValue
from mloop.evaluation._fairness import Fairness
from mloop.evaluation._robustness import BackdoorProbe, RobustnessCheck
from mloop.evaluation._spec import GateSpec


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _metrics(values: dict[str, MetricValue] | None) -> dict[str, Any] | None:
    return None if values is None else {k: v.to_dict() for k, v in values.items()}


@dataclass(frozen=True)
class SliceResult:
    """One slice: its size, the candidate's (and baseline's) metrics with intervals, and
    the gap of the gate metric to the slice's reference, weighted by the slice's share."""

    spec: str
    key: str
    count: int
    share: float
    rare: bool
    metrics: dict[str, MetricValue]
    baseline: dict[str, MetricValue] | None = None
    reference: float | None = None
    gap: float | None = None
    weighted_gap: float | None = None

    def delta(self, metric: str) -> float | None:
        """Candidate minus baseline on ``metric`` (None without a baseline)."""
        if self.baseline is None or metric not in self.baseline or metric not in self.metrics:
            return None
        return _num(self.metrics[metric].value - self.baseline[metric].value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "slice": self.key,
            "count": self.count,
            "share": self.share,
            "rare": self.rare,
            "metrics": _metrics(self.metrics),
            "baseline": _metrics(self.baseline),
            "reference": _num(self.reference),
            "gap": _num(self.gap),
            "weighted_gap": _num(self.weighted_gap),
        }


@dataclass
class EvaluationReport:
    """The result of :func:`mloop.evaluation.evaluate`.

    ``blessed`` is None without a gate, else whether the candidate passed it; ``reasons``
    says why it was refused (empty when blessed); ``notes`` what was skipped and why.
    ``priorities`` ranks slices by weighted gap to their reference: where improving the
    model is worth most.
    """

    id: str
    created_ms: int
    task: str
    label: str
    metric: str
    candidate: dict[str, Any]
    data: str | None
    rows: int
    overall: dict[str, MetricValue]
    slices: list[SliceResult]
    baseline: dict[str, Any] | None = None
    baseline_overall: dict[str, MetricValue] | None = None
    classes: list[Any] | None = None
    positive_label: Any = None
    reference_source: str | None = None
    overall_reference: float | None = None
    priorities: list[dict[str, Any]] = field(default_factory=list)
    fairness: list[Fairness] = field(default_factory=list)
    baseline_fairness: list[Fairness] = field(default_factory=list)
    robustness: list[RobustnessCheck] = field(default_factory=list)
    backdoor: BackdoorProbe | None = None
    curves: dict[str, Any] = field(default_factory=dict)
    gate: GateSpec | None = None
    gate_name: str | None = None
    blessed: bool | None = None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False

    @property
    def verdict(self) -> str:
        return {None: "no gate", True: "blessed", False: "refused"}[self.blessed]

    def slice(self, key: str) -> SliceResult:
        for found in self.slices:
            if found.key == key:
                return found
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_ms": self.created_ms,
            "verdict": self.verdict,
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "task": self.task,
            "label": self.label,
            "metric": self.metric,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "data": self.data,
            "rows": self.rows,
            "classes": None if self.classes is None else [_plain(c) for c in self.classes],
            "positive_label": _plain(self.positive_label),
            "gate_name": self.gate_name,
            "gate": None if self.gate is None else self.gate.to_json(),
            "overall": {
                "candidate": _metrics(self.overall),
                "baseline": _metrics(self.baseline_overall),
            },
            "reference": {"source": self.reference_source, "overall": _num(self.overall_reference)},
            "slices": [s.to_dict() for s in self.slices],
            "priorities": self.priorities,
            "fairness": {
                "candidate": [f.to_dict() for f in self.fairness],
                "baseline": [f.to_dict() for f in self.baseline_fairness],
            },
            "robustness": [r.to_dict() for r in self.robustness],
            "backdoor": None if self.backdoor is None else self.backdoor.to_dict(),
            "curves": self.curves,
            "settings": self.settings,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_plain)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        _write_atomic(target, self.to_json().encode())
        return target

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """A self-contained HTML page (inline SVG plots, no script) at ``path``."""
        from mloop.evaluation._html import render

        target = Path(path)
        _write_atomic(target, render(self).encode())
        return target


def _plain(value: Any) -> Any:
    """numpy scalars and other oddities as JSON-able Python values."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return _num(value)
    item = getattr(value, "item", None)
    if callable(item):
        return _plain(item())
    return str(value)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place, so a reader
    never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
