"""Command groups that several modules add commands to.

``mloop models`` gathers packaging, scanning, signing and registry commands, and
``mloop keys`` both signing keys and API keys; each area keeps its commands in its own
module (``_models_*.py``, ``_identity.py``) and decorates these shared groups.
"""

from __future__ import annotations

import typer

models_app = typer.Typer(
    name="models",
    help="Package, scan, sign, verify and register models; move aliases through approvals.",
    no_args_is_help=True,
    add_completion=False,
)

keys_app = typer.Typer(
    name="keys",
    help="Signing key pairs for model packages, and API keys for users and services.",
    no_args_is_help=True,
    add_completion=False,
)

users_app = typer.Typer(
    name="users",
    help="Users and service accounts, and the roles they hold.",
    no_args_is_help=True,
    add_completion=False,
)

audit_app = typer.Typer(
    name="audit",
    help="Read and verify the append-only audit log.",
    no_args_is_help=True,
    add_completion=False,
)
