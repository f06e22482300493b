"""Stage 5: the population changes, and monitoring has to notice.

Younger, more indebted applicants arrive (a new marketing channel) in a harsher economy.
The drifted traffic is real HTTP traffic like before; what notices it is
``mloop.monitoring``: window metrics, skew against the training statistics, accuracy from
the feedback, and the alert rules saved after the first release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop.demo._logs import logged_applicants
from mloop.demo._monitoring import SKEW_RULE, monitor_phase, write_report
from mloop.demo._population import FEATURES, LABEL
from mloop.demo._stage_serve import traffic_phase
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize

if TYPE_CHECKING:
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator

# About a thousand requests: thresholds above their sampling noise (docs/drift.md).
PHASE_DRIFT = {
    "defaults": {
        "numeric": {"method": "wasserstein", "threshold": 0.25},
        "categorical": {"method": "linf", "threshold": 0.12},
    },
    "presence_threshold": 0.05,
    "features": {LABEL: {"skip": True}},
}


def drift_and_detect(
    narrator: Narrator,
    result: DemoResult,
    size: DemoSize,
    home: DemoHome,
    url: str,
    training: DatasetVersion,
) -> None:
    """Send the changed population, then let monitoring (or the stand-in) look at it."""
    narrator.stage(
        5,
        "The population changes; monitoring notices",
        "Younger, more indebted applicants in a harsher economy: their inputs drift away "
        "from the training data and the champion's accuracy falls as their outcomes arrive.",
    )
    traffic_phase(
        narrator,
        result,
        size,
        url,
        phase="after drift",
        era="after",
        requests=size.requests_after,
        seed=3,
    )
    fired = monitor_phase(narrator, result, size, "after drift")
    result.drift_detected = any(alert.rule == SKEW_RULE for alert in fired)
    write_report(home, result, size)
    _skew_report(result, home, training)
    for name, path in result.reports.items():
        if "monitoring" in name or "skew" in name:
            narrator.say(f"{name}: {path}")


def _skew_report(result: DemoResult, home: DemoHome, training: DatasetVersion) -> None:
    """The drifted phase as a whole against the training data: an HTML drift report with
    overlaid histograms per feature (the monitor's windows are a second each; this page
    shows the whole phase)."""
    from mloop import data

    start, end = result.window_ms["after drift"]
    served = logged_applicants(DEPLOYMENT, start, end)
    reference = training.statistics()
    current = data.compute_statistics(served[list(FEATURES)])
    report = data.detect_drift(reference, current, data.DriftConfig.from_dict(PHASE_DRIFT))
    result.drifted_features = list(report.drifted_features())
    path = home.reports / "skew-after-drift.html"
    path.write_text(data.render_drift_html(report, reference, current), encoding="utf-8")
    result.reports["skew of the drifted traffic vs training data"] = path
