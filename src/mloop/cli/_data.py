"""``mloop data …``: register and inspect dataset versions; statistics, schema, validation,
drift, diffs and sanitization of data files, folders, versions or stored statistics.

Each command resolves its arguments through :mod:`mloop.data._sources`, calls one library
function and renders the result: a Rich table by default, JSON on stdout with ``--json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.data._statistics import DatasetStatistics
    from mloop.data._versions import DatasetVersion

data_app = typer.Typer(
    name="data",
    help="Version datasets; compute statistics, infer schemas, validate, detect drift, "
    "diff versions and sanitize training data.",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SourceOrRef = Annotated[
    str,
    typer.Argument(
        help="A file, folder or glob of Parquet/CSV/JSON-lines, a file:// or s3:// URI, or a "
        "dataset version NAME@VERSION (NAME@latest).",
        show_default=False,
    ),
]


def _statistics(source_or_ref: str) -> DatasetStatistics:
    from mloop.data._sources import load_statistics

    with _render.progress_bar(f"Scanning {source_or_ref}") as update:
        return load_statistics(source_or_ref, progress=lambda done, total: update(done, total))


# -- versions ---------------------------------------------------------------------------------


@data_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. sales.", show_default=False)],
    source: Annotated[
        str,
        typer.Argument(
            help="A file, folder or glob of Parquet/CSV/JSON-lines, or a file:// or s3:// URI.",
            show_default=False,
        ),
    ],
    reference: Annotated[
        bool,
        typer.Option(
            "--reference", help="Reference local files where they are instead of copying them."
        ),
    ] = False,
    digest: Annotated[
        bool,
        typer.Option("--digest", help="Also record the SHA-256 of referenced files (reads them)."),
    ] = False,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What this version holds.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register SOURCE as the next version of dataset NAME (identical content: same version)."""
    from mloop.data._versions import register as register_version

    with _render.progress_bar(f"Registering {name}") as update:
        version = register_version(
            name,
            source,
            description=description,
            reference=True if reference else None,
            compute_digest=digest,
            progress=lambda done, total: update(done, total),
        )
    if as_json:
        _render.emit_json(version.to_dict())
        return
    how = "referenced" if version.is_reference else "stored"
    _render.console().print(
        Text.assemble(
            ("Registered ", ""),
            (version.ref, "bold"),
            f": {_count(version.num_rows)} rows in {len(version.files)} file(s), "
            f"{_render.format_size(version.size)} {how}, digest {version.digest[:12]}",
        )
    )


@data_app.command("list")
def list_datasets(
    name: Annotated[
        str | None, typer.Argument(help="List this dataset's versions.", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List datasets, or the versions of one dataset."""
    from mloop.data._versions import list_datasets as list_all
    from mloop.data._versions import list_versions

    out = _render.console()
    if name is not None:
        versions = list_versions(name)
        if as_json:
            _render.emit_json([_summary(v) for v in versions])
            return
        out.print(_versions_table(versions))
        return
    datasets = list_all()
    if as_json:
        _render.emit_json([d.to_dict() for d in datasets])
        return
    if not datasets:
        out.print("No datasets yet; `mloop data register NAME SOURCE` adds one.")
        return
    table = _render._table()
    table.add_column("Name", overflow="fold")
    table.add_column("Latest", justify="right")
    table.add_column("Versions", justify="right")
    table.add_column("Updated", no_wrap=True)
    for d in datasets:
        table.add_row(
            Text(d.name, style="bold"),
            str(d.latest_version),
            str(d.num_versions),
            _render.format_when(d.last_update_time),
        )
    out.print(table)


def _summary(version: DatasetVersion) -> dict[str, Any]:
    data = version.to_dict()
    data.pop("files")
    return data


def _versions_table(versions: list[DatasetVersion]) -> Table:
    table = _render._table()
    table.add_column("Ref", overflow="fold")
    table.add_column("Rows", justify="right")
    table.add_column("Files", justify="right")
    table.add_column("Size", justify="right")
    table.add_column("Storage")
    table.add_column("Created", no_wrap=True)
    table.add_column("By")
    table.add_column("Description", overflow="fold")
    for v in versions:
        table.add_row(
            Text(v.ref, style="bold"),
            _count(v.num_rows),
            str(len(v.files)),
            _render.format_size(v.size),
            v.storage,
            _render.format_when(v.creation_time),
            Text(v.created_by or "—"),
            Text(v.description or ""),
        )
    return table


@data_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@latest.", show_default=False)],
    verify: Annotated[
        bool, typer.Option("--verify", help="Check that the files are still as registered.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one dataset version: provenance, files and row count."""
    from mloop.data._versions import get_dataset_version

    version = get_dataset_version(ref)
    changes = version.verify() if verify else None
    if as_json:
        data = version.to_dict()
        if changes is not None:
            data["changes"] = [c.to_dict() for c in changes]
        _render.emit_json(data)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Dataset", Text(version.ref))
    grid.add_row("Digest", Text(version.digest))
    grid.add_row("Rows", _count(version.num_rows))
    grid.add_row("Size", _render.format_size(version.size))
    grid.add_row("Storage", version.storage)
    grid.add_row("Source", Text(version.source))
    grid.add_row("Created", _render.format_time(version.creation_time))
    grid.add_row("Created by", Text(version.created_by or "—"))
    if version.run_id:
        grid.add_row("Run", Text(version.run_id))
    if version.step:
        grid.add_row("Step", Text(version.step))
    if version.description:
        grid.add_row("Description", Text(version.description))
    parents = version.provenance.get("parents") or []
    if parents:
        grid.add_row("Derived from", Text(", ".join(parents)))
    files = _render._table(f"Files ({len(version.files)})")
    files.add_column("Path", overflow="fold")
    files.add_column("Format")
    files.add_column("Size", justify="right")
    files.add_column("Digest / ETag", style="dim", overflow="fold")
    for f in version.files:
        files.add_row(
            Text(f.path if f.uri is None else f.uri),
            f.format,
            _render.format_size(f.size),
            Text((f.digest or f.etag or "")[:16] or (f"mtime {f.mtime_ns}" if f.mtime_ns else "")),
        )
    parts: list[Any] = [grid, files]
    if changes is not None:
        parts.append(_changes(changes))
    _render.console().print(Group(*parts))


def _changes(changes: list[Any]) -> Any:
    if not changes:
        return Text("All files are as registered.", style="green")
    table = _render._table(f"Changed since registration ({len(changes)})")
    table.add_column("Path", overflow="fold")
    table.add_column("Change", style="red")
    table.add_column("Detail", overflow="fold")
    for c in changes:
        table.add_row(Text(c.uri or c.path), c.change, Text(c.detail))
    return table


# -- statistics, schema, validation -----------------------------------------------------------


@data_app.command("stats")
def stats(
    source: SourceOrRef,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Also write the statistics to this file (for `drift`)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-feature statistics: count, missing, mean, std, min, max, distinct, top values."""
    statistics = _statistics(source)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_bytes(statistics.to_bytes())
    if as_json:
        _render.emit_json(statistics.to_dict())
        return
    out = _render.console()
    out.print(_stats_table(statistics))
    if save is not None:
        out.print(f"Saved statistics to {save}")


def _stats_table(statistics: DatasetStatistics) -> Table:
    table = _render._table(
        f"{_count(statistics.num_rows)} rows, {len(statistics.features)} features"
    )
    for header in ("Feature", "Kind", "Missing", "Zeros", "Mean", "Std", "Min", "Median", "Max"):
        table.add_column(header, justify="left" if header in ("Feature", "Kind") else "right")
    table.add_column("Distinct", justify="right")
    table.add_column("Top values", overflow="fold")
    rows = max(int(statistics.num_rows), 1)
    for name, feature in statistics.features.items():
        summary = _feature_summary(feature)
        missing = summary.get("missing")
        table.add_row(
            Text(name, style="bold"),
            str(summary.get("kind", "")),
            "" if missing is None else f"{missing} ({100 * missing / rows:.1f}%)",
            _num(summary.get("zeros")),
            _num(summary.get("mean")),
            _num(summary.get("std")),
            _num(summary.get("min")),
            _num(summary.get("median")),
            _num(summary.get("max")),
            _num(summary.get("distinct")),
            Text(_top(summary.get("top"))),
        )
    return table


def _feature_summary(feature: Any) -> dict[str, Any]:
    """The plain values a table shows, from the feature's own JSON summary (numeric
    statistics only exist for numeric features, top values only for categorical ones)."""
    data: dict[str, Any] = feature.to_dict()
    found = {
        key: data.get(key) for key in ("kind", "missing", "zeros", "mean", "std", "min", "max")
    }
    quantiles = data.get("quantiles")
    found["median"] = quantiles.get("0.5") if isinstance(quantiles, dict) else None
    found["distinct"] = data.get("distinct")
    found["top"] = data.get("top_k")
    return found


def _top(values: Any) -> str:
    if not values:
        return ""
    if isinstance(values, dict):
        items = list(values.items())
    else:
        items = [tuple(v) if isinstance(v, (list, tuple)) else (v, None) for v in values]
    shown = [f"{k} ({c})" if c is not None else str(k) for k, c in items[:3]]
    return ", ".join(shown) + (" …" if len(items) > 3 else "")


@data_app.command("infer-schema")
def infer_schema(
    source: SourceOrRef,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the YAML here (default: stdout).")
    ] = None,
) -> None:
    """Infer a schema (types, presence, domains, ranges) from the data's statistics."""
    from mloop.data._schema import infer_schema as infer

    text = infer(_statistics(source)).to_yaml()
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    _render.console().print(f"Wrote the schema to {output}")


@data_app.command("validate")
def validate(
    source: SourceOrRef,
    schema: Annotated[
        Path,
        typer.Option("--schema", "-s", help="Schema YAML (from `mloop data infer-schema`)."),
    ],
    environment: Annotated[
        str, typer.Option("--environment", "-e", help="Schema environment, e.g. SERVING.")
    ] = "TRAINING",
    as_json: JsonFlag = False,
) -> None:
    """Check the data against a schema; exit 1 when an anomaly has ERROR severity."""
    text = _read_text(schema, "schema")
    from mloop.data._schema import Schema
    from mloop.data._validation import validate_statistics

    parsed = Schema.from_yaml(text, source=str(schema))
    anomalies = validate_statistics(_statistics(source), parsed, environment=environment)
    errors = [a for a in anomalies if str(_value(a.severity)).upper() == "ERROR"]
    if as_json:
        _render.emit_json(
            {
                "valid": not errors,
                "environment": environment,
                "anomalies": [_anomaly_dict(a) for a in anomalies],
            }
        )
    else:
        out = _render.console()
        if not anomalies:
            out.print(Text("No anomalies.", style="green"))
        else:
            table = _render._table(f"Anomalies ({len(anomalies)})")
            table.add_column("Feature", overflow="fold")
            table.add_column("Kind")
            table.add_column("Severity")
            table.add_column("Rows", justify="right")
            table.add_column("Description", overflow="fold")
            for a in anomalies:
                severity = str(_value(a.severity)).upper()
                table.add_row(
                    Text(a.feature or "—", style="bold"),
                    str(_value(a.kind)),
                    Text(severity, style="red" if severity == "ERROR" else "yellow"),
                    "" if a.share is None else f"{100 * a.share:.2f}%",
                    Text(a.description),
                )
            out.print(table)
    if errors:
        raise typer.Exit(1)


def _anomaly_dict(anomaly: Any) -> dict[str, Any]:
    if hasattr(anomaly, "to_dict"):
        return dict(anomaly.to_dict())
    return {
        "feature": anomaly.feature,
        "kind": str(_value(anomaly.kind)),
        "severity": str(_value(anomaly.severity)),
        "description": anomaly.description,
        "share": anomaly.share,
    }


def _value(item: Any) -> Any:
    return getattr(item, "value", item)


# -- drift and diff ---------------------------------------------------------------------------


@data_app.command("drift")
def drift(
    reference: Annotated[
        str,
        typer.Option(
            "--reference",
            "-r",
            help="Reference data: files, folder, NAME@VERSION or a `stats --save` file.",
        ),
    ],
    current: Annotated[
        str, typer.Option("--current", "-c", help="Current data, in any form --reference takes.")
    ],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json or html.")
    ] = "table",
    config: Annotated[
        Path | None, typer.Option("--config", help="Drift config YAML (methods, thresholds).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here (html, json).")
    ] = None,
) -> None:
    """Compare current data with reference data feature by feature (drift or skew)."""
    from mloop.data._drift import DriftConfig, detect_drift, render_drift_html

    output_format = output_format.lower()
    if output_format not in ("table", "json", "html"):
        raise InvalidInput(f"--format {output_format!r} is not known; use table, json or html")
    if config is not None and not config.is_file():
        raise InvalidInput(f"drift config {config} does not exist; check the path")
    drift_config = DriftConfig.from_yaml(config) if config is not None else None
    ref_stats = _statistics(reference)
    cur_stats = _statistics(current)
    report = detect_drift(ref_stats, cur_stats, drift_config)
    if output_format == "json":
        text = _render_json(report.to_dict())
    elif output_format == "html":
        text = render_drift_html(report, ref_stats, cur_stats)
    else:
        text = ""
    if output is not None and text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    out = _render.console()
    if output_format == "table":
        out.print(_drift_table(report))
        if output is not None:
            raise InvalidInput("-o/--output needs --format json or html")
    elif output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.print(f"Wrote the {output_format} drift report to {output}")


def _render_json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, default=str) + "\n"


def _drift_table(report: Any) -> Table:
    flagged = len(report.drifted_features())
    verdict = "DRIFT" if report.drifted else "no drift"
    table = _render._table(f"{verdict}: {flagged} of {len(report.features)} features drifted")
    table.add_column("Feature", overflow="fold")
    table.add_column("Type")
    table.add_column("Method")
    table.add_column("Score", justify="right")
    table.add_column("Threshold", justify="right")
    table.add_column("Drifted")
    for f in report.features:
        table.add_row(
            Text(f.name, style="bold"),
            str(_value(f.kind)),
            f.method,
            _num(f.score),
            _num(f.threshold),
            Text("yes", style="bold red") if f.drifted else Text("no", style="green"),
        )
    return table


@data_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="NAME@V1", show_default=False)],
    b: Annotated[str, typer.Argument(help="NAME@V2", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Files, rows, schema and statistics that differ between two dataset versions."""
    from mloop.data._diff import diff as diff_versions

    result = diff_versions(a, b)
    if as_json:
        _render.emit_json(result.to_dict())
        return
    out = _render.console()
    out.print(Text.assemble(("Diff ", ""), (result.a, "bold"), (" → ", ""), (result.b, "bold")))
    out.print(f"Rows: {_count(result.rows_a)} → {_count(result.rows_b)}")
    if not result.changed:
        out.print(Text("Identical content.", style="green"))
        return
    files = _render._table("Files")
    files.add_column("Change")
    files.add_column("Path", overflow="fold")
    for mark, paths in (
        ("added", result.files_added),
        ("removed", result.files_removed),
        ("changed", result.files_changed),
    ):
        for path in paths:
            files.add_row(mark, Text(path))
    parts: list[Any] = [files] if files.row_count else []
    if result.schema_changes:
        schema = _render._table("Schema")
        schema.add_column("Column", overflow="fold")
        schema.add_column("Change")
        schema.add_column("Before")
        schema.add_column("After")
        for c in result.schema_changes:
            schema.add_row(Text(c.column, style="bold"), c.change, c.before or "", c.after or "")
        parts.append(schema)
    if result.stat_shifts:
        shifts = _render._table("Statistics")
        shifts.add_column("Column", overflow="fold")
        shifts.add_column("Statistic")
        shifts.add_column("Before", justify="right")
        shifts.add_column("After", justify="right")
        for s in result.stat_shifts:
            shifts.add_row(Text(s.column, style="bold"), s.statistic, _num(s.before), _num(s.after))
        parts.append(shifts)
    if result.drift is not None:
        parts.append(_drift_table(result.drift))
    out.print(Group(*parts))


# -- sanitization -----------------------------------------------------------------------------


@data_app.command("sanitize")
def sanitize(
    source: SourceOrRef,
    label: Annotated[
        str | None, typer.Option("--label", help="Label column (for label-flip suspects).")
    ] = None,
    deny_list: Annotated[
        Path | None,
        typer.Option("--deny-list", help="File of forbidden content, one entry a line."),
    ] = None,
    register_clean: Annotated[
        str | None,
        typer.Option(
            "--register-clean",
            help="Register the rows that were not flagged as a new version of this dataset.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON report here.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Flag duplicate, label-flip, outlier and deny-listed rows (MITRE ATLAS AML.M0007)."""
    from mloop.data._sanitize import sanitize as run_sanitize
    from mloop.data._sources import is_ref, load_table

    entries: tuple[str, ...] = ()
    if deny_list is not None:
        lines = _read_text(deny_list, "deny-list").splitlines()
        entries = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    table = load_table(source)
    report = run_sanitize(table, label=label, deny_list=entries)
    data: dict[str, Any] = dict(report.to_dict())
    if register_clean is not None:
        cleaned = _register_clean(register_clean, source, report, table, data, is_ref(source))
        data["registered"] = cleaned.ref
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(_render_json(data))
    if as_json:
        _render.emit_json(data)
        return
    out = _render.console()
    flagged = report.flagged_rows()
    out.print(
        Text.assemble(
            (f"{len(flagged)}", "bold red" if flagged else "bold green"),
            f" of {_count(table.num_rows)} rows flagged",
        )
    )
    reasons = _reason_counts(data)
    if reasons:
        table_out = _render._table("Reasons")
        table_out.add_column("Reason")
        table_out.add_column("Rows", justify="right")
        for reason, count in reasons.items():
            table_out.add_row(reason, str(count))
        out.print(table_out)
    if "registered" in data:
        out.print(
            Text.assemble(("Registered the cleaned rows as ", ""), (data["registered"], "bold"))
        )
    if output is not None:
        out.print(f"Wrote the report to {output}")


def _register_clean(
    name: str, source: str, report: Any, table: Any, data: dict[str, Any], from_ref: bool
) -> DatasetVersion:
    from mloop.data._versions import register as register_version

    cleaned = report.cleaned(table)
    removed = int(table.num_rows - cleaned.num_rows)
    reasons = _reason_counts(data)
    why = ", ".join(f"{count} {reason}" for reason, count in reasons.items()) or "none"
    return register_version(
        name,
        cleaned,
        description=f"sanitized {source}: removed {removed} of {table.num_rows} rows ({why})",
        parents=[source] if from_ref else (),
        provenance={
            "sanitized_from": source,
            "removed_rows": removed,
            "removed_by_reason": reasons,
            "sanitize_report": _compact(data),
        },
    )


MAX_RECORDED_ROWS = 1000


def _compact(report: dict[str, Any]) -> dict[str, Any]:
    """The report as kept in provenance: row numbers only while they are few."""
    if int(report.get("flagged") or 0) <= MAX_RECORDED_ROWS:
        return report
    reasons = {
        reason: {k: v for k, v in found.items() if k != "rows"}
        for reason, found in (report.get("reasons") or {}).items()
    }
    return {**report, "reasons": reasons, "rows_omitted": True}


def _reason_counts(report: dict[str, Any]) -> dict[str, int]:
    """Rows flagged per reason, read from the report's ``counts`` or its flagged rows."""
    counts = report.get("counts") or report.get("summary")
    if isinstance(counts, dict):
        return {str(k): int(v) for k, v in counts.items() if isinstance(v, (int, float))}
    found: dict[str, int] = {}
    for row in report.get("flagged", []) or []:
        if isinstance(row, dict):
            for reason in row.get("reasons", [row.get("reason")]):
                if reason:
                    found[str(reason)] = found.get(str(reason), 0) + 1
    return found


# -- helpers ----------------------------------------------------------------------------------


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"{what} file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {what} file {path}: {exc}") from exc


def _count(value: int | None) -> str:
    return "?" if value is None else f"{int(value):,}"


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)
