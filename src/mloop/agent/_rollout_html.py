"""A rollout as one self-contained HTML page: what happened, and the evidence at each step.

Every transition keeps the judgement it rested on (the candidate's and the primary's
window of traffic), so the page can show, step by step, the two sides' error rates, p99
latencies, online metric and the divergence of their answers against the plan's limits.
Plots are matplotlib figures (object API, no pyplot) inlined as SVG: no script, no CDN,
so the file can be attached to an incident ticket or opened offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop._html import BASE_STYLE, escape, figure_svg, utc_time

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mloop.agent._rollout_store import Rollout, RolloutEvent

CANDIDATE, PRIMARY, LIMIT = "#3b6fd8", "#e8731a", "#b00020"
_STYLE = (
    BASE_STYLE
    + """
.state{padding:.5rem 1rem;border-radius:6px;font-weight:600;display:inline-block}
.succeeded{background:#e6f4ea;color:#1e6b34}.running{background:#eef1f6;color:#333}
.rolled_back,.aborted{background:#fff4e5;color:#8a5300}.failed{background:#fdecea;color:#b00020}
"""
)


def _svg(draw: Callable[[Axes], None]) -> str:
    return figure_svg(draw, 4.6, 2.6)


def _evidence(rollout: Rollout, events: Sequence[RolloutEvent]) -> list[tuple[str, dict[str, Any]]]:
    """(step label, judgement) for every judged step, in order: the checks recorded with
    each transition, then the latest check of the step in force."""
    found: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        check = (event.detail or {}).get("check")
        if check and isinstance(check.get("step"), int):
            found.append((_label(rollout, check["step"]), check))
    if rollout.active and rollout.last_check:
        found.append((_label(rollout, rollout.step) + " (now)", rollout.last_check))
    return found


def _label(rollout: Rollout, index: int) -> str:
    return rollout.plan.steps[index].describe() if 0 <= index < rollout.steps else f"step {index}"


def _pair(
    evidence: list[tuple[str, dict[str, Any]]],
    key: str,
    title: str,
    scale: float,
    limit: Callable[[float], float] | None,
) -> str | None:
    labels = [label for label, _ in evidence]
    ours = [(c.get("candidate") or {}).get(key) for _, c in evidence]
    theirs = [(c.get("primary") or {}).get(key) for _, c in evidence]
    if all(v is None for v in ours + theirs):
        return None

    def draw(axes: Axes) -> None:
        positions = range(len(labels))
        width = 0.38
        axes.bar(
            [p - width / 2 for p in positions],
            [(v or 0) * scale for v in ours],
            width,
            color=CANDIDATE,
            label="candidate",
        )
        axes.bar(
            [p + width / 2 for p in positions],
            [(v or 0) * scale for v in theirs],
            width,
            color=PRIMARY,
            label="primary",
        )
        if limit is not None:
            bounds = [limit((v or 0) * scale) for v in theirs]
            axes.scatter(
                list(positions),
                bounds,
                marker="_",
                s=400,
                color=LIMIT,
                label="candidate limit",
                zorder=3,
            )
        axes.set_xticks(list(positions), labels, rotation=20, ha="right")
        axes.set_title(title)
        axes.legend(fontsize=7, frameon=False)

    return _svg(draw)


def _divergence(evidence: list[tuple[str, dict[str, Any]]], limit: float | None) -> str | None:
    values = [c.get("divergence") for _, c in evidence]
    if all(v is None for v in values):
        return None

    def draw(axes: Axes) -> None:
        positions = list(range(len(values)))
        axes.plot(
            positions,
            [v if v is not None else float("nan") for v in values],
            "o-",
            color=CANDIDATE,
            label="candidate vs primary",
        )
        if limit is not None:
            axes.axhline(limit, color=LIMIT, linestyle="--", label="limit")
        axes.set_ylim(0, 1)
        axes.set_xticks(positions, [label for label, _ in evidence], rotation=20, ha="right")
        axes.set_title("Answer divergence (Jensen-Shannon distance)")
        axes.legend(fontsize=7, frameon=False)

    return _svg(draw)


def render(rollout: Rollout, events: Sequence[RolloutEvent]) -> str:
    """The whole page."""
    import matplotlib

    checks = rollout.plan.checks
    evidence = _evidence(rollout, events)
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 8}):
        ratio, increase = checks.max_p99_latency_ratio, checks.max_error_rate_increase
        plots = [
            _pair(
                evidence,
                "error_rate",
                "Error rate (%)",
                100,
                None if increase is None else (lambda p: p + increase * 100),
            ),
            _pair(
                evidence,
                "latency_p99_ms",
                "p99 latency (ms)",
                1,
                None
                if ratio is None
                else (lambda p: max(p * ratio, p + checks.latency_tolerance_ms)),
            ),
            _pair(evidence, "online_metric", "Online metric (from feedback)", 1, None),
            _divergence(evidence, checks.max_divergence),
        ]
    figures = "".join(f"<figure>{p}</figure>" for p in plots if p is not None)
    rows = "".join(
        f"<tr><td class='num'>{e.seq}</td><td>{utc_time(e.at_ms)}</td><td>{escape(e.kind)}</td>"
        f"<td>{escape(e.actor)}</td><td>{escape(e.message)}</td></tr>"
        for e in events
    )
    steps = " → ".join(
        ("<b>" if n == rollout.step else "")
        + escape(s.describe() + (f" {s.window}" if s.window else ""))
        + ("</b>" if n == rollout.step else "")
        for n, s in enumerate(rollout.plan.steps)
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Rollout {escape(rollout.id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Rollout of {escape(rollout.candidate)} on {escape(rollout.deployment)}</h1>",
        f"<p><span class='state {escape(rollout.state)}'>{escape(rollout.state.replace('_', ' '))}"
        f"</span> {escape(rollout.reason or '')}</p>",
        f"<p>Primary {escape(rollout.primary)} · started {utc_time(rollout.created_ms)} by "
        f"{escape(rollout.created_by)} · finished {utc_time(rollout.finished_ms)} · rollout "
        f"<code>{escape(rollout.id)}</code></p>",
        f"<p>Plan{' ' + escape(rollout.plan_name) if rollout.plan_name else ''}: {steps}</p>",
        "<h2>Candidate against primary, step by step</h2>",
        f"<div class='plots'>{figures}</div>"
        if figures
        else "<p class='note'>No step has been judged yet.</p>",
        "<h2>History</h2><table><tr><th>#</th><th>When</th><th>What</th><th>By</th>"
        f"<th>Detail</th></tr>{rows}</table>",
        "<p class='note'>Every step is also a revision of the deployment: "
        f"<code>mloop deploy history {escape(rollout.deployment)}</code>.</p></body></html>",
    ]
    return "".join(parts)


def write_rollout_html(rollout_id: str, path: str | Path, *, settings: Any = None) -> Path:
    """Write the page of a rollout (id or unique prefix) to ``path``, atomically."""
    import os
    import tempfile

    from mloop.agent._rollouts import get_rollout, rollout_events

    rollout = get_rollout(rollout_id, settings=settings)
    page = render(rollout, rollout_events(rollout.id, settings=settings))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent, suffix=".tmp", delete=False
    ) as handle:
        handle.write(page)
    os.replace(handle.name, target)
    return target


__all__ = ["render", "write_rollout_html"]
