"""``mloop demo``: the whole loop end to end, narrated, then a summary and where to look."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from rich.console import Console

    from mloop.demo import DemoResult


def demo(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Folder for the demo's stores, key, project and reports "
            "(default: a new temporary folder, kept afterwards).",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Less data and traffic: the same loop, sooner."),
    ] = False,
) -> None:
    """Run the whole loop end to end on the embedded stores, narrated (docs/demo.md).

    Data, training, gate, signing, deploy, traffic, drift, alerts, retraining, rollout, lineage.
    """
    from mloop.demo import run_demo

    out = _render.console()
    started = time.monotonic()
    result = run_demo(out, home=home, quick=quick)
    _summary(out, result, time.monotonic() - started)


def _summary(out: Console, result: DemoResult, seconds: float) -> None:
    from rich.rule import Rule

    out.print()
    out.print(Rule(f"[bold]Done in {seconds:.0f} s", align="left", style="green"))
    table = Table(box=box.SIMPLE, show_header=False, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("data versions", ", ".join(result.datasets))
    table.add_row("champion", result.champion or "—")
    drift = "detected" if result.drift_detected else "not detected"
    if result.drifted_features:
        drift += f" ({', '.join(result.drifted_features)})"
    table.add_row("drift", drift)
    if result.alerts:
        table.add_row("alerts", "\n".join(result.alerts))
    gate = {True: "passed", False: "refused", None: "—"}[result.gate_passed]
    table.add_row("retrained model gate", gate)
    table.add_row("rollout", result.rollout_outcome or "—")
    if result.lineage is not None:
        lineage = result.lineage
        code = lineage.commit or "no commit recorded"
        table.add_row(
            "lineage",
            f"{lineage.request_id} → {lineage.deployment} rev {lineage.revision} → "
            f"{lineage.model}:{lineage.version} → run {lineage.run_id} → "
            f"{', '.join(d.ref for d in lineage.datasets)} + commit {code[:12]}",
        )
    out.print(table)
    if result.reports:
        out.print("[bold]Reports[/]")
        for name, path in result.reports.items():
            out.print(Text(f"  {name}: {path}"), soft_wrap=True)
    env = f"MLOOP_HOME={result.home}"
    out.print("\n[bold]Look around[/] (everything is in " + str(result.home) + ")")
    for command in (
        "mloop runs list --experiment credit-demo --order-by 'metrics.roc_auc DESC'",
        "mloop data diff credit-applications@1 credit-applications@2",
        f"mloop monitor show {result.deployment}",
        "mloop triggers history",
        f"mloop deploy history {result.deployment}",
        f"mloop predictions export {result.deployment} --since 1h",
    ):
        out.print(Text(f"  {env} {command}"), soft_wrap=True)
