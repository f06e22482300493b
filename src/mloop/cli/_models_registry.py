"""``mloop models list | show | versions | alias | approve | archive | policy``: the model
registry from the command line.

The configured user (``MLOOP_USER``, else the login name) acts and is named in the audit
log; approvals need that user to be registered and to hold ``approver`` on the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import models_app
from mloop.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mloop.registry import ModelVersion, RegisteredModel, TrustPolicy

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ModelName = Annotated[str, typer.Argument(help="Registered model name.", show_default=False)]
VersionArg = Annotated[str, typer.Argument(help="Version number, e.g. 3.", show_default=False)]


@models_app.command("list")
def list_models(as_json: JsonFlag = False) -> None:
    """List registered models with their newest version and aliases."""
    from mloop.registry import list_registered_models

    models = list_registered_models()
    if as_json:
        _render.emit_json([m.to_dict() for m in models])
        return
    out = _render.console()
    if not models:
        out.print("No registered models yet; `mloop.log_model(..., registered_model_name=…)`.")
        return
    table = _render._table()
    table.add_column("Name", overflow="fold")
    table.add_column("Latest", justify="right")
    table.add_column("Versions", justify="right")
    table.add_column("Aliases", overflow="fold")
    table.add_column("Updated", no_wrap=True)
    table.add_column("Description", overflow="fold")
    for m in models:
        table.add_row(
            Text(m.name, style="bold"),
            "—" if m.latest_version is None else str(m.latest_version),
            str(m.num_versions),
            Text(_aliases(m.aliases)),
            _render.format_when(m.last_update_time),
            Text(m.description or ""),
        )
    out.print(table)


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"@{alias} → {version}" for alias, version in sorted(aliases.items()))


@models_app.command("show")
def show(name: ModelName, as_json: JsonFlag = False) -> None:
    """Show a registered model: description, tags, aliases, policy and versions."""
    from mloop.registry import get_registered_model, get_trust_policy, list_model_versions

    model = get_registered_model(name)
    policy = get_trust_policy(name)
    versions = list_model_versions(name)
    if as_json:
        _render.emit_json(
            {
                **model.to_dict(),
                "policy": None if policy is None else policy.to_dict(),
                "versions": [v.to_dict() for v in versions],
            }
        )
        return
    _render.console().print(
        Group(_overview(model), _policy_grid(policy), _versions_table(versions))
    )


def _overview(model: RegisteredModel) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Model", Text(model.name))
    grid.add_row("Description", Text(model.description or "—"))
    grid.add_row("Aliases", Text(_aliases(model.aliases) or "—"))
    grid.add_row("Tags", Text(", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())) or "—"))
    grid.add_row("Created", _render.format_time(model.creation_time))
    grid.add_row("Updated", _render.format_time(model.last_update_time))
    return grid


def _policy_grid(policy: TrustPolicy | None) -> Table:
    grid = _render._table("Trust policy" + ("" if policy is not None else ": none"))
    grid.add_column("Requirement")
    grid.add_column("Setting", overflow="fold")
    if policy is None:
        return grid
    keys = policy.key_fingerprints()
    grid.add_row("signature", "required" if policy.require_signature else "no")
    grid.add_row("trusted keys", Text(", ".join(keys) if keys else "—"))
    grid.add_row("clean scan", "required" if policy.require_clean_scan else "no")
    grid.add_row("approvals", str(policy.required_approvals))
    grid.add_row("approver is not uploader", "required" if policy.approver_not_uploader else "no")
    grid.add_row("evaluation", "required" if policy.require_evaluation else "no")
    return grid


def _versions_table(versions: list[ModelVersion]) -> Table:
    table = _render._table(f"Versions ({len(versions)})")
    table.add_column("Version", justify="right")
    table.add_column("Status")
    table.add_column("Aliases")
    table.add_column("Uploader")
    table.add_column("Created", no_wrap=True)
    table.add_column("Run", overflow="fold")
    table.add_column("Training data", overflow="fold")
    table.add_column("Digest", style="dim", no_wrap=True)
    table.add_column("Source", overflow="fold")
    for v in versions:
        table.add_row(
            Text(str(v.version), style="bold"),
            Text(v.status, style="dim" if v.archived else "green"),
            Text(", ".join(f"@{a}" for a in v.aliases)),
            Text(v.uploader),
            _render.format_when(v.creation_time),
            Text(v.run_id or "—"),
            Text(", ".join(v.dataset_versions) or "—"),
            Text(v.package_digest[:12]),
            Text(v.source),
        )
    return table


@models_app.command("versions")
def versions(
    name: ModelName,
    active: Annotated[bool, typer.Option("--active", help="Leave archived versions out.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the versions of a registered model, oldest first."""
    from mloop.registry import list_model_versions

    found = list_model_versions(name, include_archived=not active)
    if as_json:
        _render.emit_json([v.to_dict() for v in found])
        return
    _render.console().print(_versions_table(found))


@models_app.command("alias")
def alias(
    name: ModelName,
    alias_name: Annotated[
        str, typer.Argument(metavar="ALIAS", help="champion, challenger, …", show_default=False)
    ],
    version: Annotated[
        str | None,
        typer.Argument(help="Version to point the alias at.", show_default=False),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
) -> None:
    """Point ALIAS at VERSION (the model's policy must allow it), or remove it."""
    from mloop.registry import delete_alias, set_alias

    out = _render.console()
    if delete:
        if version is not None:
            raise InvalidInput("give either a VERSION to point the alias at, or --delete")
        delete_alias(name, alias_name)
        out.print(Text.assemble("Removed ", (f"{name}@{alias_name}", "bold")))
        return
    if version is None:
        raise InvalidInput(
            f"give the VERSION to point {alias_name} at (`mloop models alias {name} "
            f"{alias_name} 3`), or --delete to remove it"
        )
    moved = set_alias(name, alias_name, version)
    out.print(Text.assemble((f"{name}@{alias_name}", "bold"), f" → version {moved.version}"))


@models_app.command("approve")
def approve(
    name: ModelName,
    version: VersionArg,
    alias_name: Annotated[
        str, typer.Option("--alias", help="The alias this approval is for.", show_default=False)
    ],
    comment: Annotated[
        str | None, typer.Option("--comment", "-m", help="Why it may be promoted.")
    ] = None,
) -> None:
    """Approve moving ALIAS of NAME to VERSION, as the configured user (an approver)."""
    from mloop.registry import approve as approve_version

    given = approve_version(name, version, alias=alias_name, comment=comment)
    _render.console().print(
        Text.assemble(
            (given.approver, "bold"),
            f" approved version {given.version} of ",
            (name, "bold"),
            f" for @{given.alias}",
        )
    )


@models_app.command("archive")
def archive(
    name: ModelName,
    version: VersionArg,
    restore: Annotated[
        bool, typer.Option("--restore", help="Make an archived version active again.")
    ] = False,
) -> None:
    """Archive a version (it stays loadable by number but takes no alias)."""
    from mloop.registry import archive_model_version, restore_model_version

    changed = (restore_model_version if restore else archive_model_version)(name, version)
    verb = "Restored" if restore else "Archived"
    _render.console().print(Text.assemble(f"{verb} version {changed.version} of ", (name, "bold")))


@models_app.command("policy")
def policy(
    name: ModelName,
    require_signature: Annotated[
        bool | None,
        typer.Option(
            "--require-signature/--no-require-signature",
            help="Loading and promotion need a signature from a trusted key.",
            show_default=False,
        ),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key",
            help="A trusted public key (PEM file); repeat for several; replaces the list.",
            show_default=False,
        ),
    ] = None,
    require_clean_scan: Annotated[
        bool | None,
        typer.Option(
            "--require-clean-scan/--no-require-clean-scan",
            help="Promotion needs a clean scan of the package.",
            show_default=False,
        ),
    ] = None,
    approvals: Annotated[
        int | None,
        typer.Option(
            "--approvals", min=0, max=100, help="Approvals a promotion needs.", show_default=False
        ),
    ] = None,
    approver_not_uploader: Annotated[
        bool | None,
        typer.Option(
            "--approver-not-uploader/--uploader-may-approve",
            help="The uploader's own approval does not count (implies at least one).",
            show_default=False,
        ),
    ] = None,
    require_evaluation: Annotated[
        bool | None,
        typer.Option(
            "--require-evaluation/--no-require-evaluation",
            help="Promotion needs a passing evaluation.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the trust policy of NAME, or change the settings given."""
    import dataclasses

    from mloop.registry import TrustPolicy, get_trust_policy, set_trust_policy

    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "require_signature": require_signature,
            "require_clean_scan": require_clean_scan,
            "required_approvals": approvals,
            "approver_not_uploader": approver_not_uploader,
            "require_evaluation": require_evaluation,
        }.items()
        if value is not None
    }
    if trusted_key:
        changes["trusted_keys"] = tuple(_read_key(path) for path in trusted_key)
    current = get_trust_policy(name)
    if changes:
        current = set_trust_policy(name, dataclasses.replace(current or TrustPolicy(), **changes))
    elif current is None:
        from mloop.registry import get_registered_model

        get_registered_model(name)  # a clear NotFound for an unknown model
    if as_json:
        _render.emit_json(None if current is None else current.to_dict())
        return
    _render.console().print(_policy_grid(current))


def _read_key(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotFound(f"trusted key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read trusted key file {path}: {exc}") from None
