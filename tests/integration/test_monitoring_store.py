"""Monitoring's tables on SQLite and a real PostgreSQL: the migration matches the models,
windows and alerts round-trip, re-runs are idempotent, rule changes are audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mloop.monitoring import (
    delete_alert_rule,
    get_alert_rule,
    list_alert_rules,
    list_alerts,
    list_windows,
    run_monitor,
    save_alert_rule,
    save_monitor_config,
)
from mloop.monitoring._tables import MonitorAlert, MonitorAlertRule, MonitorConfigRow, MonitorWindow
from mloop.registry import list_audit_log
from mloop.serving._predlog import PredictionLog
from mloop.store import open_store
from mloop.store.schema import Base
from tests.fixtures.monitoring import HOUR, T0, Traffic, register_training, serve_window

MINE = {t.__tablename__ for t in (MonitorWindow, MonitorConfigRow, MonitorAlertRule, MonitorAlert)}


@pytest.fixture
def traffic(db: str) -> Iterator[Traffic]:
    log = PredictionLog(fsync="off", compact_interval=None)
    yield Traffic(log)
    log.close()


def test_the_migration_creates_exactly_the_models(db: str) -> None:
    store = open_store(db)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        store.close()

    # other packages' tables are absent from this process's metadata: look at ours only
    assert [c for c in diff if any(name in repr(c) for name in MINE)] == []


def test_drift_alerts_once_and_reruns_change_nothing(traffic: Traffic) -> None:
    register_training()
    save_monitor_config(
        "iris", {"drift": {"defaults": {"numeric": {"method": "wasserstein", "threshold": 0.25}}}}
    )
    save_alert_rule({"name": "drift", "deployment": "iris", "metric": "drift.max_score",
                     "threshold": 0.3})  # fmt: skip
    serve_window(traffic, T0, 300, seed=1)
    serve_window(traffic, T0 + HOUR, 300, seed=2, shift={2: 1.0})
    first = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    again = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    assert [a.rule for a in first.fired] == ["drift"]
    assert again.fired == []
    assert again.windows == []
    windows = list_windows("iris")
    assert [w.start_ms for w in windows] == [T0, T0 + HOUR]
    assert windows[1].metrics["drift"]["drifted_features"] == ["f2"]
    assert windows[1].metrics["skew"]["reference"] == "train@1"
    assert len(list_alerts("iris", state="firing")) == 1


def test_late_labels_on_both_backends(traffic: Traffic) -> None:
    save_monitor_config("iris", {"min_labels": 5, "min_rows": 10})
    ids = serve_window(traffic, T0, 40, seed=1)
    run_monitor("iris", now_ms=T0 + HOUR)
    traffic.feedback([{"request_id": rid, "label": 1} for rid in ids[:10]])
    assert run_monitor("iris", now_ms=T0 + HOUR).recomputed == 1
    window = list_windows("iris")[-1]
    assert window.start_ms == T0
    assert window.metrics["performance"]["labelled"] == 10
    assert window.metrics["accuracy"] is not None


def test_rule_changes_are_audited(db: str) -> None:
    rule = {"name": "slow", "deployment": "iris", "metric": "latency_p99_ms", "threshold": 50}
    save_alert_rule(rule)
    save_alert_rule(rule)  # unchanged: no second entry
    save_alert_rule({**rule, "threshold": 80})
    assert get_alert_rule("slow").threshold == 80
    delete_alert_rule("slow")
    assert list_alert_rules() == []
    entries = sorted(list_audit_log(), key=lambda e: e.seq)
    actions = [e.action for e in entries if e.target == "alert_rule:slow"]
    assert actions == ["alert_rule.create", "alert_rule.update", "alert_rule.delete"]
