"""``mloop experiments …``: what experiments exist."""

from __future__ import annotations

from typing import Annotated

import typer

import mloop
from mloop.cli import _render

experiments_app = typer.Typer(
    name="experiments", help="List experiments.", no_args_is_help=True, add_completion=False
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@experiments_app.command("list")
def list_experiments(
    as_json: JsonFlag = False,
    include_deleted: Annotated[
        bool, typer.Option("--all", help="Include deleted experiments.")
    ] = False,
) -> None:
    """List experiments with their ids and where their artifacts go."""
    experiments = mloop.MloopClient().search_experiments(
        mloop.ALL if include_deleted else mloop.ACTIVE_ONLY
    )
    if as_json:
        _render.emit_json([e.to_dict() for e in experiments])
        return
    out = _render.console()
    if not experiments:
        out.print("No experiments yet: log a run with mloop.start_run(), or try `mloop demo`.")
        return
    out.print(_render.experiments_table(experiments))
