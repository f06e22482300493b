"""`mloop deploy`: create, change, show and roll back deployments.

A deployment is named and revisioned in the metadata store; ``mloop serve NAME`` serves its
current revision and follows changes live. The configured user (``MLOOP_USER``) acts and
is named in the audit log. Members are written ``NAME:VERSION`` (``iris:3``) or
``NAME@ALIAS`` (``iris@champion``, resolved to a version when the revision is stored).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.serving._spec import Deployment, DeploymentSpec, Member

deploy_app = typer.Typer(
    name="deploy",
    help="Deployments: which model versions serve under a name, with canaries, shadows and "
    "guards; every change is a revision you can roll back.",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Deployment name.", show_default=False)]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Primary model version, NAME:VERSION or NAME@ALIAS (repeat with --combine for an "
        "ensemble).",
        show_default=False,
    ),
]
CanaryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--canary",
        help="Canary with its traffic share in percent, e.g. iris:4=10 (repeatable).",
        show_default=False,
    ),
]
ShadowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shadow",
        help="Shadow that gets a copy of every request, never answering (repeatable).",
        show_default=False,
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="deployment.yaml (or .json) with the whole spec.", show_default=False
    ),
]
GuardOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--guard",
        help="Guard setting KEY=VALUE, e.g. output=label, top_k=3, rate_limit_per_key=10:20, "
        "atypical=reject, auth=on (repeatable).",
        show_default=False,
    ),
]
CombineOpt = Annotated[
    str | None,
    typer.Option("--combine", help="Ensemble of the primaries: vote or mean.", show_default=False),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why, kept with the revision.", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
    app.add_typer(deploy_app)


# -- commands ---------------------------------------------------------------------------------


@deploy_app.command("create")
def create(
    name: NameArg,
    model: ModelOpt = None,
    canary: CanaryOpt = None,
    shadow: ShadowOpt = None,
    file: FileOpt = None,
    guard: GuardOpt = None,
    combine: CombineOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a deployment (revision 1) from --model [--canary] [--shadow] or --file."""
    from mloop.serving._deployments import create_deployment

    if file is None and not model:
        raise InvalidInput(
            "give the primary with --model NAME:VERSION (e.g. --model iris:3), or the whole "
            "spec with --file deployment.yaml"
        )
    spec = _spec_from_options(name, None, model, canary, shadow, file, guard, combine)
    _done(create_deployment(name, spec, reason=reason), "Created", as_json)


@deploy_app.command("update")
def update(
    name: NameArg,
    model: ModelOpt = None,
    canary: CanaryOpt = None,
    shadow: ShadowOpt = None,
    file: FileOpt = None,
    guard: GuardOpt = None,
    combine: CombineOpt = None,
    no_canary: Annotated[
        bool, typer.Option("--no-canary", help="Remove the canaries (e.g. after promoting).")
    ] = False,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Remove the shadows.")] = False,
    reason: ReasonOpt = None,
    expect_revision: Annotated[
        int | None,
        typer.Option(
            "--expect-revision",
            help="Refuse if the deployment is no longer at this revision.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a deployment: a new revision. --file replaces the whole spec; otherwise each
    of --model, --canary, --shadow replaces that role's members and --guard sets guards,
    keeping the rest of the current revision."""
    from mloop.serving._deployments import get_deployment, update_deployment

    if no_canary and canary:
        raise InvalidInput("give --canary or --no-canary, not both")
    if no_shadow and shadow:
        raise InvalidInput("give --shadow or --no-shadow, not both")
    if file is not None and (no_canary or no_shadow):
        raise InvalidInput("--file replaces the whole spec; leave out --no-canary/--no-shadow")
    changes = (model, canary, shadow, file, guard, combine, no_canary or None, no_shadow or None)
    if all(c is None or c == [] for c in changes):
        raise InvalidInput(
            "nothing to change; give --model, --canary, --shadow, --guard, --combine, "
            "--no-canary, --no-shadow or --file"
        )
    current = get_deployment(name)
    spec = _spec_from_options(
        name,
        None if file is not None else current.spec,
        model,
        [] if no_canary else canary,
        [] if no_shadow else shadow,
        file,
        guard,
        combine,
    )
    updated = update_deployment(name, spec, reason=reason, expected_revision=expect_revision)
    if updated.revision == current.revision and not as_json:
        _render.console().print(
            Text.assemble(
                (name, "bold"),
                f" is at revision {updated.revision} with that spec already; nothing changed",
            )
        )
        return
    _done(updated, "Updated", as_json)


@deploy_app.command("show")
def show(
    name: NameArg,
    revision: Annotated[
        int | None,
        typer.Option("--revision", "-r", help="An earlier revision.", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a deployment's current (or an earlier) revision: members, traffic and guards."""
    from mloop.serving._deployments import get_deployment

    deployment = get_deployment(name, revision=revision)
    if as_json:
        _render.emit_json(_to_json(deployment))
        return
    out = _render.console()
    out.print(_overview(deployment))
    out.print(_members_table(deployment.spec))
    out.print(_guards_table(deployment.spec))


@deploy_app.command("list")
def list_all(as_json: JsonFlag = False) -> None:
    """List deployments at their current revision."""
    from mloop.serving._deployments import list_deployments

    deployments = list_deployments()
    if as_json:
        _render.emit_json([_to_json(d) for d in deployments])
        return
    out = _render.console()
    if not deployments:
        out.print("No deployments yet; `mloop deploy create NAME --model NAME:VERSION`.")
        return
    table = _render._table()
    table.add_column("Name", overflow="fold")
    table.add_column("Revision", justify="right")
    table.add_column("Members", overflow="fold")
    table.add_column("Updated", no_wrap=True)
    table.add_column("By", overflow="fold")
    for d in deployments:
        table.add_row(
            Text(d.name, style="bold"),
            str(d.revision),
            Text(_summary(d.spec)),
            _render.format_when(d.created_time),
            Text(d.created_by),
        )
    out.print(table)


@deploy_app.command("history")
def history(name: NameArg, as_json: JsonFlag = False) -> None:
    """Every revision of a deployment, oldest first; the last one is current."""
    from mloop.serving._deployments import deployment_history

    revisions = deployment_history(name)
    if as_json:
        _render.emit_json([_to_json(d) for d in revisions])
        return
    table = _render._table(f"Deployment {name}")
    table.add_column("Rev", justify="right")
    table.add_column("Created", no_wrap=True)
    table.add_column("By", overflow="fold")
    table.add_column("Members", overflow="fold")
    table.add_column("Reason", overflow="fold")
    for d in revisions:
        current = d is revisions[-1]
        table.add_row(
            Text(f"{d.revision}{' *' if current else ''}", style="bold" if current else ""),
            _render.format_time(d.created_time),
            Text(d.created_by),
            Text(_summary(d.spec)),
            Text(d.reason or ""),
        )
    _render.console().print(table)


@deploy_app.command("rollback")
def rollback(
    name: NameArg,
    to: Annotated[
        int | None,
        typer.Option(
            "--to", help="Revision to return to (default: the previous one).", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Return to an earlier revision's spec, as a new revision (history is kept)."""
    from mloop.serving._deployments import rollback_deployment

    _done(rollback_deployment(name, to_revision=to), "Rolled back", as_json)


# -- building specs from options --------------------------------------------------------------


def _spec_from_options(
    name: str,
    base: DeploymentSpec | None,
    model: list[str] | None,
    canary: list[str] | None,
    shadow: list[str] | None,
    file: Path | None,
    guard: list[str] | None,
    combine: str | None,
) -> dict[str, Any]:
    from mloop.serving._spec import DeploymentSpec, edit_spec, guard_setting, read_spec_file

    guards = dict(guard_setting(g) for g in guard or ())
    if file is not None:
        if model or canary or shadow:
            raise InvalidInput(
                "give --file or --model/--canary/--shadow, not both: the file holds the whole "
                "spec (--guard may still override its guards)"
            )
        named, data = read_spec_file(file)
        if named is not None and named != name:
            raise InvalidInput(
                f"{file.name} is for deployment {named!r}, not {name!r}; fix its name: or the "
                "command line"
            )
        if guards:
            given = data.get("guards") or {}
            if not isinstance(given, dict):
                raise InvalidInput(f"{file.name}: guards: must be a mapping")
            data["guards"] = {**given, **guards}
        if combine is not None:
            data["combine"] = combine
        return data
    return edit_spec(
        base if isinstance(base, DeploymentSpec) else None,
        primaries=model or None,
        canaries=None if canary is None else [_canary(c) for c in canary],
        shadows=shadow,
        guards=guards,
        combine=combine,
    )


def _canary(text: str) -> tuple[str, float]:
    ref, sep, share = text.rpartition("=")
    try:
        weight = float(share)
    except ValueError:
        weight = math.nan
    if not sep or not ref or not math.isfinite(weight):
        raise InvalidInput(
            f"canary {text!r} is not NAME:VERSION=PERCENT; e.g. --canary iris:4=10 sends 10% "
            "of traffic to version 4"
        )
    return ref, weight


# -- rendering --------------------------------------------------------------------------------


def _to_json(deployment: Deployment) -> dict[str, Any]:
    return {**deployment.model_dump(mode="json"), "spec": deployment.spec.to_json()}


def _done(deployment: Deployment, verb: str, as_json: bool) -> None:
    if as_json:
        _render.emit_json(_to_json(deployment))
        return
    _render.console().print(
        Text.assemble(
            f"{verb} ",
            (deployment.name, "bold"),
            f" revision {deployment.revision}: ",
            _summary(deployment.spec),
        )
    )


def _traffic(spec: DeploymentSpec, member: Member) -> str:
    if member.role == "shadow":
        return "copy"
    if spec.combine != "none":
        return f"100% ({spec.combine})"
    if member.role == "canary":
        return f"{member.weight:g}%"
    return f"{100 - sum(c.weight for c in spec.canaries):g}%"


def _summary(spec: DeploymentSpec) -> str:
    parts = []
    for m in spec.members:
        role = "" if m.role == "primary" else f" {m.role}"
        parts.append(f"{m.ref}{role} ({_traffic(spec, m)})")
    return ", ".join(parts)


def _overview(deployment: Deployment) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Deployment", Text(deployment.name, style="bold"))
    grid.add_row("Revision", str(deployment.revision))
    grid.add_row("Created", _render.format_time(deployment.created_time))
    grid.add_row("By", Text(deployment.created_by))
    if deployment.reason:
        grid.add_row("Reason", Text(deployment.reason))
    if deployment.spec.combine != "none":
        grid.add_row("Combine", deployment.spec.combine)
    if deployment.spec.preprocessing:
        grid.add_row("Preprocessing", Text(deployment.spec.preprocessing))
    return grid


def _members_table(spec: DeploymentSpec) -> Table:
    table = _render._table("Members")
    table.add_column("Role", no_wrap=True)
    table.add_column("Model", overflow="fold")
    table.add_column("Version", justify="right")
    table.add_column("Traffic", justify="right")
    for m in spec.members:
        table.add_row(m.role, Text(m.model), str(m.version), _traffic(spec, m))
    return table


def _guards_table(spec: DeploymentSpec) -> Table:
    from mloop.serving._spec import Guards

    defaults = Guards().model_dump()
    table = _render._table("Guards")
    table.add_column("Guard", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for key, value in spec.guards.model_dump().items():
        shown = "none" if value is None else value
        if isinstance(value, dict):
            shown = f"{value['rate']:g}/s, burst {value['burst']}"
        style = "dim" if value == defaults[key] else "bold"
        table.add_row(key, Text(str(shown), style=style))
    return table
