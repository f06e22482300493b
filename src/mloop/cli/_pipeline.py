"""`mloop pipeline run | list | show | resume`.

``run`` shows the DAG live while it runs (on stderr, on a terminal): each step pending,
running, cached, done, retrying, failed, stopped or skipped. The exit code is 0 when the
execution succeeded and 1 when it failed or a step stopped it (the reason is printed);
bad input is 2, as everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.pipelines import PipelineExecution, StepExecution

pipeline_app = typer.Typer(
    name="pipeline",
    help="Run pipelines of cached, tracked steps (in-process, a process pool or Ray), list "
    "and inspect their executions, resume failed ones.",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="inprocess (default), process, ray or ray://HOST:PORT; default MLOOP_EXECUTOR.",
        show_default=False,
    ),
]
IdArg = Annotated[str, typer.Argument(help="Execution id.", show_default=False)]

STYLES = {
    "pending": ("·", "dim"),
    "running": ("▶", "cyan"),
    "retrying": ("↻", "yellow"),
    "waiting": ("↻", "yellow"),
    "cached": ("◆", "blue"),
    "succeeded": ("✔", "green"),
    "failed": ("✘", "red"),
    "stopped": ("■", "yellow"),
    "skipped": ("–", "dim"),
}
EXECUTION_STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "stopped": "yellow"}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    app.add_typer(pipeline_app)


@pipeline_app.command("run")
def run_command(
    ref: Annotated[
        str, typer.Argument(help="The pipeline: package.module:function.", show_default=False)
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE, repeatable; values read as YAML scalars (quote to keep text).",
            show_default=False,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, even unchanged ones.")
    ] = False,
    executor: ExecutorOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline and show its DAG while it runs."""
    from mloop.pipelines import run
    from mloop.pipelines._graph import build
    from mloop.pipelines._runner import resolve_pipeline

    params = parse_params(param or [])
    graph = build(resolve_pipeline(ref), params)
    upstream = {name: node.upstream for name, node in graph.nodes.items()}
    with _live(ref, upstream) as on_event:
        execution = run(ref, params, executor=executor, no_cache=no_cache, on_event=on_event)
    _report(execution, as_json)


@pipeline_app.command("resume")
def resume_command(
    execution_id: IdArg,
    executor: ExecutorOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Resume an execution still marked running (its process died)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Continue a failed or stopped execution, reusing the steps that completed."""
    from mloop.pipelines import get_execution, resume

    before = get_execution(execution_id)
    upstream = {s.name: s.upstream for s in before.steps}
    with _live(f"{before.name} {execution_id}", upstream) as on_event:
        execution = resume(execution_id, executor=executor, force=force, on_event=on_event)
    _report(execution, as_json)


@pipeline_app.command("list")
def list_command(
    pipeline: Annotated[
        str | None,
        typer.Option("--pipeline", help="Only this pipeline (name or module:function)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List pipeline executions, newest first."""
    from mloop.pipelines import list_executions

    executions = list_executions(pipeline, limit=limit)
    if as_json:
        _render.emit_json([e.to_dict() for e in executions])
        return
    out = _render.console()
    if not executions:
        out.print(
            "No pipeline executions yet; start one with `mloop pipeline run MODULE:FUNCTION`."
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("pipeline", "status", "steps", "cached", "started", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", no_wrap=True, overflow="ellipsis")
    for e in executions:
        done = sum(s.status in ("succeeded", "cached") for s in e.steps)
        table.add_row(
            e.id,
            e.name,
            Text(e.status, style=EXECUTION_STYLES.get(e.status, "")),
            f"{done}/{len(e.steps)}",
            str(sum(s.cached for s in e.steps)),
            _render.format_when(e.start_time),
            _render.format_duration(e.start_time, e.end_time),
            _render.one_line(e.reason or "")[:80],
        )
    out.print(table)


@pipeline_app.command("show")
def show_command(execution_id: IdArg, as_json: JsonFlag = False) -> None:
    """Show an execution: parameters, the DAG with each step's status, errors, outputs."""
    from mloop.pipelines import get_execution

    execution = get_execution(execution_id)
    if as_json:
        _render.emit_json(execution.to_dict())
        return
    _render.console().print(details(execution))


# -- rendering --------------------------------------------------------------------------------


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["rows=5", "name=iris"]`` → ``{"rows": 5, "name": "iris"}`` (YAML scalars)."""
    import yaml

    from mloop.errors import InvalidInput

    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise InvalidInput(f"--param {pair!r} is not NAME=VALUE")
        try:
            found[name.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise InvalidInput(f"--param {pair!r}: the value does not parse; quote it") from None
    return found


def dag_tree(title: str, steps: Sequence[tuple[str, str, list[str], str]]) -> Tree:
    """The DAG as a tree: each step under the last of its upstream steps, so a chain reads
    top-down; a step with several inputs names the others."""
    tree = Tree(Text(title, style="bold"))
    branches: dict[str, Tree] = {}
    for name, status, upstream, note in steps:
        mark, style = STYLES.get(status, ("?", ""))
        label = Text.assemble((f"{mark} ", style), (name, "bold"), (f"  {status}", style))
        if len(upstream) > 1:
            label.append(f"  ← {', '.join(upstream[:-1])}", style="dim")
        if note:
            label.append(f"  {note}", style="dim")
        parent = branches.get(upstream[-1]) if upstream else None
        branches[name] = (parent or tree).add(label)
    return tree


@contextmanager
def _live(title: str, upstream: dict[str, list[str]]) -> Iterator[Any]:
    """A live DAG on stderr while steps change state (only on a terminal)."""
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    order: list[str] = []
    state: dict[str, str] = {}
    started: dict[str, float] = {}

    def render() -> Tree:
        now = time.monotonic()
        rows = []
        for name in order:
            status = state[name]
            note = f"{now - started[name]:.1f}s" if status == "running" and name in started else ""
            rows.append((name, status, upstream.get(name, []), note))
        return dag_tree(title, rows)

    live = Live(render(), console=console, transient=True, refresh_per_second=8)

    def on_event(name: str, status: str) -> None:
        if name not in state:
            order.append(name)
        state[name] = status
        if status == "running":
            started[name] = time.monotonic()
        live.update(render(), refresh=True)  # every change drawn, however quick

    if not console.is_terminal:
        yield lambda _name, _status: None
        return
    with live:
        yield on_event


def _report(execution: PipelineExecution, as_json: bool) -> None:
    if as_json:
        _render.emit_json(execution.to_dict())
    else:
        _render.console().print(details(execution))
    if execution.status != "succeeded":
        raise typer.Exit(1)


def details(execution: PipelineExecution) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("execution", execution.id)
    head.add_row("pipeline", f"{execution.name} ({execution.pipeline})")
    head.add_row("status", Text(execution.status, style=EXECUTION_STYLES.get(execution.status, "")))
    if execution.reason:
        head.add_row("reason", execution.reason)
    head.add_row("params", ", ".join(f"{k}={v!r}" for k, v in execution.params.items()) or "—")
    head.add_row("executor", execution.executor)
    head.add_row("run", execution.run_id or "—")
    head.add_row("started", _render.format_time(execution.start_time))
    head.add_row("duration", _render.format_duration(execution.start_time, execution.end_time))
    if execution.attempts > 1:
        head.add_row("attempts", f"{execution.attempts} (resumed {execution.attempts - 1}x)")
    tree = dag_tree(
        "steps",
        [(s.name, s.status, s.upstream, _step_note(s)) for s in execution.steps],
    )
    parts: list[Any] = [head, tree]
    for s in execution.steps:
        if s.error and s.status in ("failed", "stopped"):
            first = s.error.strip().splitlines()[0]
            parts.append(Text.assemble((f"{s.name}: ", "bold red"), first))
    if execution.outputs:
        outputs = Table.grid(padding=(0, 2))
        outputs.add_column(style="bold")
        outputs.add_column()
        for name, out in execution.outputs.items():
            ref = out.get("ref")
            outputs.add_row(name, _describe_ref(ref) if ref else "not produced")
        parts.append(Text("outputs", style="bold"))
        parts.append(outputs)
    return Group(*parts)


def _step_note(step: StepExecution) -> str:
    bits = []
    if step.start_time and step.end_time and step.status == "succeeded":
        bits.append(_render.format_duration(step.start_time, step.end_time))
    if step.attempts > 1:
        bits.append(f"{step.attempts} attempts")
    if step.run_id:
        bits.append(f"run {step.run_id[:12]}")
    return ", ".join(bits)


def _describe_ref(ref: dict[str, Any]) -> str:
    kind = ref["kind"]
    if kind == "dataset":
        return f"dataset {ref['ref']}"
    if kind == "model":
        return f"model {ref['uri']}"
    if kind == "memory":
        return "in memory only (not stored)"
    return f"{kind} sha256:{ref['digest'][:16]}…"
