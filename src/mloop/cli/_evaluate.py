"""`mloop evaluate`: a candidate against a baseline, per slice, through a gate; `mloop gates`.

Exit codes make the command a CI step: 0 when the candidate is blessed (or there is no
gate), 1 when the gate refuses it (the reasons are printed), 2 for a bad request.
``mloop gates`` stores named gates (config as code), shows verdicts, and sets which
aliases of a registered model only a blessed version may take.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.evaluation import EvaluationReport

REFUSED = 1
SHOWN_SLICES = 20


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    from mloop.cli._evaluate_gates import gates_app

    app.command("evaluate")(evaluate)
    app.add_typer(gates_app)


def _trigger(pairs: list[str]) -> dict[str, Any] | None:
    """``["age=99", "zip=00000"]`` → ``{"age": 99, "zip": "00000"}`` (values read as YAML
    scalars, so numbers are numbers; quote to keep text)."""
    import yaml

    from mloop.errors import InvalidInput

    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--backdoor-trigger {pair!r} is not COLUMN=VALUE")
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, dict | list):
            raise InvalidInput(f"--backdoor-trigger {pair!r}: the value must be one number or text")
        found[name.strip()] = value
    return found or None


def evaluate(
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate",
            help="Model URI: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/…, a path.",
            show_default=False,
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Labelled rows: DATASET@VERSION or a .csv/.parquet file.",
            show_default=False,
        ),
    ],
    label: Annotated[str, typer.Option("--label", help="The label column.", show_default=False)],
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Model URI to compare with (e.g. models:/NAME@champion)."),
    ] = None,
    slices: Annotated[
        list[str] | None,
        typer.Option("--slice", help="Column or cross (sex*age_bucket) to slice by; repeat."),
    ] = None,
    gate: Annotated[
        str | None, typer.Option("--gate", help="Gate: a YAML file or a stored gate's name.")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Human-level performance per slice (CSV or YAML)."),
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="Column to measure fairness across; repeat."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Main metric (default: the gate's, else accuracy / rmse)."),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="classification or regression (default: detected).")
    ] = None,
    positive_label: Annotated[
        str | None, typer.Option("--positive-label", help="The positive class of a binary label.")
    ] = None,
    noise: Annotated[
        float,
        typer.Option(
            "--noise", help="Robustness: Gaussian noise, in stds of each numeric feature."
        ),
    ] = 0.1,
    missing: Annotated[
        float, typer.Option("--missing", help="Robustness: share of numeric cells blanked.")
    ] = 0.1,
    backdoor_trigger: Annotated[
        list[str] | None,
        typer.Option(
            "--backdoor-trigger",
            help="COLUMN=VALUE stamped on every row to probe for a backdoor; repeat.",
        ),
    ] = None,
    resamples: Annotated[
        int, typer.Option("--resamples", help="Bootstrap resamples per interval.")
    ] = 200,
    confidence: Annotated[float, typer.Option("--confidence", help="Interval confidence.")] = 0.95,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the bootstrap and perturbations.")
    ] = 0,
    min_slice_rows: Annotated[
        int, typer.Option("--min-slice-rows", help="Slices smaller than this are marked rare.")
    ] = 30,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report (with plots) here.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here ('-' for stdout).")
    ] = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Store the verdict in the metadata store.")
    ] = True,
) -> int:
    """Evaluate a candidate model overall and per slice; exit 1 when the gate refuses it."""
    from mloop.evaluation import evaluate as run_evaluation

    with _render.progress_bar("evaluating") as update:
        report = run_evaluation(
            candidate,
            data=data,
            label=label,
            baseline=baseline,
            slices=slices or [],
            gate=gate,
            reference=reference,
            sensitive=sensitive or [],
            metric=metric,
            task=task,
            positive_label=positive_label,
            noise=noise,
            missing=missing,
            backdoor_trigger=_trigger(backdoor_trigger or []),
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            min_slice_rows=min_slice_rows,
            record=record,
            progress=lambda stage, done, total: update(done, total, stage),
        )
    if html is not None:
        report.write_html(html)
    to_stdout = json_path is not None and str(json_path) == "-"
    if json_path is not None and not to_stdout:
        report.write_json(json_path)
    if to_stdout:
        typer.echo(report.to_json())
    else:
        _print(report, html, json_path)
    return REFUSED if report.blessed is False else 0


def _print(report: EvaluationReport, html: Path | None, json_path: Path | None) -> None:
    out = _render.console()
    style = {True: "bold green", False: "bold red", None: "bold"}[report.blessed]
    out.print(
        Text.assemble(
            (report.verdict.upper(), style),
            f"  {report.candidate['resolved']}",
            f" vs {report.baseline['resolved']}" if report.baseline else "",
            f" on {report.data or 'the data'} ({report.rows} rows)",
        )
    )
    for reason in report.reasons:
        out.print(Text.assemble(("  ✗ ", "red"), reason))
    table = Table(title="overall", title_justify="left")
    table.add_column("metric")
    table.add_column("candidate", justify="right")
    table.add_column("interval", justify="right")
    if report.baseline_overall:
        table.add_column("baseline", justify="right")
        table.add_column("Δ", justify="right")
    for name, value in report.overall.items():
        row = [name, _f(value.value), f"{_f(value.low)} – {_f(value.high)}"]
        if report.baseline_overall and name in report.baseline_overall:
            base = report.baseline_overall[name].value
            row += [_f(base), _f(value.value - base)]
        table.add_row(*row, style="bold" if name == report.metric else None)
    out.print(table)
    if report.slices:
        out.print(_slice_table(report))
    if report.priorities:
        top = [p for p in report.priorities if (p["weighted_gap"] or 0) > 0][:5]
        if top:
            out.print(Text(f"where improving {report.metric} is worth most:", style="bold"))
            for p in top:
                out.print(
                    f"  {p['slice']}: gap {_f(p['gap'])} × share {p['share']:.1%} = {_f(p['weighted_gap'])}"
                )
    for result in report.fairness:
        out.print(
            f"fairness across {result.feature}: demographic parity Δ "
            f"{_f(result.demographic_parity_difference)}, equalized odds Δ {_f(result.equalized_odds_difference)}"
        )
    for check in report.robustness:
        detail = (
            f"could not predict: {check.error}"
            if check.error
            else f"{_f(check.perturbed)} (drop {_f(check.drop)})"
        )
        out.print(f"robustness, {check.description}: {detail}")
    if report.backdoor is not None:
        out.print(f"backdoor probe: {report.backdoor.flip_rate:.1%} of answers flipped")
    for note in report.notes:
        out.print(Text(f"note: {note}", style="dim"))
    for what, path in (("HTML report", html), ("JSON report", json_path)):
        if path is not None:
            out.print(f"{what}: {path}")
    if report.recorded:
        out.print(Text(f"evaluation {report.id} recorded", style="dim"))


def _slice_table(report: EvaluationReport) -> Table:
    metric = report.metric
    table = Table(title=f"slices ({metric})", title_justify="left")
    for column in ("slice", "rows", "candidate", "interval"):
        table.add_column(column, justify="left" if column == "slice" else "right")
    if report.baseline_overall:
        table.add_column("baseline", justify="right")
        table.add_column("Δ", justify="right")
    for s in report.slices[:SHOWN_SLICES]:
        value = s.metrics[metric]
        name = Text(s.key) + (Text(" (rare)", style="yellow") if s.rare else Text(""))
        row: list[Any] = [
            name,
            str(s.count),
            _f(value.value),
            f"{_f(value.low)} – {_f(value.high)}",
        ]
        if report.baseline_overall and s.baseline is not None:
            row += [_f(s.baseline[metric].value), _f(s.delta(metric))]
        table.add_row(*row)
    if len(report.slices) > SHOWN_SLICES:
        table.caption = f"{len(report.slices) - SHOWN_SLICES} more slices in the JSON/HTML report"
    return table


def _f(value: float | None) -> str:
    import math

    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.4g}"
