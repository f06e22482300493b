"""What mloop's self-contained HTML reports share (evaluation, monitoring, rollouts,
triggers): the base style, escaping, UTC times, and matplotlib figures inlined as SVG.

Plots use matplotlib's object API (no pyplot, no global state) and are inlined as SVG with
text kept as text and no creation date, so a page opens offline, attaches to a ticket, and
is the same bytes for the same data.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BASE_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.85rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}
"""
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)  # RDF naming matplotlib


def escape(value: Any) -> str:
    return html.escape(str(value))


def utc_time(ms: int | None) -> str:
    """``2026-11-29 06:12:00 UTC`` for epoch milliseconds; an en dash for none."""
    if ms is None:
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def figure_svg(
    draw: Callable[[Axes], None],
    width: float,
    height: float,
    *,
    dpi: int = 100,
    font_size: float | None = None,
) -> str:
    """One matplotlib figure of ``width`` × ``height`` inches, drawn by ``draw(axes)``, as
    an ``<svg>`` element."""
    import matplotlib
    from matplotlib.figure import Figure

    style = {"svg.fonttype": "none"}
    if font_size is not None:
        style["font.size"] = str(font_size)
    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        figure = Figure(figsize=(width, height), dpi=dpi)
        draw(figure.add_subplot())
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return _METADATA.sub("", text[text.index("<svg") :])
