"""Stage 5: the population changes, and monitoring has to notice.

Younger, more indebted applicants arrive (a new marketing channel) in a harsher economy.
The drifted traffic is real HTTP traffic like before; what notices it is
``mloop.monitoring`` (window metrics, drift against the previous window, skew against the
training statistics, alert rules) when it is installed. Without it the demo measures skew
itself with ``mloop.data.detect_drift`` over the logged requests, and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop.demo._logs import logged_applicants
from mloop.demo._population import FEATURES, LABEL
from mloop.demo._stage_serve import traffic_phase
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize

if TYPE_CHECKING:
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator

DRIFT_RULE = "credit-input-drift"
ACCURACY_RULE = "credit-online-accuracy"
# Windows of a thousand requests: thresholds above their sampling noise (docs/drift.md).
SMALL_WINDOW_DRIFT = {
    "defaults": {
        "numeric": {"method": "wasserstein", "threshold": 0.15},
        "categorical": {"method": "linf", "threshold": 0.05},
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
    narrator.missing(
        "monitoring (mloop.monitoring)",
        "measuring skew of the logged requests against the training statistics with "
        "mloop.data.detect_drift, and accuracy from the feedback log, here",
    )
    _skew_stand_in(narrator, result, home, training)


def _skew_stand_in(
    narrator: Narrator, result: DemoResult, home: DemoHome, training: DatasetVersion
) -> None:
    from mloop import data

    start, end = result.window_ms["after drift"]
    before_start, before_end = result.window_ms["before drift"]
    served = logged_applicants(DEPLOYMENT, start, end)
    earlier = logged_applicants(DEPLOYMENT, before_start, before_end)
    reference = training.statistics()
    current = data.compute_statistics(served[list(FEATURES)])
    config = data.DriftConfig.from_dict(SMALL_WINDOW_DRIFT)
    report = data.detect_drift(reference, current, config)
    drifted = report.drifted_features()
    result.drift_detected = report.drifted
    result.drifted_features = list(drifted)
    path = home.reports / "skew-after-drift.html"
    path.write_text(data.render_drift_html(report, reference, current), encoding="utf-8")
    result.reports["skew of the drifted traffic vs training data"] = path
    verdict = "[red]drift detected[/]" if report.drifted else "no drift"
    narrator.say(
        f"skew of {len(served)} logged requests vs {training.ref}: {verdict} in "
        f"{len(drifted)} of {len(FEATURES)} features ({', '.join(drifted)})"
    )
    narrator.say(
        f"accuracy from feedback: {_accuracy(earlier):.1%} before → {_accuracy(served):.1%} "
        "after the change"
    )
    narrator.say(f"drift report: {path}")


def _accuracy(frame: object) -> float:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    labelled = frame[frame[LABEL].notna()]
    if labelled.empty:
        return float("nan")
    return float((labelled["prediction"] == labelled[LABEL]).mean())
