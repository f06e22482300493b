"""Monitoring: jobs over the prediction and feedback logs in time windows, alert rules and
the sinks alerts go to.

``window_metrics`` reads one window of a deployment's traffic per model version and role
(requests, errors, latency, throughput, answer distribution, online metric from feedback);
``run_monitor`` computes and stores a deployment's windows — drift against the previous
window, skew against the training data, performance as late labels arrive — evaluates the
alert rules and sends what fires to its sinks. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.monitoring._jobs import (
        MonitorResult,
        run_monitor,
    )
    from mloop.monitoring._metrics import (
        WindowMetrics,
        distribution_divergence,
        window_metrics,
    )
    from mloop.monitoring._spec import (
        AlertRule,
        CommandSink,
        LogSink,
        MonitorConfig,
        WebhookSink,
    )
    from mloop.monitoring._store import (
        Alert,
        StoredWindow,
        delete_alert_rule,
        get_alert_rule,
        get_monitor_config,
        list_alert_rules,
        list_alerts,
        list_windows,
        save_alert_rule,
        save_monitor_config,
    )

_LAZY: dict[str, str] = {
    "Alert": "mloop.monitoring._store",
    "AlertRule": "mloop.monitoring._spec",
    "CommandSink": "mloop.monitoring._spec",
    "LogSink": "mloop.monitoring._spec",
    "MonitorConfig": "mloop.monitoring._spec",
    "MonitorResult": "mloop.monitoring._jobs",
    "StoredWindow": "mloop.monitoring._store",
    "WebhookSink": "mloop.monitoring._spec",
    "WindowMetrics": "mloop.monitoring._metrics",
    "delete_alert_rule": "mloop.monitoring._store",
    "distribution_divergence": "mloop.monitoring._metrics",
    "get_alert_rule": "mloop.monitoring._store",
    "get_monitor_config": "mloop.monitoring._store",
    "list_alert_rules": "mloop.monitoring._store",
    "list_alerts": "mloop.monitoring._store",
    "list_windows": "mloop.monitoring._store",
    "run_monitor": "mloop.monitoring._jobs",
    "save_alert_rule": "mloop.monitoring._store",
    "save_monitor_config": "mloop.monitoring._store",
    "window_metrics": "mloop.monitoring._metrics",
}

__all__: list[str] = [
    "Alert",
    "AlertRule",
    "CommandSink",
    "LogSink",
    "MonitorConfig",
    "MonitorResult",
    "StoredWindow",
    "WebhookSink",
    "WindowMetrics",
    "delete_alert_rule",
    "distribution_divergence",
    "get_alert_rule",
    "get_monitor_config",
    "list_alert_rules",
    "list_alerts",
    "list_windows",
    "run_monitor",
    "save_alert_rule",
    "save_monitor_config",
    "window_metrics",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
