"""Monitoring the deployment with ``mloop.monitoring``: one-second windows and two rules.

In production windows are an hour; here they are a second, so the story takes seconds.
Windows are aligned to the clock, and a phase of traffic lasts several of them (the
clients arrive at a fixed rate), so a window that lies wholly inside a phase holds nothing
but that phase's requests: the demo runs the monitor with ``now_ms`` at the end of the
busiest such window — the clock passed explicitly, not waited for.

Skew against the training data is measured with thresholds above the sampling noise of a
few hundred rows (docs/drift.md, "Small windows"); the rules alert when more than a third
of the features are skewed, and when accuracy against the reported outcomes falls below
70 %.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.demo._population import LABEL
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize

if TYPE_CHECKING:
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator
    from mloop.monitoring import Alert, StoredWindow

SKEW_RULE = "credit-input-skew"
ACCURACY_RULE = "credit-accuracy"
# A few hundred rows per window: thresholds above their sampling noise.
WINDOW_DRIFT: dict[str, Any] = {
    "defaults": {
        "numeric": {"method": "wasserstein", "threshold": 0.25},
        "categorical": {"method": "linf", "threshold": 0.12},
    },
    "presence_threshold": 0.05,
}


def set_up(narrator: Narrator, size: DemoSize) -> None:
    """The deployment's monitor settings and its two alert rules."""
    from mloop import monitoring

    window = f"{size.monitor_window_s}s"
    monitoring.save_monitor_config(
        DEPLOYMENT,
        {"window": window, "label": LABEL, "drift": WINDOW_DRIFT, "min_labels": 30},
    )
    rules = [
        monitoring.save_alert_rule(
            {
                "name": SKEW_RULE,
                "deployment": DEPLOYMENT,
                "metric": "skew.share_drifted",
                "window": window,
                "op": ">",
                "threshold": 0.3,
                "description": "a third of the input features no longer look like the "
                "training data",
            }
        ),
        monitoring.save_alert_rule(
            {
                "name": ACCURACY_RULE,
                "deployment": DEPLOYMENT,
                "metric": "accuracy",
                "window": window,
                "op": "<",
                "threshold": 0.70,
                "description": "accuracy against the outcomes clients report",
            }
        ),
    ]
    for rule in rules:
        narrator.say(f"alert rule [bold]{rule.name}[/]: {rule.describe()}")


def monitor_phase(
    narrator: Narrator, result: DemoResult, size: DemoSize, phase: str
) -> list[Alert]:
    """Run the monitor at the end of the busiest whole window of ``phase``; say what the
    window held and which alerts fired."""
    from mloop import monitoring

    start, end = result.window_ms[phase]
    now = busiest_window_end(start, end, size.monitor_window_s * 1000)
    outcome = monitoring.run_monitor(DEPLOYMENT, now_ms=now)
    if outcome.latest is not None:
        narrator.say(_describe(outcome.latest))
    for alert in outcome.fired:
        summary = f"{alert.rule}: {alert.metric} = {alert.value:.3g} {alert.op} {alert.threshold:g}"
        result.alerts.append(summary)
        narrator.say(f"[red]alert fired[/] {summary} (sent to the rule's sinks: the log)")
    if not outcome.fired and not outcome.firing:
        narrator.say("no alert fired")
    return list(outcome.fired)


def busiest_window_end(start_ms: int, end_ms: int, window_ms: int) -> int:
    """The end of the clock-aligned window inside ``[start_ms, end_ms)`` that logged the
    most answers. Clients arrive at a fixed rate, but a busy machine can stall them for a
    second; the window judged should be one that saw the phase's traffic."""
    from mloop.serving import read_predictions

    first = -(-start_ms // window_ms) * window_ms
    last = end_ms // window_ms * window_ms
    if last - first < window_ms:  # no whole window inside: the newest one that ended
        return last
    times = read_predictions(None, DEPLOYMENT, first, last).column("time")
    millis: list[int] = times.cast("int64").to_pylist()
    counts: dict[int, int] = {}
    for ms in millis:
        window_end = (ms // window_ms + 1) * window_ms
        counts[window_end] = counts.get(window_end, 0) + 1
    return max(counts, key=lambda e: (counts[e], e)) if counts else last


def write_report(home: DemoHome, result: DemoResult, size: DemoSize) -> None:
    """The monitoring page (time series of every window computed, the alerts)."""
    from mloop import monitoring
    from mloop.monitoring._report import render_html

    windows = monitoring.list_windows(DEPLOYMENT, window=f"{size.monitor_window_s}s")
    alerts = monitoring.list_alerts(DEPLOYMENT)
    path = home.reports / "monitoring.html"
    path.write_text(
        render_html(DEPLOYMENT, windows, alerts, window=f"{size.monitor_window_s}s"),
        encoding="utf-8",
    )
    result.reports["monitoring (windows and alerts)"] = path


def _describe(window: StoredWindow) -> str:
    metrics = window.metrics
    parts = [
        f"window {_clock(window.start_ms)}–{_clock(window.end_ms)}: {metrics.get('count', 0)} requests"
    ]
    accuracy = metrics.get("accuracy")
    if isinstance(accuracy, int | float):
        parts.append(f"accuracy {accuracy:.1%} from {metrics.get('labelled', 0)} labels")
    skew = metrics.get("skew") or {}
    if skew.get("status") == "ok":
        drifted = [str(name) for name in skew.get("drifted_features") or []]
        parts.append(
            f"skew vs {skew.get('reference', 'training data')}: share drifted "
            f"{skew.get('share_drifted', 0):.2f}" + (f" ({', '.join(drifted)})" if drifted else "")
        )
    output = metrics.get("output_drift")
    if isinstance(output, int | float):
        parts.append(f"output drift {output:.2f}")
    return "; ".join(parts)


def _clock(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")
