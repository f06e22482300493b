"""`mloop rollout`: progressive delivery of a candidate model version on a deployment.

``start`` records the rollout and puts its first step in force; the agent (``mloop agent
run`` or ``mloop agent tick``) advances it. ``status`` shows where it stands — the steps,
how long the current one has held, and the candidate against the primary over the
current window. A rollout is named by its id, a unique prefix of it, or its deployment
(the newest rollout there).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.agent import Rollout, RolloutEvent, RolloutPlan

rollout_app = typer.Typer(
    name="rollout",
    help="Progressive delivery: shadow, canary steps and promotion of a candidate model "
    "version, checked against the primary at every step and rolled back on a breach.",
    no_args_is_help=True,
    add_completion=False,
)
plan_app = typer.Typer(
    name="plan",
    help="Named rollout plans: the steps and the checks between them.",
    no_args_is_help=True,
    add_completion=False,
)
rollout_app.add_typer(plan_app)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RolloutArg = Annotated[
    str,
    typer.Argument(
        help="Rollout id (or a unique prefix), or a deployment name for its newest rollout.",
        show_default=False,
    ),
]
_STATE_STYLE = {
    "running": "cyan",
    "succeeded": "green",
    "rolled_back": "yellow",
    "aborted": "yellow",
    "failed": "red",
}
_EVENT_STYLE = {**_STATE_STYLE, "started": "cyan", "step": "cyan", "promoted": "green"}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    app.add_typer(rollout_app)


@rollout_app.command("start")
def start(
    deployment: Annotated[
        str, typer.Argument(help="Deployment to roll out on.", show_default=False)
    ],
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate",
            "-c",
            help="Model version to roll out: NAME:VERSION, NAME@ALIAS or models:/NAME/VERSION.",
            show_default=False,
        ),
    ],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            help="A plan file (YAML) or the name of a stored plan; default: shadow 10m, canary "
            "5%, 25%, 50% (10m each), 100%.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a rollout and put its first step in force."""
    from mloop.agent import start_rollout

    chosen: Any = Path(plan) if plan is not None and Path(plan).is_file() else plan
    rollout = start_rollout(deployment, candidate, chosen)
    if as_json:
        _render.emit_json(rollout.to_dict())
        return
    _render.console().print(
        Text.assemble(
            "Started rollout ",
            (rollout.id, "bold"),
            f" of {rollout.candidate} on {rollout.deployment} (primary {rollout.primary}): ",
            (rollout.describe_step(), "cyan"),
        )
    )
    _render.console().print(
        Text(
            f"The agent advances it: `mloop agent run` (or `mloop agent tick` from cron); "
            f"watch it with `mloop rollout status {rollout.deployment}`.",
            style="dim",
        )
    )


@rollout_app.command("status")
def status(
    rollout: RolloutArg,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write an HTML page with the candidate against the primary at each step.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Where a rollout stands: its steps, the last check, and what happened so far."""
    from mloop.agent import rollout_events, write_rollout_html

    found = _lookup(rollout)
    events = rollout_events(found.id)
    if html is not None:
        written = write_rollout_html(found.id, html)
        if not as_json:
            _render.console().print(Text(f"Wrote {written}", style="dim"))
    if as_json:
        _render.emit_json({**found.to_dict(), "events": [e.to_dict() for e in events]})
        return
    out = _render.console()
    out.print(_overview(found))
    out.print(_steps(found))
    if found.last_check is not None and found.active:
        out.print(_check_table(found.last_check, found))
    out.print(_events_table(events))


@rollout_app.command("list")
def list_all(
    deployment: Annotated[
        str | None, typer.Argument(help="Only this deployment's rollouts.", show_default=False)
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            help="Only rollouts in this state: running, succeeded, rolled_back, aborted, failed.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Rollouts, newest first."""
    from mloop.agent import list_rollouts

    rollouts = list_rollouts(deployment, state=state, limit=limit)
    if as_json:
        _render.emit_json([r.to_dict() for r in rollouts])
        return
    table = _render._table("Rollouts")
    for column in ("ID", "Deployment", "Candidate", "Primary", "State", "Step", "Started"):
        table.add_column(column, overflow="fold", no_wrap=column in ("ID", "Started"))
    table.add_column("Reason", overflow="fold")
    for r in rollouts:
        table.add_row(
            Text(r.id),
            Text(r.deployment),
            Text(r.candidate),
            Text(r.primary),
            _state(r.state),
            Text(r.describe_step()),
            _render.format_when(r.created_ms),
            Text(r.reason or ""),
        )
    if not rollouts:
        _render.console().print(
            "No rollouts yet; `mloop rollout start DEPLOYMENT -c NAME:VERSION`."
        )
        return
    _render.console().print(table)


@rollout_app.command("abort")
def abort(
    rollout: RolloutArg,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the history).", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Stop a running rollout and return the deployment to how it was before it."""
    from mloop.agent import abort_rollout

    found = _lookup(rollout)
    done = abort_rollout(found.id, reason)
    if as_json:
        _render.emit_json(done.to_dict())
        return
    _render.console().print(
        Text.assemble(
            "Aborted rollout ",
            (done.id, "bold"),
            f": {done.deployment} is back to {done.primary} (revision {done.deployment_revision})",
        )
    )


# -- plans ------------------------------------------------------------------------------------


@plan_app.command("save")
def plan_save(
    name: Annotated[str, typer.Argument(help="Plan name.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="The plan, in YAML.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Store (or replace) a named plan from a YAML file."""
    from mloop.agent import RolloutPlan, save_plan

    saved = save_plan(name, RolloutPlan.from_yaml(file))
    if as_json:
        _render.emit_json({"name": name, "plan": saved.to_json()})
        return
    _render.console().print(Text.assemble("Saved plan ", (name, "bold"), f": {saved.describe()}"))


@plan_app.command("list")
def plan_list(as_json: JsonFlag = False) -> None:
    """Every stored plan."""
    from mloop.agent import list_plans

    plans = list_plans()
    if as_json:
        _render.emit_json([{"name": n, "plan": p.to_json()} for n, p in plans])
        return
    if not plans:
        _render.console().print("No stored plans; `mloop rollout plan save NAME FILE`.")
        return
    table = _render._table("Rollout plans")
    table.add_column("Name", no_wrap=True)
    table.add_column("Steps", overflow="fold")
    table.add_column("Promotes", no_wrap=True)
    for name, plan in plans:
        table.add_row(Text(name, style="bold"), Text(plan.describe()), _alias(plan))
    _render.console().print(table)


@plan_app.command("show")
def plan_show(
    name: Annotated[str, typer.Argument(help="Plan name.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """One stored plan, with its checks."""
    from mloop.agent import get_plan

    plan = get_plan(name)
    if as_json:
        _render.emit_json({"name": name, "plan": plan.to_json()})
        return
    out = _render.console()
    out.print(Text.assemble(("Plan ", "bold"), (name, "bold"), f": {plan.describe()}"))
    table = _render._table("Checks at every step")
    table.add_column("Check")
    table.add_column("Value", overflow="fold")
    for key, value in plan.checks.model_dump(mode="json").items():
        table.add_row(key, Text("off" if value is None else str(value)))
    table.add_row("promote_alias", _alias(plan))
    out.print(table)


@plan_app.command("delete")
def plan_delete(
    name: Annotated[str, typer.Argument(help="Plan name.", show_default=False)],
) -> None:
    """Remove a stored plan (rollouts that used it keep their copy)."""
    from mloop.agent import delete_plan

    delete_plan(name)
    _render.console().print(Text.assemble("Deleted plan ", (name, "bold")))


# -- rendering --------------------------------------------------------------------------------


def _lookup(text: str) -> Rollout:
    """A rollout by deployment name (its newest rollout), id, or unique id prefix."""
    from mloop.agent import get_rollout, list_rollouts

    newest = list_rollouts(text, limit=1) if _could_be_deployment(text) else []
    return newest[0] if newest else get_rollout(text)


def _could_be_deployment(text: str) -> bool:
    from mloop.errors import InvalidInput
    from mloop.registry import _names

    try:
        _names.deployment_name(text)
    except InvalidInput:
        return False
    return True


def _state(state: str) -> Text:
    return Text(state.replace("_", " "), style=_STATE_STYLE.get(state, ""))


def _alias(plan: RolloutPlan) -> Text:
    return Text(f"@{plan.promote_alias}" if plan.promote_alias else "no alias")


def _overview(r: Rollout) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("Rollout", Text(r.id))
    table.add_row("Deployment", Text(f"{r.deployment} (revision {r.deployment_revision})"))
    table.add_row("Candidate", Text(f"{r.candidate}, against primary {r.primary}"))
    table.add_row("State", Group(_state(r.state), *([Text(r.reason)] if r.reason else [])))
    table.add_row("Plan", Text(r.plan_name or "(given at start)"))
    table.add_row("Started", Text(f"{_render.format_time(r.created_ms)} by {r.created_by}"))
    if r.finished_ms is not None:
        table.add_row(
            "Finished",
            Text(
                f"{_render.format_time(r.finished_ms)} "
                f"(after {_render.format_duration(r.created_ms, r.finished_ms)})"
            ),
        )
    return table


def _steps(r: Rollout) -> Text:
    """The plan as a line of steps: done ones ticked, the current one highlighted with how
    much of its window has passed."""
    from mloop._ids import now_ms

    parts: list[tuple[str, str] | str] = []
    for n, step in enumerate(r.plan.steps):
        label = step.describe() + (f" {step.window}" if step.window else "")
        if r.state == "succeeded" or n < r.step:
            parts.append((f"✓ {label}", "green"))
        elif n == r.step and r.active:
            held = max(0, (r.last_check or {}).get("at_ms", now_ms()) - r.step_started_ms)
            share = min(1.0, held / step.window_ms) if step.window_ms else 1.0
            bar = "█" * round(share * 10) + "░" * (10 - round(share * 10))
            parts.append((f"● {label} {bar}", "bold cyan"))
        elif n == r.step:
            parts.append((f"✗ {label}", _STATE_STYLE.get(r.state, "")))
        else:
            parts.append((f"○ {label}", "dim"))
        if n < len(r.plan.steps) - 1:
            parts.append(" → ")
    return Text.assemble(*parts)


def _figure(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{float(value) * 100:.2f}%"
    if kind == "ms":
        return f"{float(value):.1f} ms"
    if kind == "metric":
        return f"{float(value):.4g}"
    return str(value)


def _check_table(check: dict[str, Any], r: Rollout) -> Table:
    window = check.get("window") or [r.step_started_ms, r.step_started_ms]
    title = (
        f"Last check ({_render.format_duration(window[0], window[1])} of traffic, "
        f"{_render.format_when(check.get('at_ms'))})"
    )
    table = _render._table(title)
    table.add_column("")
    table.add_column(f"candidate {r.candidate}", justify="right")
    table.add_column(f"primary {r.primary}", justify="right")
    ours, theirs = check.get("candidate", {}), check.get("primary", {})
    for label, key, kind in (
        ("requests", "count", "n"),
        ("error rate", "error_rate", "pct"),
        ("p99 latency", "latency_p99_ms", "ms"),
        ("labelled", "labelled", "n"),
        ("online metric", "online_metric", "metric"),
    ):
        table.add_row(label, _figure(ours.get(key), kind), _figure(theirs.get(key), kind))
    if check.get("divergence") is not None:
        table.add_row("answer divergence", f"{check['divergence']:.3f}", "")
    verdict = check.get("shortfall") or "; ".join(check.get("breaches") or []) or "passing"
    table.caption = verdict
    return table


def _events_table(events: list[RolloutEvent]) -> Table:
    table = _render._table("History")
    table.add_column("#", justify="right")
    table.add_column("When", no_wrap=True)
    table.add_column("What", no_wrap=True)
    table.add_column("By", overflow="fold")
    table.add_column("Detail", overflow="fold")
    for e in events:
        table.add_row(
            str(e.seq),
            _render.format_time(e.at_ms),
            Text(e.kind.replace("_", " "), style=_EVENT_STYLE.get(e.kind, "")),
            Text(e.actor),
            Text(e.message),
        )
    return table
