"""`mloop triggers`: what starts a retraining pipeline, and what each start came to.

Triggers are declared in YAML and applied (``mloop triggers apply triggers.yaml``); the
agent (``mloop agent run`` / ``tick``) fires them. ``fire NAME`` runs one by hand,
``history`` shows every firing with its outcome: succeeded, stopped with the reason (a
refused gate), failed with the error, or skipped inside a cooldown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.agent._trigger_spec import Trigger
    from mloop.agent._trigger_store import Firing, StoredTrigger

triggers_app = typer.Typer(
    name="triggers",
    help="Retraining triggers: run a pipeline on an alert, a performance decline, a cron "
    "schedule or a new dataset version; see what each firing came to.",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Trigger name.", show_default=False)]
_STATUS_STYLE = {
    "running": "cyan",
    "succeeded": "green",
    "stopped": "yellow",
    "failed": "red",
    "skipped": "dim",
}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    app.add_typer(triggers_app)


@triggers_app.command("apply")
def apply(
    file: Annotated[
        Path, typer.Argument(help="YAML file with one or more triggers.", show_default=False)
    ],
    as_json: JsonFlag = False,
) -> None:
    """Create or update the triggers of a YAML file (all are checked before any is saved)."""
    from mloop.agent._triggers import apply_triggers

    outcome = apply_triggers(file)
    if as_json:
        _render.emit_json([{"name": name, "action": action} for name, action in outcome])
        return
    out = _render.console()
    for name, action in outcome:
        out.print(Text.assemble(f"{action.capitalize()} trigger ", (name, "bold")))


@triggers_app.command("list")
def list_all(as_json: JsonFlag = False) -> None:
    """List triggers with their event and last firing."""
    from mloop.agent._trigger_firings import list_firings
    from mloop.agent._trigger_store import list_stored_triggers

    stored = list_stored_triggers()
    last = {s.trigger.name: next(iter(list_firings(s.trigger.name, limit=1)), None) for s in stored}
    if as_json:
        _render.emit_json([_stored_json(s, last[s.trigger.name]) for s in stored])
        return
    out = _render.console()
    if not stored:
        out.print("No triggers yet; declare them in YAML and `mloop triggers apply FILE`.")
        return
    table = _render._table()
    table.add_column("Name", overflow="fold")
    table.add_column("On", overflow="fold")
    table.add_column("Pipeline", overflow="fold")
    table.add_column("Last firing", overflow="fold")
    for s in stored:
        t = s.trigger
        name = Text(t.name, style="bold" if t.enabled else "dim")
        if not t.enabled:
            name.append(" (disabled)", style="dim")
        table.add_row(name, Text(t.on.describe()), Text(t.pipeline), _last(last[t.name]))
    out.print(table)


@triggers_app.command("show")
def show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Show a trigger: its declaration, when it fires next (schedules) and recent firings."""
    from mloop.agent._trigger_firings import list_firings
    from mloop.agent._trigger_store import get_stored_trigger

    stored = get_stored_trigger(name)
    firings = list_firings(name, limit=5)
    if as_json:
        _render.emit_json(
            {**_stored_json(stored, firings[0] if firings else None), "recent": _fj(firings)}
        )
        return
    out = _render.console()
    out.print(_overview(stored))
    if firings:
        out.print(_firings_table(firings, title="Recent firings", with_trigger=False))
    else:
        out.print("No firings yet.")


@triggers_app.command("history")
def history(
    name: Annotated[
        str | None,
        typer.Argument(help="Only this trigger's firings.", show_default=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only firings that ended so: running, succeeded, stopped, failed, skipped.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 50,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write a page with a timeline of the firings (self-contained HTML).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Firings, newest first, with their outcome and reason."""
    from mloop.agent._trigger_firings import list_firings

    firings = list_firings(name, status=status, limit=limit)
    if html is not None:
        from mloop.agent._trigger_html import write_page

        title = f"Firings of trigger {name}" if name else "Trigger firings"
        write_page(html, firings, title=title)
        if not as_json:
            _render.console().print(Text.assemble("Wrote ", (str(html), "bold")))
    if as_json:
        _render.emit_json(_fj(firings))
        return
    if not firings:
        _render.console().print("No firings yet.")
        return
    _render.console().print(_firings_table(firings, title="Trigger firings", with_trigger=True))


@triggers_app.command("fire")
def fire(name: NameArg, as_json: JsonFlag = False) -> None:
    """Run a trigger's pipeline now (a manual firing, recorded in the history).
    Exit 0 succeeded, 1 stopped or failed."""
    from mloop.agent._triggers import fire_trigger

    if as_json:
        firing = fire_trigger(name)
        _render.emit_json(firing.to_dict())
    else:
        with _following(name) as on_event:
            firing = fire_trigger(name, on_event=on_event)
        line = Text.assemble("Trigger ", (name, "bold"), ": ", _status(firing.status))
        if firing.reason:
            line.append(f" — {_render.one_line(firing.reason)}")
        if firing.execution_id:
            line.append(f" (execution {firing.execution_id}; `mloop pipeline show` it)")
        _render.console().print(line)
    if firing.status != "succeeded":
        raise typer.Exit(1)


@triggers_app.command("disable")
def disable(name: NameArg) -> None:
    """Keep a trigger but stop the agent from firing it (`fire` still works)."""
    from mloop.agent._triggers import set_trigger_enabled

    set_trigger_enabled(name, False)
    _render.console().print(Text.assemble("Disabled trigger ", (name, "bold")))


@triggers_app.command("enable")
def enable(name: NameArg) -> None:
    """Let the agent fire a disabled trigger again."""
    from mloop.agent._triggers import set_trigger_enabled

    set_trigger_enabled(name, True)
    _render.console().print(Text.assemble("Enabled trigger ", (name, "bold")))


@triggers_app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a trigger (its firings stay in the history)."""
    from mloop.agent._triggers import delete_trigger

    delete_trigger(name)
    _render.console().print(Text.assemble("Deleted trigger ", (name, "bold")))


@contextmanager
def _following(name: str) -> Iterator[Callable[[str, str], None] | None]:
    """The pipeline's live DAG (as `mloop pipeline run` shows it) while a trigger's
    pipeline runs; a spinner when its graph cannot be built ahead (the run then says why)."""
    from mloop.agent._triggers import get_trigger
    from mloop.cli._pipeline import _live
    from mloop.pipelines._graph import build
    from mloop.pipelines._runner import resolve_pipeline

    trigger = get_trigger(name)
    try:
        graph = build(resolve_pipeline(trigger.pipeline), dict(trigger.params))
    except Exception:  # an unimportable pipeline or missing parameter: the firing records it
        with _render.console().status(f"Running the pipeline of trigger {name}…"):
            yield None
        return
    upstream = {step: node.upstream for step, node in graph.nodes.items()}
    with _live(f"{name}: {trigger.pipeline}", upstream) as on_event:
        yield on_event


# -- rendering --------------------------------------------------------------------------------


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _last(firing: Firing | None) -> Text:
    if firing is None:
        return Text("never", style="dim")
    text = Text.assemble(_status(firing.status), f" {_render.format_when(firing.fired_ms)}")
    return text


def _fj(firings: list[Firing]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in firings]


def _stored_json(stored: StoredTrigger, last: Firing | None) -> dict[str, Any]:
    return {
        **stored.trigger.to_json(),
        "enabled": stored.trigger.enabled,
        "kind": stored.trigger.kind,
        "created_by": stored.created_by,
        "creation_time": stored.creation_time,
        "last_update_time": stored.last_update_time,
        "next_fire_ms": _next_fire(stored.trigger),
        "last_firing": None if last is None else last.to_dict(),
    }


def _next_fire(trigger: Trigger) -> int | None:
    if trigger.on.schedule is None:
        return None
    from mloop._ids import now_ms
    from mloop.agent._trigger_schedule import next_fire_ms

    return next_fire_ms(trigger.on.schedule.cron, now_ms())


def _overview(stored: StoredTrigger) -> Table:
    import yaml

    t = stored.trigger
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Trigger", Text(t.name, style="bold"))
    grid.add_row("On", Text(t.on.describe()))
    grid.add_row("Pipeline", Text(t.pipeline))
    if t.params:
        params = yaml.safe_dump(t.params, sort_keys=True, default_flow_style=True).strip()
        grid.add_row("Params", Text(params))
    if t.cooldown:
        grid.add_row("Cooldown", t.cooldown)
    grid.add_row("Enabled", "yes" if t.enabled else "no")
    following = _next_fire(t)
    if following is not None:
        grid.add_row("Next", _render.format_time(following))
    if t.description:
        grid.add_row("Description", Text(t.description))
    grid.add_row("Saved", f"{_render.format_time(stored.last_update_time)} by {stored.created_by}")
    return grid


def _firings_table(firings: list[Firing], *, title: str, with_trigger: bool) -> Table:
    table = _render._table(title)
    table.add_column("Fired", no_wrap=True)
    if with_trigger:
        table.add_column("Trigger", overflow="fold")
    table.add_column("Event", overflow="fold")
    table.add_column("Outcome", no_wrap=True)
    table.add_column("Took", justify="right", no_wrap=True)
    table.add_column("Reason", overflow="fold")
    table.add_column("Execution", overflow="fold")
    for f in firings:
        row: list[Any] = [_render.format_time(f.fired_ms)]
        if with_trigger:
            row.append(Text(f.trigger))
        row += [
            Text(f.event_key),
            _status(f.status),
            _render.format_duration(f.fired_ms, f.finished_ms) if f.finished_ms else "—",
            Text(_render.one_line(f.reason or "")),
            Text(f.execution_id or ""),
        ]
        table.add_row(*row)
    return table
