"""A deployment's monitored windows as sparklines (terminal) and one HTML page of plots.

The page is self-contained — matplotlib figures inlined as SVG, no script, nothing
fetched — so it can be attached to a ticket or opened offline, like the drift report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mloop._html import BASE_STYLE, escape, figure_svg
from mloop.monitoring._alerts import metric_value
from mloop.monitoring._store import Alert, StoredWindow

BARS = "▁▂▃▄▅▆▇█"

SERIES: tuple[tuple[str, str, str], ...] = (
    ("count", "requests", "requests per window"),
    ("error_rate", "error rate", "share of requests answered 4xx/5xx"),
    ("latency_p50_ms", "latency p50 (ms)", ""),
    ("latency_p99_ms", "latency p99 (ms)", ""),
    ("online_metric", "online metric", "accuracy or MAE from feedback labels (min_labels met)"),
    ("drift.max_score", "input drift", "largest feature score vs the previous window"),
    ("skew.max_score", "training skew", "largest feature score vs the training data"),
    ("output_drift", "output drift", "Jensen-Shannon distance of the answers vs the previous window"),
)  # fmt: skip

_STYLE = (
    BASE_STYLE
    + """
.firing{color:#b00020;font-weight:600}.resolved{color:#2e7d32}
"""
)


def series(windows: Sequence[StoredWindow], metric: str) -> list[float | None]:
    return [metric_value(w.metrics, metric) for w in windows]


def sparkline(values: Sequence[float | None]) -> str:
    """One character per window, scaled between the series' minimum and maximum; a gap
    (space) where the window has no value."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    span = high - low
    out = []
    for value in values:
        if value is None or not math.isfinite(value):
            out.append(" ")
        elif span == 0:
            out.append(BARS[0] if high == 0 else BARS[3])
        else:
            out.append(BARS[min(len(BARS) - 1, int((value - low) / span * len(BARS)))])
    return "".join(out)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _days(ms: int) -> float:
    """Matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return ms / 86_400_000


def _figure_svg(
    windows: Sequence[StoredWindow], metric: str, title: str, alerts: Sequence[Alert]
) -> str:
    times = [_days(w.start_ms) for w in windows]
    values = [math.nan if v is None else v for v in series(windows, metric)]

    def draw(axes: Any) -> None:
        axes.plot(times, values, marker="o", markersize=3, linewidth=1.2, color="#3b6fd8")
        if metric == "latency_p50_ms":
            p99 = [math.nan if v is None else v for v in series(windows, "latency_p99_ms")]
            axes.plot(
                times, p99, marker="o", markersize=3, linewidth=1.2, color="#e8731a", label="p99"
            )
            axes.legend(loc="upper left", fontsize=8, frameon=False)
        for alert in alerts:
            if alert.metric == metric:
                axes.axhline(alert.threshold, color="#b00020", linewidth=0.8, linestyle="--")
                axes.axvspan(
                    _days(alert.window_start_ms),
                    _days(alert.last_window_end_ms),
                    color="#b00020",
                    alpha=0.08,
                )
        axes.xaxis_date()
        axes.set_title(title, fontsize=10, loc="left")
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        axes.figure.autofmt_xdate()

    return figure_svg(draw, 7.5, 2.2, dpi=96)


def render_html(
    deployment: str, windows: Sequence[StoredWindow], alerts: Sequence[Alert], *, window: str
) -> str:
    """One page: a plot per metric over the windows (alert thresholds dashed, alert spans
    shaded), then the alerts and the newest window's drift details."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring: {escape(deployment)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Monitoring: {escape(deployment)}</h1>",
    ]
    if not windows:
        parts.append("<p>No monitored windows yet: run <code>mloop monitor run</code>.</p>")
    else:
        first, last = windows[0], windows[-1]
        parts.append(
            f"<p class='note'>{len(windows)} windows of {escape(window)}, "
            f"{_time(first.start_ms):%Y-%m-%d %H:%M} to {_time(last.end_ms):%Y-%m-%d %H:%M} UTC"
            "</p>"
        )
        for metric, title, note in SERIES:
            if metric == "latency_p99_ms":
                continue  # drawn with p50
            if all(v is None for v in series(windows, metric)):
                continue
            parts.append(f"<h2>{escape(title)}</h2>")
            if note:
                parts.append(f"<p class='note'>{escape(note)}</p>")
            parts.append(_figure_svg(windows, metric, title, alerts))
        parts.append(_drift_table(last))
    parts.append("<h2>Alerts</h2>")
    if not alerts:
        parts.append("<p>None.</p>")
    else:
        parts.append("<table><tr><th>state</th><th>rule</th><th>fired</th><th>message</th></tr>")
        for alert in alerts:
            parts.append(
                f"<tr><td class='{alert.state}'>{alert.state}</td><td>{escape(alert.rule)}"
                f"</td><td>{_time(alert.fired_ms):%Y-%m-%d %H:%M}</td>"
                f"<td>{escape(alert.message)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _drift_table(window: StoredWindow) -> str:
    rows = []
    for side in ("drift", "skew"):
        found: dict[str, Any] = window.metrics.get(side) or {}
        if found.get("status") != "ok":
            rows.append(
                f"<tr><td>{side}</td><td colspan='3'>{escape(str(found.get('reason', '')))}"
                "</td></tr>"
            )
            continue
        drifted = set(found.get("drifted_features") or [])
        for name, score in (found.get("features") or {}).items():
            mark = "firing" if name in drifted else ""
            shown = "—" if score is None else f"{score:.4g}"
            rows.append(
                f"<tr><td>{side}</td><td>{escape(name)}</td><td>{shown}</td>"
                f"<td class='{mark}'>{'drifted' if mark else ''}</td></tr>"
            )
    return (
        f"<h2>Features in the newest window ({_time(window.start_ms):%Y-%m-%d %H:%M} UTC)</h2>"
        "<table><tr><th></th><th>feature</th><th>score</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )
