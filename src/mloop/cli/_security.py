"""`mloop security audit`: the MITRE ATLAS coverage audit.

Exit 0 when every ``--require``d control is on, 1 when one is not (named on stderr), 2 on
bad input (an unknown mitigation or deployment).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.security._atlas import AuditReport, ControlState

MISSING = 1
_STYLE = {"on": "green", "partial": "yellow", "off": "red", "planned": "cyan", "n/a": "dim"}

security_app = typer.Typer(
    name="security",
    help="Security posture: which MITRE ATLAS mitigations are on.",
    no_args_is_help=True,
)


@security_app.command("audit")
def audit(
    deployment: Annotated[
        str | None,
        typer.Argument(
            help="Deployment (or models:/ URI) to audit with the registry (default: the "
            "registry only).",
            metavar="DEPLOYMENT",
            show_default=False,
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            help="Mitigations whose control must be on, e.g. M0004,M0019 (repeatable); "
            "exit 1 when one is not.",
            metavar="IDS",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every ATLAS mitigation (AML.M0000–M0019), mloop's control for it, and whether
    it is on for the registry and the deployment."""
    from mloop.security import audit as run_audit

    report = run_audit(deployment, require=require or ())
    if as_json:
        _render.emit_json(report.to_dict())
    else:
        _print(report)
    missing = report.missing
    if missing:
        sys.stdout.flush()
        reasons = "; ".join(f"{m} is {report.row(m).effective.state}: "
                            f"{report.row(m).effective.why}" for m in missing)  # fmt: skip
        sys.stderr.write(f"required controls are not on: {reasons}\n")
        raise typer.Exit(MISSING)


def _cell(state: ControlState | None) -> Text:
    if state is None:
        return Text("")
    return Text.assemble((state.state, f"bold {_STYLE[state.state]}"), "\n", (state.why, "dim"))


def _print(report: AuditReport) -> None:
    out = _render.console()
    title = "MITRE ATLAS mitigations"
    if report.deployment is not None:
        title += f" — registry and deployment {report.deployment} (revision {report.revision})"
    table = _render._table(title)
    table.add_column("ID", no_wrap=True)
    table.add_column("Mitigation", overflow="fold", ratio=2)
    table.add_column("mloop control", overflow="fold", ratio=4)
    table.add_column("Registry", overflow="fold", ratio=3)
    if report.deployment is not None:
        table.add_column(Text(report.deployment), overflow="fold", ratio=3)
    for row in report.rows:
        m = row.mitigation
        required = m.id in report.required
        cells = [
            Text(m.id.removeprefix("AML."), style="bold" if required else ""),
            Text(m.name),
            Text(m.control),
            _cell(row.registry),
        ]
        if report.deployment is not None:
            cells.append(_cell(row.deployment))
        table.add_row(*cells)
    out.print(table)
    if report.required:
        marks = [
            Text.assemble(
                (m.removeprefix("AML."), "bold"),
                (
                    " ✓" if m not in report.missing else " ✗",
                    "green" if m not in report.missing else "red",
                ),
            )
            for m in report.required
        ]
        out.print(Text("Required: ").append(Text("  ").join(marks)))


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
    app.add_typer(security_app)
