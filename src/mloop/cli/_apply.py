"""`mloop apply -f`, `mloop export` and `mloop schema`: configuration as code.

The configured user (``MLOOP_USER``) acts, as with ``mloop deploy``, and is named in the
audit log of every change. Errors (every bad document, by file, line and field) are one
line on stderr and exit code 2; nothing is applied then.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.iac import ApplyPlan, Change

_STYLE = {"create": "green", "update": "yellow", "unchanged": "dim"}
_MARK = {"create": "+", "update": "~", "unchanged": "="}
_DONE = {"create": "created", "update": "updated", "unchanged": "unchanged"}


def register(app: typer.Typer) -> None:
    """Add ``apply``, ``export`` and ``schema`` to the root app."""
    app.command("apply")(apply_command)
    app.command("export")(export_command)
    app.command("schema")(schema_command)


def apply_command(
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            help="A YAML file or a folder of them (searched recursively); repeatable.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show what would change against what is live; change nothing."
        ),
    ] = False,
    print_schema: Annotated[
        bool,
        typer.Option("--print-schema", help="Print the JSON Schema of the documents and exit."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Make what is live match YAML documents (deployments, rollout plans, gates, alert
    rules, triggers, pipeline schedules): all are checked first, then only what differs is
    changed."""
    from mloop.errors import InvalidInput
    from mloop.iac import plan, schema_text

    if print_schema:
        sys.stdout.write(schema_text())
        return
    if not file:
        raise InvalidInput("give the documents with -f FILE_OR_DIR (e.g. mloop apply -f deploy/)")
    result = plan(file) if dry_run else _apply_with_progress(file, quiet=as_json)
    if as_json:
        _render.emit_json(result.to_dict())
    else:
        _show(result)


def _apply_with_progress(files: list[Path], *, quiet: bool) -> ApplyPlan:
    from mloop.iac import apply

    console = _render.console()
    columns = (
        TextColumn("applying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(
        *columns, console=console, transient=True, disable=quiet or not console.is_terminal
    ) as bar:
        task = bar.add_task("", total=None)

        def advance(change: Change) -> None:
            bar.update(task, advance=1, description=f"{change.kind}/{change.name}")

        return apply(files, progress=advance)


def _show(result: ApplyPlan) -> None:
    console = _render.console()
    for change in result.changes:
        action = change.action if not result.applied else _DONE[change.action]
        line = Text(f"{_MARK[change.action]} ", style=_STYLE[change.action])
        line.append(f"{change.kind}/{change.name}", style="bold" if change.changed else "dim")
        line.append(f"  {action}", style=_STYLE[change.action])
        line.append(f"  ({change.source}:{change.line})", style="dim")
        console.print(line, soft_wrap=True)
        if change.changed and not result.applied:
            for diff_line in change.diff().splitlines()[2:]:
                style = {"+": "green", "-": "red", "@": "cyan"}.get(diff_line[:1], "")
                console.print(Text("    " + diff_line, style=style), soft_wrap=True)
    verdict = "Applied" if result.applied else "Dry run (nothing changed)"
    console.print(f"{verdict}: {result.summary}", soft_wrap=True)


def export_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write <kinds>/<name>.yaml into (default: stdout).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", help="Only this kind (repeatable), e.g. Deployment.", show_default=False
        ),
    ] = None,
) -> None:
    """Write what is live as YAML documents that `mloop apply` takes back as unchanged."""
    from mloop.iac import export

    exported = export(output, kinds_wanted=kind)
    if output is None:
        sys.stdout.write(exported.text)
        return
    console = _render.console()
    for path in exported.files:
        console.print(Text(str(path)), soft_wrap=True)
    console.print(Text(f"Exported {len(exported.files)} objects to {output}"), soft_wrap=True)


def schema_command() -> None:
    """Print the JSON Schema of apiVersion mloop/v1 documents (docs/schema/mloop-v1.json)."""
    from mloop.iac import schema_text

    sys.stdout.write(schema_text())
