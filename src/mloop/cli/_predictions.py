"""`mloop predictions`, `mloop feedback` and `mloop review`: the prediction log, ground-truth labels and the human review queue."""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.text import Text

from mloop.cli import _render
from mloop.errors import InvalidInput

predictions_app = typer.Typer(
    name="predictions",
    help="Read the prediction log: every answered request, durable before it was answered.",
    no_args_is_help=True,
    add_completion=False,
)
review_app = typer.Typer(
    name="review",
    help="The human review queue: answers below a deployment's confidence threshold.",
    no_args_is_help=True,
    add_completion=False,
)

Deployment = Annotated[str, typer.Argument(help="Deployment name.", show_default=False)]
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_EXPORT_COLUMNS = ("inputs", "outputs", "guards")


def parse_when(text: str | None, option: str, *, now: datetime | None = None) -> datetime | None:
    """``2026-03-01``, ``2026-03-01T10:30:00Z`` (no zone = UTC) or an age such as ``15m``,
    ``2h``, ``7d`` (that long ago)."""
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is neither a time (2026-03-01T10:30:00Z, 2026-03-01) nor an "
            "age (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _label_value(text: str) -> Any:
    """Labels typed on a command line or read from CSV: numbers become numbers (to match a
    model's numeric classes), anything else stays text."""
    return orjson.loads(text) if _NUMBER.match(text) else text


def _atomic_output(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then a rename."""
    target = path.expanduser().absolute()
    if target.is_dir():
        raise InvalidInput(f"--output {path} is a folder; give a file name")
    if not target.parent.is_dir():
        raise InvalidInput(f"--output {path}: folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(table: Any) -> Iterator[bytes]:
    for row in table.to_pylist():
        for column in _EXPORT_COLUMNS:
            if row.get(column) is not None:
                row[column] = orjson.loads(row[column])
        yield orjson.dumps(row, option=orjson.OPT_UTC_Z) + b"\n"


@predictions_app.command("export")
def export(
    deployment: Deployment,
    since: Annotated[
        str | None,
        typer.Option(
            help="From this time (ISO 8601, UTC unless a zone is given) or age (2h, 7d).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time or age.", show_default=False)
    ] = None,
    format: Annotated[
        Literal["jsonl", "parquet"],
        typer.Option("--format", help="jsonl (one JSON object per prediction) or parquet."),
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (default: stdout, jsonl only).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export logged predictions of DEPLOYMENT for analysis."""
    from mloop.serving._predlog import read_predictions

    if format == "parquet" and output is None:
        raise InvalidInput(
            "--format parquet needs --output PATH (Parquet is not written to a terminal)"
        )
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    with _render.spinner(f"Reading predictions of {deployment}"):
        table = read_predictions(None, deployment, start, end)
    if format == "parquet":
        import pyarrow.parquet as pq

        assert output is not None
        _atomic_output(output, lambda stream: pq.write_table(table, stream, compression="zstd"))
    elif output is not None:
        _atomic_output(output, lambda stream: stream.writelines(_jsonl(table)))
    else:
        out = sys.stdout.buffer
        out.writelines(_jsonl(table))
        out.flush()
    if output is not None:
        sys.stderr.write(f"{table.num_rows} predictions written to {output}\n")


def _read_items(path: Path) -> list[dict[str, Any]]:
    """Feedback items from CSV (header: request_id,label,outcome,time) or JSON lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"--file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file {path} cannot be read as UTF-8 text: {exc}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise InvalidInput(f"{path}, line {number}: not JSON ({exc})") from None
        return items
    if path.suffix.lower() != ".csv":
        raise InvalidInput(f"--file {path}: use a .csv or .jsonl file")
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "request_id" not in reader.fieldnames:
        raise InvalidInput(f"{path}: the CSV header needs request_id and label and/or outcome")
    items = []
    for row in reader:
        item: dict[str, Any] = {
            k: v for k, v in row.items() if k is not None and v not in ("", None)
        }
        if "label" in item:
            item["label"] = _label_value(item["label"])
        items.append(item)
    return items


def feedback(
    deployment: Deployment,
    request_id: Annotated[
        str | None,
        typer.Option("--request-id", help="The request the feedback is about.", show_default=False),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            help="Ground-truth label (numbers are stored as numbers).", show_default=False
        ),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(help='An outcome event, e.g. "user redid the search".', show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Bulk: a .csv (request_id,label,outcome,time) or .jsonl file.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Attach ground-truth labels or outcome events to logged predictions."""
    from mloop.registry._db import configured_user
    from mloop.serving._feedback import record_feedback

    if file is not None:
        if request_id or label is not None or outcome is not None:
            raise InvalidInput(
                "give either --file or --request-id with --label/--outcome, not both"
            )
        items = _read_items(file)
    elif request_id is None:
        raise InvalidInput(
            "give --request-id ID with --label and/or --outcome, or --file for bulk feedback"
        )
    else:
        item: dict[str, Any] = {"request_id": request_id}
        if label is not None:
            item["label"] = _label_value(label)
        if outcome is not None:
            item["outcome"] = outcome
        items = [item]
    with _render.spinner(f"Recording {len(items)} feedback item(s)"):
        count = record_feedback(None, deployment, items, actor=configured_user(), source="cli")
    _render.console().print(f"Recorded {count} feedback item(s) for {deployment}.")


@review_app.command("list")
def review_list(
    deployment: Deployment,
    status: Annotated[
        Literal["pending", "labeled", "all"], typer.Option(help="Which items to show.")
    ] = "pending",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List answers of DEPLOYMENT queued for human review."""
    from mloop.serving._review import list_review

    with _render.spinner(f"Reading the review queue of {deployment}"):
        items = list_review(deployment, status)
    if as_json:
        _render.emit_json(
            [
                {
                    "request_id": i.request_id,
                    "time": i.time.isoformat(),
                    "model": i.model,
                    "version": i.version,
                    "status": i.status,
                    "inputs": i.inputs,
                    "outputs": i.outputs,
                    "label": i.label,
                    "labeled_by": i.labeled_by,
                }
                for i in items
            ]
        )
        return
    table = _render._table(f"Review queue of {deployment} ({status}): {len(items)}")
    for column in ("request id", "time", "model", "outputs", "label"):
        table.add_column(column, overflow="fold")
    for i in items:
        table.add_row(
            Text(i.request_id),
            _render.format_time(int(i.time.timestamp() * 1000)),
            Text(f"{i.model}/{i.version}"),
            Text(orjson.dumps(i.outputs).decode()[:80]),
            Text("—" if i.label is None else f"{i.label} ({i.labeled_by or '?'})"),
        )
    _render.console().print(table)


@review_app.command("label")
def review_label(
    request_id: Annotated[
        str, typer.Argument(help="Request id of a queued answer.", show_default=False)
    ],
    label: Annotated[str, typer.Argument(help="The correct label.", show_default=False)],
    deployment: Annotated[
        str | None,
        typer.Option(
            help="Deployment of the request (default: search every queue).", show_default=False
        ),
    ] = None,
) -> None:
    """Label a queued answer; the label is stored as feedback."""
    from mloop.registry._db import configured_user
    from mloop.serving._review import label_review

    item = label_review(request_id, _label_value(label), configured_user(), deployment=deployment)
    _render.console().print(f"Labeled {item.request_id} of {item.deployment} as {item.label!r}.")


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
    app.add_typer(predictions_app)
    app.command("feedback")(feedback)
    app.add_typer(review_app)
