"""Tables of monitoring (migration 0006): computed windows, monitor settings, alert rules,
alerts.

A window row is keyed by (deployment, window length, start), so computing a window again
replaces it: re-runs are idempotent, and a window whose late labels arrived is simply
recomputed. Alerts are history and outlive their rule (no foreign key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.schema import ID, Base

NAME = String(128)
DEPLOYMENT = String(250)


class MonitorWindow(Base):
    """One computed window of one deployment: ``metrics`` (the served traffic's, with
    drift, skew and performance), ``members`` (per model version and role), the window's
    input statistics (the next window's drift reference), and how many feedback events
    were seen, so a window is recomputed when late labels arrive."""

    __tablename__ = "monitor_windows"

    deployment: Mapped[str] = mapped_column(DEPLOYMENT, primary_key=True)
    window_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    members: Mapped[list[Any]] = mapped_column(JSON)
    input_statistics: Mapped[bytes | None] = mapped_column(LargeBinary)
    feedback_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_ms: Mapped[int] = mapped_column(BigInteger)


class MonitorConfigRow(Base):
    """A deployment's monitor settings (``spec``: :class:`MonitorConfig` as JSON)."""

    __tablename__ = "monitor_configs"

    deployment: Mapped[str] = mapped_column(DEPLOYMENT, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class MonitorAlertRule(Base):
    """An alert rule's declaration (``spec``: the YAML as JSON)."""

    __tablename__ = "monitor_alert_rules"
    __table_args__ = (Index(None, "deployment"),)

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    deployment: Mapped[str] = mapped_column(DEPLOYMENT)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(250))
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class MonitorAlert(Base):
    """One alert: ``firing`` from ``fired_ms`` until the condition clears (``resolved``,
    ``resolved_ms``). While it fires the rule raises no second alert; ``last_value`` and
    ``last_window_end_ms`` follow the newest window. ``deliveries`` records what each
    sink did with it."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (Index(None, "rule", "state"), Index(None, "deployment", "fired_ms"))

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    rule: Mapped[str] = mapped_column(NAME)
    deployment: Mapped[str] = mapped_column(DEPLOYMENT)
    metric: Mapped[str] = mapped_column(String(250))
    op: Mapped[str] = mapped_column(String(4))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    fired_ms: Mapped[int] = mapped_column(BigInteger)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)
    window_start_ms: Mapped[int] = mapped_column(BigInteger)
    window_end_ms: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float] = mapped_column(Float)
    last_window_end_ms: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    deliveries: Mapped[list[Any]] = mapped_column(JSON)
