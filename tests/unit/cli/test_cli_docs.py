"""docs/cli.md lists every command the `mloop` app has: a new command cannot land unlisted."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from mloop.cli._app import app

CLI_DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def test_the_overview_in_docs_lists_every_top_level_command() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    overview = CLI_DOC.read_text().split("```", 2)[1]
    listed: set[str] = set()
    for line in overview.splitlines():
        if line.startswith("  ") and line.strip():
            usage = re.split(r"\s{2,}", line.strip())[0]  # before the description column
            listed.update(re.findall(r"[a-z][a-z-]*", usage))
    missing = sorted(set(commands) - listed)
    assert not missing, f"add these commands to the overview in docs/cli.md: {missing}"
    assert len(commands) > 20  # the app's commands were found at all
