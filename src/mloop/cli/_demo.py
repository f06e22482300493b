"""``mloop demo``: train and track a few models, then show how they compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

import mloop
from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.tracking import Run

SHOWN_METRICS = ("f1", "accuracy", "roc_auc", "cv_f1_mean")


def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="Train fewer, smaller models (seconds, for tests).")
    ] = False,
) -> None:
    """Train a few scikit-learn models on a bundled data set and track them in the store."""
    from mloop.config import get_settings
    from mloop.demo import run_demo

    out = _render.console()
    runs = run_demo(out, quick=quick)
    out.print(_ranking(runs))
    out.print(
        Text.assemble(
            ("Runs are stored in ", ""),
            (mloop.get_tracking_uri(), "bold"),
            ("\nArtifacts are stored in ", ""),
            (get_settings().resolved_artifact_uri, "bold"),
        )
    )
    if runs:
        best = runs[0].info.run_id
        out.print("\nNext:")
        out.print(Text(f"  mloop runs show {best}"), soft_wrap=True)
        if len(runs) > 1:
            out.print(Text(f"  mloop runs compare {best} {runs[1].info.run_id}"), soft_wrap=True)
        out.print(
            Text("  mloop runs list --experiment demo --order-by 'metrics.f1 DESC'"), soft_wrap=True
        )


def _ranking(runs: list[Run]) -> Table:
    table = Table(
        title="Demo runs, best F1 first",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("#", justify="right")
    table.add_column("Run", no_wrap=True)
    for key in SHOWN_METRICS:
        table.add_column(key, justify="right")
    table.add_column("Duration", justify="right")
    for rank, run in enumerate(runs, start=1):
        table.add_row(
            str(rank),
            Text(run.info.run_name or "", style="bold green" if rank == 1 else ""),
            *[_score(run.data.metrics.get(key)) for key in SHOWN_METRICS],
            _render.format_duration(run.info.start_time, run.info.end_time),
        )
    return table


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
