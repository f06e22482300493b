"""``mloop users …``, ``mloop keys create | list | revoke`` and ``mloop audit list | verify``.

These commands act on the metadata store directly, as the configured user: whoever can
open the store holds it whole, so it is the tracking server that checks roles for remote
callers. ``mloop keys create`` prints the new key once, on stdout, so it can be piped into
a secret store; mloop keeps only a salted hash. ``mloop audit verify`` exits 0 when the
chain is whole and 1 when it is broken (the broken entry on stderr).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import audit_app, keys_app, users_app
from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.registry import User

BROKEN = 1

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UserName = Annotated[str, typer.Argument(help="User or service account name.", show_default=False)]
RoleArg = Annotated[
    str,
    typer.Argument(help="viewer, editor, approver, deployer or admin.", show_default=False),
]
ModelScope = Annotated[
    str | None, typer.Option("--model", help="Only on this registered model.", show_default=False)
]
ExperimentScope = Annotated[
    str | None,
    typer.Option("--experiment", help="Only on this experiment (id or name).", show_default=False),
]
DeploymentScope = Annotated[
    str | None,
    typer.Option(
        "--deployment",
        help="Only on this deployment (e.g. viewer --deployment fraud: predict on it).",
        show_default=False,
    ),
]


def _scope(model: str | None, experiment: str | None, deployment: str | None = None) -> str:
    if sum(x is not None for x in (model, experiment, deployment)) > 1:
        raise InvalidInput("give one scope (--model, --experiment or --deployment) alone, not both")
    if deployment is not None:
        return f"deployment:{deployment}"
    if model is not None:
        return f"model:{model}"
    if experiment is not None:
        return f"experiment:{experiment}"
    return "global"


# -- users ------------------------------------------------------------------------------------


@users_app.command("create")
def create_user(
    name: UserName,
    service: Annotated[
        bool, typer.Option("--service", help="A service account (a program), not a person.")
    ] = False,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A role to hold globally (repeatable).", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a user or service account."""
    from mloop.registry import create_user as create

    user = create(
        name, kind="service" if service else "user", roles=[(r, "global") for r in role or []]
    )
    if as_json:
        _render.emit_json(user.to_dict())
        return
    _render.console().print(Text.assemble("Created ", user.kind, " ", (user.name, "bold")))


@users_app.command("list")
def list_users(as_json: JsonFlag = False) -> None:
    """List users and service accounts with the roles they hold."""
    from mloop.registry import list_users as list_all

    users = list_all()
    if as_json:
        _render.emit_json([u.to_dict() for u in users])
        return
    out = _render.console()
    if not users:
        out.print("No users yet; `mloop users create NAME --role admin` adds the first admin.")
        return
    out.print(_users_table(users))


def _users_table(users: list[User]) -> Table:
    table = _render._table()
    table.add_column("Name", overflow="fold")
    table.add_column("Kind")
    table.add_column("Status")
    table.add_column("Roles", overflow="fold")
    table.add_column("Created", no_wrap=True)
    for u in users:
        roles = ", ".join(
            r.role if r.scope == "global" else f"{r.role} ({r.scope})" for r in u.roles
        )
        table.add_row(
            Text(u.name, style="bold"),
            u.kind,
            Text("disabled", style="red") if u.disabled else Text("active", style="green"),
            Text(roles or "—"),
            _render.format_when(u.creation_time),
        )
    return table


@users_app.command("disable")
def disable(name: UserName) -> None:
    """Disable a user: its API keys stop working and its approvals stop counting."""
    from mloop.registry import disable_user

    disable_user(name)
    _render.console().print(Text.assemble("Disabled ", (name, "bold")))


@users_app.command("enable")
def enable(name: UserName) -> None:
    """Enable a disabled user again."""
    from mloop.registry import enable_user

    enable_user(name)
    _render.console().print(Text.assemble("Enabled ", (name, "bold")))


@users_app.command("grant")
def grant(
    name: UserName,
    role: RoleArg,
    model: ModelScope = None,
    experiment: ExperimentScope = None,
    deployment: DeploymentScope = None,
) -> None:
    """Let a user hold ROLE globally, or only on one model, experiment or deployment."""
    from mloop.registry import grant_role

    scope = _scope(model, experiment, deployment)
    grant_role(name, role, scope)
    _render.console().print(Text.assemble((name, "bold"), f" holds {role} ({scope})"))


@users_app.command("revoke")
def revoke(
    name: UserName,
    role: RoleArg,
    model: ModelScope = None,
    experiment: ExperimentScope = None,
    deployment: DeploymentScope = None,
) -> None:
    """Take a role away (give the same scope it was granted with)."""
    from mloop.registry import revoke_role

    scope = _scope(model, experiment, deployment)
    revoke_role(name, role, scope)
    _render.console().print(Text.assemble((name, "bold"), f" no longer holds {role} ({scope})"))


# -- API keys ---------------------------------------------------------------------------------


@keys_app.command("create")
def create_key(
    user: UserName,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What the key is for.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key for USER and print it once (mloop keeps only a salted hash)."""
    from mloop.registry import create_api_key

    new = create_api_key(user, description=description)
    if as_json:
        _render.emit_json(new.to_dict())
        return
    sys.stdout.write(new.key + "\n")
    sys.stdout.flush()
    sys.stderr.write(
        f"API key {new.info.key_id} for {user}: store it now, it cannot be shown again\n"
    )


@keys_app.command("list")
def list_keys(
    user: Annotated[
        str | None, typer.Option("--user", help="Only this user's keys.", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List API keys (ids, owners, use; never the keys themselves)."""
    from mloop.registry import list_api_keys

    keys = list_api_keys(user)
    if as_json:
        _render.emit_json([k.to_dict() for k in keys])
        return
    table = _render._table()
    table.add_column("Key id", no_wrap=True)
    table.add_column("User", overflow="fold")
    table.add_column("Status")
    table.add_column("Created", no_wrap=True)
    table.add_column("Last used", no_wrap=True)
    table.add_column("Description", overflow="fold")
    for k in keys:
        table.add_row(
            Text(k.key_id, style="bold"),
            Text(k.user),
            Text("revoked", style="red") if k.revoked else Text("active", style="green"),
            _render.format_when(k.creation_time),
            _render.format_when(k.last_used_time),
            Text(k.description or ""),
        )
    _render.console().print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key id (`mloop keys list`).")],
) -> None:
    """Revoke an API key for good."""
    from mloop.registry import revoke_api_key

    info = revoke_api_key(key_id)
    _render.console().print(
        Text.assemble("Revoked API key ", (info.key_id, "bold"), f" of {info.user}")
    )


# -- audit ------------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="model:NAME (with its versions and aliases), user:NAME, api_key:ID, …",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only this actor's changes.", show_default=False)
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Only this action, e.g. alias.set.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N entries.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List audit log entries, newest first."""
    from mloop.registry import list_audit_log

    entries = list_audit_log(target=target, actor=actor, action=action, limit=limit)
    if as_json:
        _render.emit_json([e.to_dict() for e in entries])
        return
    table = _render._table()
    table.add_column("Seq", justify="right")
    table.add_column("When", no_wrap=True)
    table.add_column("Actor", overflow="fold")
    table.add_column("Action", no_wrap=True)
    table.add_column("Target", overflow="fold")
    table.add_column("Change", overflow="fold")
    for e in entries:
        table.add_row(
            str(e.seq),
            _render.format_time(e.at),
            Text(e.actor),
            Text(e.action, style="bold"),
            Text(e.target),
            Text(_change(e.before, e.after)),
        )
    _render.console().print(table)


def _change(before: object, after: object) -> str:
    import json

    def short(value: object) -> str:
        return "—" if value is None else json.dumps(value, sort_keys=True)

    return f"{short(before)} → {short(after)}"


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="SEQ:HASH of an entry recorded earlier (from a previous verify): it must "
            "still be there, unchanged.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the audit log's hash chain; exit 1 naming the first entry that was changed or
    removed."""
    from mloop.registry import verify_audit_log

    result = verify_audit_log(anchor=_parse_anchor(anchor) if anchor else None)
    if as_json:
        _render.emit_json(result.to_dict())
    if not result.ok:
        sys.stdout.flush()
        sys.stderr.write(f"audit log broken at entry {result.broken_seq}: {result.problem}\n")
        raise typer.Exit(BROKEN)
    if as_json:
        return
    out = _render.console()
    if result.head_seq is None:
        out.print("The audit log is empty.")
        return
    out.print(
        Text.assemble(
            ("Audit log intact", "green"),
            f": {result.checked} entries; head {result.head_seq}:{result.head_hash}",
        ),
        soft_wrap=True,
    )


def _parse_anchor(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise InvalidInput(
            f"anchor {text!r} is not valid; use SEQ:HASH as `mloop audit verify` prints it"
        )
    return int(seq), digest.lower()
