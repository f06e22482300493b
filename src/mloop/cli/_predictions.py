"""`mloop predictions`, `mloop feedback` and `mloop review`: the prediction log, ground-truth labels and the human review queue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
