"""The ``mloop`` command line (Typer + Rich). Nothing in mloop imports it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mloop`` with ``argv`` (default: the process's arguments); return the exit code.

    ``mloop serve`` is run without building the rest of the command tree: importing and
    inspecting every other command costs a quarter of a second of a server's cold start."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        from mloop.cli._serve import main as serve_main

        return serve_main(args[1:])
    from mloop.cli._app import main as run_all

    return run_all(argv)


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app, built on first use
        from mloop.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
