"""The drift report as one self-contained HTML page.

Inline SVG only: no script, no CDN, no font or image fetched, so the file can be attached
to a ticket or opened offline. Each drifted feature gets the reference and current
distributions overlaid, drawn from the statistics (quantile sketch or category counts),
never from rows.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np

from mloop.data._drift_methods import OTHER_BUCKET, category_counts, finite_count
from mloop.data._model import FeatureKind

if TYPE_CHECKING:
    from mloop.data._drift import DriftReport, FeatureDrift
    from mloop.data._statistics import DatasetStatistics, FeatureStats

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 48, 28, 12
REF_COLOR, CUR_COLOR = "#3b6fd8", "#e8731a"
HIST_BINS = 40
TOP_CATEGORIES = 15

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.yes{color:#b00020;font-weight:600}.no{color:#2e7d32}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
.note{color:#555;font-size:.85rem}
svg text{font-size:10px;fill:#444}
"""


def _fmt(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _numeric_shares(
    ref: FeatureStats, cur: FeatureStats
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not finite_count(ref) or not finite_count(cur):
        return None
    tails = [0.005, 0.995]
    low = min(ref.quantiles(tails)[0], cur.quantiles(tails)[0])
    high = max(ref.quantiles(tails)[1], cur.quantiles(tails)[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HIST_BINS + 1)
    inner = edges[1:-1].tolist()

    def shares(stats: FeatureStats) -> np.ndarray:
        cdf = np.asarray(stats.cdf(inner), dtype=np.float64)
        return np.clip(np.diff(np.concatenate([[0.0], cdf[:-1], [1.0]])), 0.0, None)

    return edges, shares(ref), shares(cur)


def _bars_svg(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> str:
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    top = float(max(ref.max(), cur.max(), 1e-12))
    step = plot_w / ref.size
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">'
    ]
    for shares, color in ((ref, REF_COLOR), (cur, CUR_COLOR)):
        for i, share in enumerate(shares):
            h = plot_h * float(share) / top
            x = PAD_LEFT + i * step
            parts.append(
                f'<rect x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}" fill-opacity="0.5"/>'
            )
    base = PAD_TOP + plot_h
    parts.append(
        f'<line x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - 8}" y2="{base}" stroke="#888"/>'
        f'<text x="{PAD_LEFT}" y="{base + 14}">{html.escape(_fmt(float(edges[0])))}</text>'
        f'<text x="{WIDTH - 8}" y="{base + 14}" text-anchor="end">'
        f"{html.escape(_fmt(float(edges[-1])))}</text>"
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">{top:.1%}</text>'
        f'<text x="{PAD_LEFT - 4}" y="{base}" text-anchor="end">0</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _categories_svg(keys: list[str], ref: np.ndarray, cur: np.ndarray) -> str:
    row_h, label_w = 22, 180
    height = PAD_TOP + row_h * len(keys) + 8
    plot_w = WIDTH - label_w - 60
    top = float(max(ref.max(), cur.max(), 1e-12))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">'
    ]
    for i, key in enumerate(keys):
        y = PAD_TOP + i * row_h
        label = key if len(key) <= 28 else key[:27] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
        )
        for j, (share, color) in enumerate(((ref[i], REF_COLOR), (cur[i], CUR_COLOR))):
            w = plot_w * float(share) / top
            parts.append(
                f'<rect x="{label_w}" y="{y + 2 + j * 9}" width="{w:.1f}" height="8" fill="{color}"/>'
            )
        parts.append(
            f'<text x="{label_w + plot_w + 6}" y="{y + 14}">'
            f"{float(ref[i]):.1%} → {float(cur[i]):.1%}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _category_chart(ref: FeatureStats, cur: FeatureStats) -> str:
    keys, ref_counts, cur_counts = category_counts(ref, cur)
    ref_total, cur_total = ref_counts.sum(), cur_counts.sum()
    ref_sh = ref_counts / ref_total if ref_total else ref_counts
    cur_sh = cur_counts / cur_total if cur_total else cur_counts
    order = np.argsort(-np.maximum(ref_sh, cur_sh), kind="stable")
    shown = [int(i) for i in order if keys[int(i)] != OTHER_BUCKET][:TOP_CATEGORIES]
    rest = [int(i) for i in range(len(keys)) if int(i) not in set(shown)]
    labels = [keys[i] for i in shown]
    r, c = ref_sh[shown], cur_sh[shown]
    if rest:
        labels.append(f"other ({len(rest)})")
        r = np.append(r, ref_sh[rest].sum())
        c = np.append(c, cur_sh[rest].sum())
    return _categories_svg(labels, r, c)


def _chart(feature: FeatureDrift, ref: FeatureStats | None, cur: FeatureStats | None) -> str:
    if ref is None or cur is None or FeatureKind(ref.kind) is not FeatureKind(cur.kind):
        return ""
    if FeatureKind(ref.kind) is FeatureKind.CATEGORICAL:
        return _category_chart(ref, cur)
    shares = _numeric_shares(ref, cur)
    if shares is None:
        return '<p class="note">no finite values on one side: nothing to draw</p>'
    return _bars_svg(*shares)


def _presence_line(feature: FeatureDrift) -> str:
    presence = feature.details.get("presence")
    if not isinstance(presence, dict):
        return ""
    before, after = presence["reference"], presence["current"]
    parts = [
        f"{key} {before[key]:.2%} → {after[key]:.2%}"
        for key in ("missing", "nan", "inf")
        if before[key] or after[key]
    ]
    return f'<p class="note">presence: {html.escape(", ".join(parts) or "all values present")}</p>'


def render(report: DriftReport, reference: DatasetStatistics, current: DatasetStatistics) -> str:
    """The report page; see :func:`mloop.data._drift.render_drift_html`."""
    esc = html.escape
    verdict = "drift detected" if report.drifted else "no drift"
    rows = []
    for f in report.features:
        cls = "yes" if f.drifted else "no"
        rows.append(
            f"<tr><td>{esc(f.name)}</td><td>{esc(str(f.kind))}</td><td>{esc(f.method)}</td>"
            f'<td class="num">{esc(_fmt(f.score))}</td><td class="num">{esc(_fmt(f.threshold))}</td>'
            f'<td class="{cls}">{"yes" if f.drifted else "no"}</td></tr>'
        )
    sections = []
    for f in report.features:
        if not f.drifted:
            continue
        reasons = f.details.get("reasons") or [f.details.get("reason", f.method)]
        sections.append(
            f"<section><h2>{esc(f.name)} <small>({esc(str(f.kind))})</small></h2>"
            f"<p>{esc(f.method)} = {esc(_fmt(f.score))} (threshold {esc(_fmt(f.threshold))}); "
            f"drifted by {esc(', '.join(str(r) for r in reasons))}</p>"
            f"{_presence_line(f)}"
            f"{_chart(f, reference.features.get(f.name), current.features.get(f.name))}</section>"
        )
    share = f"{len(report.drifted_features())} of {len(report.features)} features drifted"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>mloop drift report: {esc(verdict)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Drift report: {esc(verdict)}</h1>"
        f"<p>{esc(share)}. Reference {report.reference_rows:,} rows, current "
        f"{report.current_rows:,} rows.</p>"
        f'<p class="legend"><span style="background:{REF_COLOR}"></span>reference'
        f'<span style="background:{CUR_COLOR}"></span>current</p>'
        "<table><thead><tr><th>feature</th><th>type</th><th>method</th><th>score</th>"
        f"<th>threshold</th><th>drifted</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{''.join(sections)}</body></html>"
    )
