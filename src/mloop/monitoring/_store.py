"""Monitoring's rows in the metadata store: windows, monitor settings, alert rules, alerts.

Writes go through the registry's write path (one transaction holding the registry lock),
so two monitors computing the same window, or evaluating the same rule, one after the
other never duplicate a row; rule changes are in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, select

from mloop._ids import now_ms as wall_clock_ms
from mloop.config import Settings
from mloop.errors import InvalidInput
from mloop.monitoring._spec import AlertRule, MonitorConfig
from mloop.monitoring._tables import (
    MonitorAlert,
    MonitorAlertRule,
    MonitorConfigRow,
    MonitorWindow,
)
from mloop.registry._db import Actor, connect, write
from mloop.registry._named_specs import NamedSpecs
from mloop.store import MetadataStore

WINDOWS = cast(Table, MonitorWindow.__table__)
CONFIGS = cast(Table, MonitorConfigRow.__table__)
RULES = cast(Table, MonitorAlertRule.__table__)
ALERTS = cast(Table, MonitorAlert.__table__)
_RULES = NamedSpecs(
    RULES,
    kind="alert_rule",
    missing=(
        "alert rule {name!r} does not exist; `mloop monitor rules list` shows the rules, "
        "`mloop monitor rules apply FILE` creates them"
    ),
)


# -- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredWindow:
    """One computed window (see :class:`~mloop.monitoring._tables.MonitorWindow`)."""

    deployment: str
    window_ms: int
    start_ms: int
    end_ms: int
    partial: bool
    metrics: dict[str, Any]
    members: list[dict[str, Any]]
    feedback_seen: int
    computed_ms: int
    input_statistics: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("input_statistics")
        return found


def _window(row: Mapping[Any, Any]) -> StoredWindow:
    return StoredWindow(
        deployment=row["deployment"],
        window_ms=int(row["window_ms"]),
        start_ms=int(row["start_ms"]),
        end_ms=int(row["end_ms"]),
        partial=bool(row["partial"]),
        metrics=dict(row["metrics"]),
        members=list(row["members"]),
        feedback_seen=int(row["feedback_seen"]),
        computed_ms=int(row["computed_ms"]),
        input_statistics=row.get("input_statistics"),
    )


def put_window(window: StoredWindow, db: MetadataStore) -> None:
    """Store ``window``, replacing the row of the same deployment, length and start."""
    values = asdict(window)

    def work(conn: Connection) -> None:
        conn.execute(
            delete(WINDOWS).where(
                WINDOWS.c.deployment == window.deployment,
                WINDOWS.c.window_ms == window.window_ms,
                WINDOWS.c.start_ms == window.start_ms,
            )
        )
        conn.execute(WINDOWS.insert(), values)

    write(db, work)


def get_windows(
    deployment: str,
    window_ms: int,
    db: MetadataStore,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    statistics: bool = False,
) -> list[StoredWindow]:
    """Stored windows oldest first; with ``statistics`` also their input statistics."""
    columns = [c for c in WINDOWS.c if statistics or c.name != "input_statistics"]
    query = select(*columns).where(
        WINDOWS.c.deployment == deployment, WINDOWS.c.window_ms == window_ms
    )
    if since_ms is not None:
        query = query.where(WINDOWS.c.start_ms >= since_ms)
    if until_ms is not None:
        query = query.where(WINDOWS.c.start_ms < until_ms)
    with db.read() as conn:
        rows = conn.execute(query.order_by(WINDOWS.c.start_ms)).all()
    return [_window(r._mapping) for r in rows]


def window_lengths(deployment: str, db: MetadataStore) -> list[int]:
    with db.read() as conn:
        rows = conn.execute(
            select(WINDOWS.c.window_ms).where(WINDOWS.c.deployment == deployment).distinct()
        ).all()
    return sorted(int(r.window_ms) for r in rows)


# -- monitor settings -------------------------------------------------------------------------


def save_monitor_config(
    deployment: str,
    config: MonitorConfig | Mapping[str, Any],
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> MonitorConfig:
    """Store how ``deployment``'s windows are computed (replacing earlier settings)."""
    parsed = MonitorConfig.parse(config)
    spec = parsed.model_dump(mode="json", exclude_none=True)

    def work(conn: Connection) -> None:
        conn.execute(delete(CONFIGS).where(CONFIGS.c.deployment == deployment))
        conn.execute(
            CONFIGS.insert(),
            {"deployment": deployment, "spec": spec, "last_update_time": wall_clock_ms()},
        )

    with connect(store, settings) as db:
        write(db, work)
    return parsed


def get_monitor_config(
    deployment: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> MonitorConfig:
    """The stored settings of ``deployment``, or the defaults."""
    with connect(store, settings) as db, db.read() as conn:
        row = conn.execute(select(CONFIGS.c.spec).where(CONFIGS.c.deployment == deployment)).first()
    return MonitorConfig() if row is None else MonitorConfig.parse(row.spec)


# -- alert rules ------------------------------------------------------------------------------


def save_alert_rule(
    rule: AlertRule | Mapping[str, Any],
    *,
    actor: Actor = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> AlertRule:
    """Create ``rule`` or replace the one with its name; saving the same rule again changes
    nothing. A changed rule keeps its firing alert (it resolves when the new condition
    does not hold)."""
    parsed = AlertRule.parse(rule)
    _RULES.save(
        parsed.name,
        parsed.to_json(),
        actor=actor,
        other_columns=lambda _: {"deployment": parsed.deployment},
        store=store,
        settings=settings,
    )
    return parsed


def get_alert_rule(
    name: str, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> AlertRule:
    return AlertRule.parse(_RULES.get(name, store=store, settings=settings)["spec"])


def list_alert_rules(
    deployment: str | None = None,
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[AlertRule]:
    of_deployment = () if deployment is None else (RULES.c.deployment == deployment,)
    rows = _RULES.rows(*of_deployment, store=store, settings=settings)
    return [AlertRule.parse(row["spec"]) for row in rows]


def delete_alert_rule(
    name: str,
    *,
    actor: Actor = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> None:
    """Remove a rule; its alerts stay in the history (a firing one is resolved)."""

    def resolve_its_alert(conn: Connection) -> None:
        conn.execute(
            ALERTS.update()
            .where(ALERTS.c.rule == name, ALERTS.c.state == "firing")
            .values(state="resolved", resolved_ms=wall_clock_ms())
        )

    _RULES.delete(
        name, actor=actor, before_delete=resolve_its_alert, store=store, settings=settings
    )


# -- alerts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert of one rule: ``firing`` from ``fired_ms`` until ``resolved_ms``.

    ``value`` is the metric in the window that made it fire (``window_start_ms`` ..
    ``window_end_ms``); ``last_value`` the newest window's while it fires."""

    id: str
    rule: str
    deployment: str
    metric: str
    op: str
    value: float
    threshold: float
    state: str
    fired_ms: int
    resolved_ms: int | None
    window_start_ms: int
    window_end_ms: int
    last_value: float
    last_window_end_ms: int
    message: str
    deliveries: list[dict[str, Any]]

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    @property
    def resolution(self) -> str:
        """What a resolved alert's notification says."""
        return (
            f"{self.deployment}: {self.metric} back to {self.last_value:.4g} (alert when "
            f"{self.op} {self.threshold:g}; rule {self.rule}, fired with {self.value:.4g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alert_of(row: Mapping[Any, Any]) -> Alert:
    values = {name: row[name] for name in Alert.__dataclass_fields__}
    values["deliveries"] = list(values["deliveries"] or [])
    return Alert(**values)


def list_alerts(
    deployment: str | None = None,
    *,
    rule: str | None = None,
    since_ms: int | None = None,
    state: str | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[Alert]:
    """Alerts oldest first, filtered by deployment, rule, fired at or after ``since_ms``,
    and ``state`` (``firing`` or ``resolved``); ``limit`` keeps the newest ones."""
    if state not in (None, "firing", "resolved"):
        raise InvalidInput(f"alert state {state!r}: use firing or resolved")
    query = select(ALERTS)
    if deployment is not None:
        query = query.where(ALERTS.c.deployment == deployment)
    if rule is not None:
        query = query.where(ALERTS.c.rule == rule)
    if since_ms is not None:
        query = query.where(ALERTS.c.fired_ms >= since_ms)
    if state is not None:
        query = query.where(ALERTS.c.state == state)
    query = query.order_by(ALERTS.c.fired_ms.desc(), ALERTS.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with connect(store, settings) as db, db.read() as conn:
        rows = conn.execute(query).all()
    return [alert_of(r._mapping) for r in reversed(rows)]


def list_windows(
    deployment: str,
    *,
    window: str | int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> list[StoredWindow]:
    """Stored windows of ``deployment`` oldest first, of one length (``"1h"`` or ms; by
    default the configured window's)."""
    from mloop.monitoring._spec import duration_ms

    with connect(store, settings) as db:
        if window is None:
            length = get_monitor_config(deployment, store=db).window_ms
        else:
            length = window if isinstance(window, int) else duration_ms(window, "window")
        return get_windows(deployment, length, db, since_ms=since_ms, until_ms=until_ms)


def apply_alert_rules(
    path: str | Path, *, actor: Actor = None, settings: Settings | None = None
) -> list[tuple[str, str]]:
    """Save every rule of a YAML file (each checked before any is saved); returns each
    rule's name with ``created``, ``updated`` or ``unchanged``."""
    from mloop.monitoring._spec import load_yaml_documents

    rules = [
        AlertRule.parse(document, source=f"{path} (rule {index + 1})")
        for index, document in enumerate(load_yaml_documents(path))
    ]
    if not rules:
        raise InvalidInput(f"{path} holds no alert rules")
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise InvalidInput(f"{path} declares a rule name twice; rule names are unique")
    existing = {r.name: r for r in list_alert_rules(settings=settings)}
    outcome = []
    for rule in rules:
        before = existing.get(rule.name)
        action = "created" if before is None else ("unchanged" if before == rule else "updated")
        save_alert_rule(rule, actor=actor, settings=settings)
        outcome.append((rule.name, action))
    return outcome


def monitored_deployments(
    *, settings: Settings | None = None, store: MetadataStore | None = None
) -> list[str]:
    """Deployments with alert rules or a monitor config."""
    with connect(store, settings) as db, db.read() as conn:
        ruled = {r.deployment for r in conn.execute(select(RULES.c.deployment).distinct())}
        configured = {r.deployment for r in conn.execute(select(CONFIGS.c.deployment))}
    return sorted(ruled | configured)
