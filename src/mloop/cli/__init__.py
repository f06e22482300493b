"""The ``mloop`` command line (Typer + Rich). Nothing in mloop imports it."""

from mloop.cli._app import app, main

__all__ = ["app", "main"]
