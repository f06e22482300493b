"""Alert rules against stored windows: fire once, follow while firing, resolve when clear.

A rule fires when its condition holds in each of its last ``windows_needed`` consecutive
windows (its ``for`` duration). While its alert fires the rule raises no second alert —
re-running a window, or the condition holding for hours, updates the alert instead — and
the alert resolves at the first newer window where the condition does not hold. Sinks
hear about both. A window where the metric has no value (no traffic, too few labels, no
drift reference) changes nothing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from mloop._ids import new_id
from mloop.monitoring._sinks import deliver_all
from mloop.monitoring._spec import AlertRule
from mloop.monitoring._store import ALERTS, Alert, StoredWindow, alert_of, get_windows
from mloop.registry._db import write
from mloop.store import MetadataStore

log = logging.getLogger("mloop.monitoring.alerts")


def metric_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The value of a rule's ``metric`` in a stored window's metrics, None when absent."""
    value: Any
    if metric.startswith(("drift.", "skew.")):
        side, _, name = metric.partition(".")
        found = metrics.get(side) or {}
        if found.get("status") != "ok":
            return None
        value = found.get(name) if name in ("max_score", "share_drifted") else None
        if value is None:
            value = (found.get("features") or {}).get(name)
    elif metric.startswith("outcome."):
        name = metric.removeprefix("outcome.")
        if not metrics.get("count"):
            return None
        if name.endswith("_rate"):
            value = (metrics.get("outcome_rates") or {}).get(name.removesuffix("_rate"), 0.0)
        else:
            value = (metrics.get("outcomes") or {}).get(name, 0)
    else:
        value = metrics.get(metric)
        if metric in ("error_rate", "server_error_rate", "latency_p50_ms", "latency_p99_ms"):
            value = value if metrics.get("count") else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _consecutive(windows: list[StoredWindow], length: int) -> bool:
    return all(b.start_ms - a.start_ms == length for a, b in itertools.pairwise(windows))


def _message(rule: AlertRule, value: float, window: StoredWindow) -> str:
    ended = datetime.fromtimestamp(window.end_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    held = f" for {rule.windows_needed} windows" if rule.windows_needed > 1 else ""
    return (
        f"{rule.deployment}: {rule.metric} = {value:.4g} {rule.op} {rule.threshold:g}{held} "
        f"(window of {rule.window} ending {ended}; rule {rule.name})"
    )


def _evaluate(rule: AlertRule, db: MetadataStore, now_ms: int) -> tuple[str, Alert | None]:
    """``("fired" | "resolved" | "firing" | "quiet", alert)`` for one rule."""
    since = now_ms - (rule.windows_needed + 2) * rule.window_ms  # only the windows it needs
    windows = [
        w
        for w in get_windows(rule.deployment, rule.window_ms, db, since_ms=since, until_ms=now_ms)
        if w.end_ms <= now_ms or w.partial
    ]
    recent = windows[-rule.windows_needed :]
    values = [metric_value(w.metrics, rule.metric) for w in recent]
    newest = recent[-1] if recent else None
    newest_value = values[-1] if values else None
    holds = (
        len(recent) == rule.windows_needed
        and _consecutive(recent, rule.window_ms)
        and all(v is not None and rule.holds(v) for v in values)
    )

    def work(conn: Connection) -> tuple[str, Alert | None]:
        row = conn.execute(
            select(ALERTS).where(ALERTS.c.rule == rule.name, ALERTS.c.state == "firing")
        ).first()
        if row is not None:
            current = alert_of(row._mapping)
            if newest is None or newest_value is None:
                return "firing", current
            if rule.holds(newest_value):
                latest = {"last_value": newest_value, "last_window_end_ms": newest.end_ms}
                conn.execute(ALERTS.update().where(ALERTS.c.id == current.id).values(latest))
                return "firing", alert_of({**row._mapping, **latest})
            changes: dict[str, Any] = {
                "state": "resolved", "resolved_ms": now_ms, "last_value": newest_value,
                "last_window_end_ms": newest.end_ms,
            }  # fmt: skip
            conn.execute(ALERTS.update().where(ALERTS.c.id == current.id).values(changes))
            return "resolved", alert_of({**row._mapping, **changes})
        if not holds or newest is None or newest_value is None:
            return "quiet", None
        values_row = {
            "id": new_id(), "rule": rule.name, "deployment": rule.deployment,
            "metric": rule.metric, "op": rule.op, "value": newest_value,
            "threshold": rule.threshold, "state": "firing", "fired_ms": now_ms,
            "resolved_ms": None, "window_start_ms": recent[0].start_ms,
            "window_end_ms": newest.end_ms, "last_value": newest_value,
            "last_window_end_ms": newest.end_ms,
            "message": _message(rule, newest_value, newest), "deliveries": [],
        }  # fmt: skip
        conn.execute(ALERTS.insert(), values_row)
        return "fired", alert_of(values_row)

    return write(db, work)


def evaluate_rules(
    rules: list[AlertRule],
    deployment: str,
    db: MetadataStore,
    *,
    now_ms: int,
    deliver: bool = True,
) -> tuple[list[Alert], list[Alert], list[Alert]]:
    """Evaluate ``rules`` on the stored windows; returns (fired, resolved, still firing)."""
    fired: list[Alert] = []
    resolved: list[Alert] = []
    firing: list[Alert] = []
    for rule in rules:
        if rule.deployment != deployment:
            continue
        outcome, alert = _evaluate(rule, db, now_ms)
        if alert is None:
            continue
        if outcome in ("fired", "resolved") and deliver:
            alert = _record_deliveries(alert, rule, outcome, db)
        if outcome == "fired":
            fired.append(alert)
            firing.append(alert)
        elif outcome == "resolved":
            log.debug("resolved: %s", alert.resolution)
            resolved.append(alert)
        else:
            firing.append(alert)
    return fired, resolved, firing


def _record_deliveries(alert: Alert, rule: AlertRule, event: str, db: MetadataStore) -> Alert:
    results = deliver_all(alert, rule.sinks, event)
    deliveries = [*alert.deliveries, *results]

    def work(conn: Connection) -> None:
        conn.execute(ALERTS.update().where(ALERTS.c.id == alert.id).values(deliveries=deliveries))

    write(db, work)
    return alert_of({**alert.to_dict(), "deliveries": deliveries})
