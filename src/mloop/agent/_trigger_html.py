"""The history of retraining triggers as one self-contained HTML page.

A timeline (one row per trigger, a mark per firing coloured by its outcome, a bar for how
long the pipeline ran) answers "did retraining run when it should, and what stopped it?"
at a glance; the table below gives each firing's event and reason. The plot is a
matplotlib figure (object API, no pyplot) inlined as SVG: no script, no CDN, nothing
fetched, so the file opens offline or attached to a ticket.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mloop._html import BASE_STYLE, escape, figure_svg, utc_time
from mloop.agent._trigger_store import Firing

COLORS = {
    "succeeded": "#2e7d32",
    "stopped": "#e8a317",
    "failed": "#b00020",
    "skipped": "#9e9e9e",
    "running": "#3b6fd8",
}
_STYLE = (
    BASE_STYLE
    + """
.s{font-weight:600}
"""
    + "".join(f".{status}{{color:{color}}}" for status, color in COLORS.items())
)


def timeline_svg(firings: Sequence[Firing]) -> str:
    """Firings on a time axis, one row per trigger, coloured by outcome."""
    from matplotlib.lines import Line2D

    names = sorted({f.trigger for f in firings})
    rows = {name: n for n, name in enumerate(names)}

    def draw(axes: Any) -> None:
        for firing in firings:
            end_ms = firing.finished_ms if firing.finished_ms is not None else firing.fired_ms
            color = COLORS.get(firing.status, "#444444")
            y = rows[firing.trigger]
            axes.plot([firing.fired_ms, end_ms], [y, y], color=color, linewidth=4, alpha=0.5)
            axes.plot([firing.fired_ms], [y], marker="o", color=color, markersize=6)
        axes.set_yticks(range(len(names)), names)
        axes.set_ylim(-0.7, len(names) - 0.3)
        _time_ticks(axes, [f.fired_ms for f in firings] + [f.finished_ms or 0 for f in firings])
        axes.grid(axis="x", alpha=0.3)
        axes.set_xlabel("fired at (UTC)")
        shown = [s for s in COLORS if any(f.status == s for f in firings)]
        axes.legend(
            handles=[Line2D([], [], marker="o", linestyle="", color=COLORS[s]) for s in shown],
            labels=shown,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )

    return figure_svg(draw, 8.0, 0.6 + 0.4 * max(len(names), 2), font_size=8)


def _time_ticks(axes: Any, times: Sequence[int]) -> None:
    """Five ticks across the span, labelled in UTC (times are ms on the axis)."""
    known = [t for t in times if t]
    low, high = min(known), max(known)
    if high - low < 60_000:
        low, high = low - 30_000, high + 30_000
    ticks = [low + (high - low) * n / 4 for n in range(5)]
    shape = "%H:%M" if high - low < 86_400_000 else "%m-%d %H:%M"
    labels = [datetime.fromtimestamp(t / 1000, UTC).strftime(shape) for t in ticks]
    axes.set_xticks(ticks, labels)
    margin = (high - low) * 0.03
    axes.set_xlim(low - margin, high + margin)


def render(firings: Sequence[Firing], *, title: str = "Trigger firings") -> str:
    """The whole page: the timeline, then every firing newest first."""
    rows = "".join(
        f"<tr><td>{utc_time(f.fired_ms)}</td><td>{escape(f.trigger)}</td><td>{escape(f.event_key)}</td>"
        f"<td class='s {escape(f.status)}'>{escape(f.status)}</td><td>{escape(f.reason or '')}</td>"
        f"<td><code>{escape(f.execution_id or '')}</code></td><td>{escape(f.fired_by)}</td></tr>"
        for f in sorted(firings, key=lambda f: (f.fired_ms, f.id), reverse=True)
    )
    body = (
        f"<figure>{timeline_svg(firings)}</figure>"
        "<h2>Firings</h2><table><tr><th>Fired</th><th>Trigger</th><th>Event</th>"
        "<th>Outcome</th><th>Reason</th><th>Pipeline execution</th><th>By</th></tr>"
        f"{rows}</table>"
        if firings
        else "<p class='note'>No firings yet.</p>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}"
        "<p class='note'>A stopped firing's reason is the pipeline's own (a refused gate, "
        "anomalous data); <code>mloop pipeline show ID</code> shows its steps.</p>"
        "</body></html>"
    )


def write_history_html(
    path: str | Path,
    trigger: str | None = None,
    *,
    limit: int = 500,
    settings: Any = None,
) -> Path:
    """Write the page of the newest ``limit`` firings (of ``trigger``) to ``path``."""
    from mloop.agent._trigger_firings import list_firings

    firings = list_firings(trigger, limit=limit, settings=settings)
    title = f"Firings of trigger {trigger}" if trigger else "Trigger firings"
    return write_page(path, firings, title=title)


def write_page(path: str | Path, firings: Sequence[Firing], *, title: str) -> Path:
    """Write the page of ``firings`` to ``path``, atomically (a temporary file renamed)."""
    page = render(firings, title=title)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent, suffix=".tmp", delete=False
    ) as handle:
        handle.write(page)
    os.replace(handle.name, target)
    return target
