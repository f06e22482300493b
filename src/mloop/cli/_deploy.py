"""`mloop deploy`: create, change, show and roll back deployments."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
