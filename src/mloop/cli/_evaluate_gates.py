"""`mloop gates`: named gates (config as code), verdicts, and required blessings.

``save``/``list``/``show``/``delete`` manage gates stored in the metadata store;
``require`` sets which aliases of a registered model only a blessed version may take;
``blessing`` shows (and exits 1 unless blessed) the latest verdict on a version, so a
deploy script can check it; ``history`` lists evaluations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render

REFUSED = 1

gates_app = typer.Typer(
    name="gates",
    help="Evaluation gates: store named gates, see verdicts, require a blessing for an alias.",
    no_args_is_help=True,
    add_completion=False,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@gates_app.command("save")
def save(
    name: Annotated[str, typer.Argument(help="Gate name.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="The gate's YAML file.", show_default=False)],
) -> None:
    """Store (or replace) a named gate from YAML."""
    from mloop.evaluation import GateSpec, save_gate

    save_gate(name, GateSpec.from_yaml(file))
    _render.console().print(Text.assemble("Saved gate ", (name, "bold")))


@gates_app.command("list")
def list_all(as_json: JsonFlag = False) -> None:
    """List the stored gates."""
    from mloop.evaluation import list_gates

    gates = list_gates()
    if as_json:
        _render.emit_json({name: spec.to_json() for name, spec in gates.items()})
        return
    out = _render.console()
    if not gates:
        out.print("No stored gates; `mloop gates save NAME gate.yaml` stores one.")
        return
    table = Table()
    table.add_column("gate")
    table.add_column("rules")
    for name, spec in gates.items():
        table.add_row(name, ", ".join(spec.to_json()) or "(none)")
    out.print(table)


@gates_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Gate name.", show_default=False)]) -> None:
    """Print a stored gate as YAML."""
    from mloop.evaluation import get_gate

    typer.echo(get_gate(name).to_yaml(), nl=False)


@gates_app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Gate name.", show_default=False)]) -> None:
    """Delete a stored gate (refused while a model's blessing requirement names it)."""
    from mloop.evaluation import delete_gate

    delete_gate(name)
    _render.console().print(Text.assemble("Deleted gate ", (name, "bold")))


@gates_app.command("require")
def require(
    model: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    aliases: Annotated[
        list[str] | None,
        typer.Option("--alias", help="Alias only a blessed version may take; repeat ('*' = any)."),
    ] = None,
    gate: Annotated[
        str | None, typer.Option("--gate", help="Only a blessing by this stored gate counts.")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the requirement.")] = False,
) -> None:
    """Require a blessing before an alias (default: champion) moves to a version."""
    from mloop.evaluation import require_blessing

    found = require_blessing(model, [] if off else (aliases or ["champion"]), gate=gate)
    out = _render.console()
    if found is None:
        out.print(f"{model}: no blessing required any more")
        return
    by = f" by gate {found.gate_name}" if found.gate_name else ""
    out.print(f"{model}: @{', @'.join(found.aliases)} need a blessed version{by}")


@gates_app.command("blessing")
def blessing(
    model: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    version: Annotated[str, typer.Argument(help="Version number.", show_default=False)],
    gate: Annotated[
        str | None, typer.Option("--gate", help="Only verdicts of this stored gate.")
    ] = None,
    as_json: JsonFlag = False,
) -> int:
    """The latest gated verdict on a model version (exit 1 when refused or none)."""
    from dataclasses import asdict

    from mloop.evaluation import get_blessing

    found = get_blessing(model, version, gate=gate)
    if as_json:
        _render.emit_json(None if found is None else asdict(found))
    elif found is None:
        _render.console().print(f"{model} version {version}: no gated evaluation yet")
    else:
        verdict = (
            Text("BLESSED", style="bold green")
            if found.blessed
            else Text("REFUSED", style="bold red")
        )
        out = _render.console()
        out.print(
            Text.assemble(
                verdict,
                f"  {model} version {version} by {found.created_by} at "
                f"{_render.format_time(found.creation_time)} (evaluation {found.evaluation_id})",
            )
        )
        for reason in found.reasons:
            out.print(Text.assemble(("  ✗ ", "red"), reason))
    return 0 if found is not None and found.blessed else REFUSED


@gates_app.command("history")
def history(
    model: Annotated[
        str | None, typer.Argument(help="Registered model name.", show_default=False)
    ] = None,
    version: Annotated[
        int | None, typer.Argument(help="Version number.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Evaluations, newest first (of one model or version)."""
    from mloop.evaluation import list_evaluations

    found = list_evaluations(model, version, limit=limit)
    if as_json:
        _render.emit_json([{k: v for k, v in e.__dict__.items() if k != "report"} for e in found])
        return
    table = Table()
    for column in ("when", "evaluation", "candidate", "baseline", "data", "verdict"):
        table.add_column(column)
    for e in found:
        verdict = {
            True: Text("blessed", "green"),
            False: Text("refused", "red"),
            None: Text("no gate", "dim"),
        }[e.blessed]
        table.add_row(
            _render.format_time(e.creation_time),
            e.id,
            e.candidate,
            e.baseline or "–",
            e.data or "–",
            verdict,
        )
    _render.console().print(table)
