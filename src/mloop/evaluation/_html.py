"""The evaluation report as one self-contained HTML page.

Plots are drawn with matplotlib's object API (``Figure``, no pyplot: no global state, safe
in threads) and inlined as SVG; there is no script, CDN or fetched font, so the page can
be attached to a ticket or opened offline. The verdict and its reasons come first, then
the overall metrics, where improvement is worth most, the slices, fairness, robustness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mloop._html import BASE_STYLE, escape, figure_svg

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mloop.evaluation._report import EvaluationReport

CANDIDATE, BASELINE, REFERENCE = "#3b6fd8", "#e8731a", "#555555"
MAX_SLICE_BARS = 40
_STYLE = (
    BASE_STYLE
    + """
.verdict{padding:.6rem 1rem;border-radius:6px;font-weight:600;display:inline-block}
.blessed{background:#e6f4ea;color:#1e6b34}.refused{background:#fdecea;color:#b00020}
.nogate{background:#eef1f6;color:#333}
.rare{color:#9a6700}.bad{color:#b00020}.good{color:#2e7d32}
"""
)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.4g}"


def _svg(width: float, height: float, draw: Callable[[Axes], None]) -> str:
    return figure_svg(draw, width, height)


def render(report: EvaluationReport) -> str:
    """The whole page for ``report``."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        plots = _plots(report)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation {escape(report.id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation of {escape(report.candidate['uri'])}</h1>",
        _verdict(report),
        _summary(report),
        _overall(report),
        plots,
        _priorities(report),
        _slices(report),
        _fairness(report),
        _robustness(report),
        _notes(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _verdict(report: EvaluationReport) -> str:
    css = {True: "blessed", False: "refused", None: "nogate"}[report.blessed]
    gate = f" by gate {escape(report.gate_name)}" if report.gate_name else ""
    text = f"<p class='verdict {css}'>{escape(report.verdict.upper())}{gate}</p>"
    if report.reasons:
        text += (
            "<ul>" + "".join(f"<li class='bad'>{escape(r)}</li>" for r in report.reasons) + "</ul>"
        )
    return text


def _summary(report: EvaluationReport) -> str:
    rows = [
        ("candidate", report.candidate["resolved"]),
        ("baseline", report.baseline["resolved"] if report.baseline else "none"),
        ("data", report.data or "a DataFrame"),
        ("rows", report.rows),
        ("label", report.label),
        ("task", report.task),
        ("gate metric", report.metric),
        ("reference", report.reference_source or "none"),
        (
            "intervals",
            f"{report.settings.get('confidence', 0.95):.0%} bootstrap, "
            f"{report.settings.get('resamples')} resamples, seed {report.settings.get('seed')}",
        ),
        ("evaluation id", report.id),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _overall(report: EvaluationReport) -> str:
    head = "<tr><th>metric</th><th>candidate</th><th>interval</th>"
    if report.baseline_overall:
        head += "<th>baseline</th><th>interval</th><th>Δ</th>"
    rows = []
    for name, value in report.overall.items():
        row = (
            f"<tr><td>{escape(name)}</td><td class='num'>{_fmt(value.value)}</td>"
            f"<td class='num'>{_fmt(value.low)} – {_fmt(value.high)}</td>"
        )
        if report.baseline_overall and name in report.baseline_overall:
            base = report.baseline_overall[name]
            row += (
                f"<td class='num'>{_fmt(base.value)}</td>"
                f"<td class='num'>{_fmt(base.low)} – {_fmt(base.high)}</td>"
                f"<td class='num'>{_fmt(value.value - base.value)}</td>"
            )
        rows.append(row + "</tr>")
    return f"<h2>Overall</h2><table>{head}</tr>{''.join(rows)}</table>"


def _priorities(report: EvaluationReport) -> str:
    if not report.priorities:
        return ""
    rows = "".join(
        f"<tr><td>{escape(p['slice'])}</td><td class='num'>{p['count']}</td>"
        f"<td class='num'>{p['share']:.1%}</td><td class='num'>{_fmt(p['candidate'])}</td>"
        f"<td class='num'>{_fmt(p['reference'])}</td><td class='num'>{_fmt(p['gap'])}</td>"
        f"<td class='num'>{_fmt(p['weighted_gap'])}</td></tr>"
        for p in report.priorities[:20]
    )
    return (
        f"<h2>Where improvement is worth most ({escape(report.metric)})</h2>"
        f"<p class='note'>Gap to the reference ({escape(report.reference_source)}) weighted by the "
        "slice's share of rows; positive means the candidate is behind.</p>"
        "<table><tr><th>slice</th><th>rows</th><th>share</th><th>candidate</th>"
        f"<th>reference</th><th>gap</th><th>weighted gap</th></tr>{rows}</table>"
    )


def _slices(report: EvaluationReport) -> str:
    if not report.slices:
        return ""
    metric = report.metric
    rows = []
    for s in report.slices:
        value = s.metrics[metric]
        rare = " <span class='rare'>(rare)</span>" if s.rare else ""
        delta = s.delta(metric)
        base = (
            ""
            if s.baseline is None
            else f"<td class='num'>{_fmt(s.baseline[metric].value)}</td><td class='num'>{_fmt(delta)}</td>"
        )
        rows.append(
            f"<tr><td>{escape(s.key)}{rare}</td><td class='num'>{s.count}</td>"
            f"<td class='num'>{_fmt(value.value)}</td>"
            f"<td class='num'>{_fmt(value.low)} – {_fmt(value.high)}</td>{base}</tr>"
        )
    head = "<tr><th>slice</th><th>rows</th><th>candidate</th><th>interval</th>"
    if report.baseline_overall is not None:
        head += "<th>baseline</th><th>Δ</th>"
    rare_rows = report.settings.get("min_slice_rows")
    return (
        f"<h2>Slices ({escape(metric)})</h2><p class='note'>Slices under {rare_rows} rows are "
        f"marked rare: reported, with wide intervals, not hidden.</p>"
        f"<table>{head}</tr>{''.join(rows)}</table>"
    )


def _fairness(report: EvaluationReport) -> str:
    if not report.fairness:
        return ""
    parts = ["<h2>Fairness</h2>"]
    for result in report.fairness:
        parts.append(
            f"<p>Across <b>{escape(result.feature)}</b>: demographic-parity difference "
            f"{_fmt(result.demographic_parity_difference)}, equalized-odds difference "
            f"{_fmt(result.equalized_odds_difference)}</p>"
        )
        rows = "".join(
            f"<tr><td>{escape(name)}</td><td class='num'>{g.count}</td>"
            f"<td class='num'>{_fmt(g.selection_rate)}</td><td class='num'>{_fmt(g.tpr)}</td>"
            f"<td class='num'>{_fmt(g.fpr)}</td></tr>"
            for name, g in result.groups.items()
        )
        parts.append(
            "<table><tr><th>group</th><th>rows</th><th>selection rate</th><th>TPR</th>"
            f"<th>FPR</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _robustness(report: EvaluationReport) -> str:
    if not report.robustness and report.backdoor is None:
        return ""
    rows = "".join(
        f"<tr><td>{escape(c.description)}</td><td class='num'>{_fmt(c.clean)}</td>"
        f"<td class='num'>{_fmt(c.perturbed)}</td><td class='num'>{_fmt(c.drop)}</td>"
        f"<td>{escape(c.error or '')}</td></tr>"
        for c in report.robustness
    )
    text = (
        f"<h2>Robustness ({escape(report.metric)})</h2><table><tr><th>perturbation</th><th>clean</th>"
        f"<th>perturbed</th><th>drop</th><th>error</th></tr>{rows}</table>"
    )
    if report.backdoor is not None:
        probe = report.backdoor
        base = (
            ""
            if probe.baseline_flip_rate is None
            else f" (baseline: {probe.baseline_flip_rate:.1%})"
        )
        text += (
            f"<p>Backdoor probe: stamping {escape(probe.trigger)} on {probe.rows} rows flips "
            f"<b>{probe.flip_rate:.1%}</b> of the candidate's answers{base}.</p>"
        )
    return text


def _notes(report: EvaluationReport) -> str:
    if not report.notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>"


# -- plots ------------------------------------------------------------------------------------


def _figure(title: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(title)}</figcaption>{svg}</figure>"


def _plots(report: EvaluationReport) -> str:
    figures = []
    if report.slices:
        figures.append(_figure(f"{report.metric} per slice, with intervals", _slice_bars(report)))
    curves = report.curves
    roc = curves.get("roc") or {}
    if roc.get("candidate"):
        figures.append(_figure("ROC curve", _svg(4.2, 3.6, lambda ax: _roc(ax, roc))))
    calibration = curves.get("calibration") or {}
    if calibration.get("candidate"):
        figures.append(
            _figure(
                "Calibration (top-label confidence)",
                _svg(4.2, 3.6, lambda ax: _calibration(ax, calibration)),
            )
        )
    confusion = curves.get("confusion") or {}
    if confusion.get("matrix"):
        figures.append(
            _figure(
                "Confusion matrix (candidate)", _svg(4.2, 3.6, lambda ax: _confusion(ax, confusion))
            )
        )
    scatter = curves.get("scatter")
    if scatter:
        figures.append(
            _figure(
                "Predicted vs actual (sample)", _svg(4.2, 3.6, lambda ax: _scatter(ax, scatter))
            )
        )
    if not figures:
        return ""
    return "<h2>Plots</h2><div class='plots'>" + "".join(figures) + "</div>"


def _slice_bars(report: EvaluationReport) -> str:
    import numpy as np

    metric = report.metric
    shown = report.slices[:MAX_SLICE_BARS]
    labels = [s.key + (" (rare)" if s.rare else "") for s in shown]
    y = np.arange(len(shown))
    height = 0.38 if report.baseline_overall is not None else 0.7

    def draw(ax: Axes) -> None:
        def bars(values: list[Any], offset: float, color: str, name: str) -> None:
            mid = np.array([v.value for v in values], dtype=float)
            low = np.array([v.low for v in values], dtype=float)
            high = np.array([v.high for v in values], dtype=float)
            error = np.vstack([np.nan_to_num(mid - low), np.nan_to_num(high - mid)])
            ax.barh(
                y + offset,
                np.nan_to_num(mid),
                height,
                xerr=error,
                color=color,
                label=name,
                error_kw={"ecolor": "#222", "capsize": 2, "elinewidth": 0.8},
            )

        offset = height / 2 if report.baseline_overall is not None else 0.0
        bars([s.metrics[metric] for s in shown], -offset, CANDIDATE, "candidate")
        if report.baseline_overall is not None:
            bars(
                [s.baseline[metric] for s in shown if s.baseline is not None],
                offset,
                BASELINE,
                "baseline",
            )
        refs = [(i, s.reference) for i, s in enumerate(shown) if s.reference is not None]
        if refs and report.reference_source not in (None, "baseline"):
            ax.scatter(
                [r for _, r in refs],
                [i for i, _ in refs],
                marker="|",
                s=200,
                color=REFERENCE,
                label="reference",
                zorder=3,
            )
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False
        )

    return _svg(8.0, max(2.4, 0.32 * len(shown) + 1.4), draw)


def _roc(ax: Axes, roc: dict[str, Any]) -> None:
    for who, color in (("candidate", CANDIDATE), ("baseline", BASELINE)):
        if roc.get(who):
            ax.plot(roc[who]["fpr"], roc[who]["tpr"], color=color, label=who)
    ax.plot([0, 1], [0, 1], linestyle=":", color="#999")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", fontsize=8)


def _calibration(ax: Axes, calibration: dict[str, Any]) -> None:
    for who, color in (("candidate", CANDIDATE), ("baseline", BASELINE)):
        points = calibration.get(who)
        if points:
            ax.plot(points["confidence"], points["accuracy"], marker="o", color=color, label=who)
    ax.plot([0, 1], [0, 1], linestyle=":", color="#999", label="perfect")
    ax.set_xlabel("mean confidence")
    ax.set_ylabel("share correct")
    ax.legend(loc="upper left", fontsize=8)


def _confusion(ax: Axes, confusion: dict[str, Any]) -> None:
    import numpy as np

    matrix = np.asarray(confusion["matrix"])
    labels = confusion["labels"]
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if len(labels) <= 12:
        top = matrix.max() or 1
        for i in ticks:
            for j in ticks:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    color="white" if matrix[i, j] > top / 2 else "#222",
                )


def _scatter(ax: Axes, scatter: dict[str, Any]) -> None:
    actual, predicted = scatter["actual"], scatter["predicted"]
    ax.scatter(actual, predicted, s=6, alpha=0.5, color=CANDIDATE)
    low, high = min(actual + predicted), max(actual + predicted)
    ax.plot([low, high], [low, high], linestyle=":", color="#999")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
