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
    from mloop.monitoring._metrics import WindowMetrics, distribution_divergence, window_metrics

_LAZY: dict[str, str] = {
    "WindowMetrics": "mloop.monitoring._metrics",
    "distribution_divergence": "mloop.monitoring._metrics",
    "window_metrics": "mloop.monitoring._metrics",
}

__all__: list[str] = [
    "WindowMetrics",
    "distribution_divergence",
    "window_metrics",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
