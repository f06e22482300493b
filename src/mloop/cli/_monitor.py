"""`mloop monitor run | watch | show`: monitoring jobs and their alerts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app (placeholder until they land)."""
    del app
