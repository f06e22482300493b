"""The monitoring job: compute a deployment's windows, store them, evaluate the rules.

Windows are aligned to their length (hourly windows start on the hour, UTC), so every run
— on any machine — computes the same windows, and computing one again replaces its row.
A run computes the newest complete window and the ones before it that the rules' ``for``
durations (and the drift reference) need but that are not stored yet; it recomputes the
windows of the last ``label_lookback`` when feedback arrived since they were computed
(labels come late: a window's performance is what its labels say now); with ``include_current`` it also computes the window in progress (marked
partial, replaced once complete).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mloop._ids import now_ms as wall_clock_ms
from mloop.config import Settings, get_settings
from mloop.data import DatasetStatistics
from mloop.monitoring._alerts import evaluate_rules
from mloop.monitoring._inputs import (
    TrainingReference,
    compare,
    training_reference,
    window_statistics,
)
from mloop.monitoring._metrics import WindowData, load_window, members_of, metrics_of, served_rows
from mloop.monitoring._spec import MonitorConfig, duration_ms
from mloop.monitoring._store import (
    Alert,
    StoredWindow,
    get_monitor_config,
    get_windows,
    list_alert_rules,
    put_window,
)
from mloop.registry._db import connect
from mloop.store import MetadataStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MonitorResult:
    """What one run did: the windows it computed (oldest first), the alerts it raised and
    resolved, and the rules' alerts firing afterwards."""

    deployment: str
    now_ms: int
    windows: list[StoredWindow]
    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    firing: list[Alert] = field(default_factory=list)
    recomputed: int = 0

    @property
    def latest(self) -> StoredWindow | None:
        return self.windows[-1] if self.windows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "now_ms": self.now_ms,
            "windows": [w.to_dict() for w in self.windows],
            "fired": [a.to_dict() for a in self.fired],
            "resolved": [a.to_dict() for a in self.resolved],
            "firing": [a.to_dict() for a in self.firing],
            "recomputed": self.recomputed,
        }


def _performance(data: WindowData, min_labels: int) -> dict[str, Any]:
    served = metrics_of(served_rows(data), data.start_ms, data.end_ms, data.predicted)
    found: dict[str, Any] = {
        key: getattr(served, key)
        for key in ("count", "errors", "error_rate", "latency_p50_ms", "latency_p99_ms",
                    "throughput_per_s", "labelled", "answered", "output_distribution")
    }  # fmt: skip
    found["server_error_rate"] = served.server_errors / served.count if served.count else 0.0
    status = "ok" if served.labelled >= min_labels else "no_labels"
    if 0 < served.labelled < min_labels:
        status = "too_few_labels"
    found["performance"] = {
        "status": status,
        "labelled": served.labelled,
        "min_labels": min_labels,
        "metric_name": served.metric_name,
        "value": served.online_metric,
    }
    if status == "ok" and served.metric_name is not None:
        found[served.metric_name] = served.online_metric
        found["online_metric"] = served.online_metric
    found["outcomes"] = served.outcomes
    found["outcome_rates"] = {
        name: count / served.count for name, count in served.outcomes.items() if served.count
    }
    return found


class _Run:
    """One run over one deployment: the store, the config, what was read and computed."""

    def __init__(
        self, deployment: str, config: MonitorConfig, settings: Settings, db: MetadataStore
    ) -> None:
        self.deployment = deployment
        self.config = config
        self.settings = settings
        self.db = db
        self.drift_config = config.drift_config()
        self.training: dict[str, TrainingReference] = {}
        self.feedback_total = _feedback_total(deployment, settings)

    def stored(self, window_ms: int, start_ms: int) -> StoredWindow | None:
        found = get_windows(
            self.deployment, window_ms, self.db, since_ms=start_ms, until_ms=start_ms + 1,
            statistics=True,
        )  # fmt: skip
        return found[0] if found else None

    def compute(self, window_ms: int, start_ms: int, end_ms: int, *, partial: bool) -> StoredWindow:
        data = load_window(self.deployment, start_ms, end_ms, settings=self.settings)
        return self._build(data, window_ms, partial=partial)

    def refresh(self, old: StoredWindow) -> bool:
        """Recompute ``old`` if feedback for its requests changed; True when it did."""
        data = load_window(self.deployment, old.start_ms, old.end_ms, settings=self.settings)
        if _feedback_joined(data) == old.metrics.get("feedback_joined"):
            put_window(replace(old, feedback_seen=self.feedback_total), self.db)
            return False
        self._build(data, old.window_ms, partial=False)
        return True

    def _build(self, data: WindowData, window_ms: int, *, partial: bool) -> StoredWindow:
        rows = data.rows
        metrics = _performance(data, self.config.min_labels)
        metrics["feedback_joined"] = _feedback_joined(data)
        reference = training_reference(self.config, rows, self.training) if rows.height else None
        names = self.config.feature_names
        if names is None and reference is not None:
            names = reference.feature_names(self.config.label)
        current = window_statistics(rows, names)
        previous = self.stored(window_ms, data.start_ms - window_ms)
        before = (
            DatasetStatistics.from_bytes(previous.input_statistics)
            if previous is not None and previous.input_statistics
            else None
        )
        metrics["drift"] = compare(
            before, current, self.drift_config, self.config.min_rows, what="previous window"
        )
        metrics["skew"] = compare(
            None if reference is None else reference.statistics, current, self.drift_config,
            self.config.min_rows, what="training data",
        )  # fmt: skip
        if reference is not None:
            metrics["skew"]["reference"] = reference.ref
            if reference.reason and metrics["skew"]["status"] == "no_reference":
                metrics["skew"]["reason"] = reference.reason
        metrics["output_drift"] = _output_drift(previous, metrics["output_distribution"])
        window = StoredWindow(
            deployment=self.deployment, window_ms=window_ms, start_ms=data.start_ms,
            end_ms=data.end_ms, partial=partial, metrics=metrics,
            members=[
                {"model": m, "version": v, "role": r, **w.to_dict()}
                for (m, v, r), w in members_of(data).items()
            ],
            feedback_seen=self.feedback_total, computed_ms=wall_clock_ms(),
            input_statistics=None if current is None else current.to_bytes(),
        )  # fmt: skip
        put_window(window, self.db)
        return window


def _output_drift(previous: StoredWindow | None, current: dict[str, float]) -> float | None:
    from mloop.monitoring._metrics import distribution_divergence

    if previous is None or not current:
        return None
    before = previous.metrics.get("output_distribution") or {}
    return distribution_divergence(before, current) if before else None


def _feedback_joined(data: WindowData) -> int:
    """How many labels and outcomes the window's requests have: changes when feedback for
    them arrives, not when feedback for other windows does."""
    rows = data.rows
    return rows.height * 2 - rows["label"].null_count() - rows["outcome"].null_count()


def _feedback_total(deployment: str, settings: Settings) -> int:
    from mloop.serving._feedback import read_feedback

    return int(read_feedback(None, deployment, settings=settings).num_rows)


def run_monitor(
    deployment: str,
    *,
    now_ms: int | None = None,
    settings: Settings | None = None,
    config: MonitorConfig | None = None,
    window: str | None = None,
    include_current: bool = False,
    deliver: bool = True,
    progress: Progress | None = None,
    store: MetadataStore | None = None,
) -> MonitorResult:
    """Compute and store ``deployment``'s due windows, then evaluate its alert rules and
    send what fires (or resolves) to the rules' sinks (see the module doc).

    ``config`` defaults to the stored monitor config (``save_monitor_config``), ``window``
    overrides its window length, ``now_ms`` the clock (tests, backfills).
    """
    from mloop.serving._predlog_store import check_deployment

    check_deployment(deployment)
    settings = settings or get_settings()
    now = wall_clock_ms() if now_ms is None else now_ms
    say = progress or (lambda _message: None)
    with connect(store, settings) as db:
        config = config or get_monitor_config(deployment, store=db)
        if window is not None:
            config = config.model_copy(update={"window": window})
            duration_ms(window, "window")
        rules = list_alert_rules(deployment, store=db)
        run = _Run(deployment, config, settings, db)
        computed: list[StoredWindow] = []
        recomputed = 0
        for length in sorted({config.window_ms, *(r.window_ms for r in rules)}):
            needed = max([1, *(r.windows_needed for r in rules if r.window_ms == length)])
            end = now // length * length
            first = end - (needed + 1) * length
            stored = {w.start_ms: w for w in get_windows(deployment, length, db, since_ms=first)}
            for start in range(first, end, length):
                found = stored.get(start)
                if found is None or found.partial:
                    say(f"{deployment}: window {_iso(start)} ({_length(length)})")
                    computed.append(run.compute(length, start, start + length, partial=False))
            fresh = {w.start_ms for w in computed if w.window_ms == length}
            lookback = end - config.label_lookback_ms
            for old in get_windows(
                deployment, length, db, since_ms=lookback, until_ms=end, statistics=True
            ):
                if old.start_ms in fresh:
                    continue
                if old.partial:  # computed while in progress, complete now
                    computed.append(
                        run.compute(length, old.start_ms, old.start_ms + length, partial=False)
                    )
                    continue
                if old.feedback_seen == run.feedback_total:
                    continue
                if run.refresh(old):
                    say(f"{deployment}: late feedback, window {_iso(old.start_ms)} recomputed")
                    recomputed += 1
            if include_current and now > end:
                say(f"{deployment}: window in progress {_iso(end)}")
                computed.append(run.compute(length, end, now, partial=True))
        fired, resolved, firing = evaluate_rules(rules, deployment, db, now_ms=now, deliver=deliver)
    computed.sort(key=lambda w: (w.window_ms, w.start_ms))
    return MonitorResult(deployment, now, computed, fired, resolved, firing, recomputed)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _length(ms: int) -> str:
    from mloop.monitoring._spec import format_duration

    return format_duration(ms)
