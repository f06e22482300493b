"""Turning entities into Rich tables and JSON: everything the CLI prints goes through here.

User data (names, params, tags) is wrapped in :class:`rich.text.Text` so square brackets
in a value are shown as typed rather than read as Rich markup.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the tracking stack loads only for the commands that use it
    from mloop.tracking import ArtifactInfo, Experiment, Run, RunInput, RunStatus

SYSTEM_PREFIX = "mloop."
_STATUS_STYLE = {  # keyed by value: RunStatus is a StrEnum
    "RUNNING": "cyan",
    "SCHEDULED": "cyan",
    "FINISHED": "green",
    "FAILED": "red",
    "KILLED": "yellow",
}
DIFF_MARK = "≠"


def console() -> Console:
    """A console on the current stdout (looked up at print time, so tests can capture it)."""
    return Console(highlight=False)


class ProgressUpdate(Protocol):
    def __call__(self, done: int, total: int | None, description: str | None = None) -> None: ...


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressUpdate]:
    """A Rich progress bar on stderr, shown only on a terminal (JSON on stdout stays
    clean); yields ``update(done, total, description=None)``."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = bar.add_task(description, total=None)

    def update(done: int, total: int | None, description: str | None = None) -> None:
        if description is None:
            bar.update(task, completed=done, total=total or None)
        else:
            bar.update(task, completed=done, total=total or None, description=description)

    with bar:
        yield update


@contextmanager
def spinner(description: str) -> Iterator[Callable[[str], None]]:
    """A Rich spinner on stderr, shown only on a terminal, for work of unknown length;
    yields ``say(message)``, which replaces its line."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = bar.add_task(description, total=None)
    with bar:
        yield lambda message: bar.update(task, description=message)


def emit_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def one_line(message: str) -> str:
    """Fold a message onto one line, as the CLI promises one line per error."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


# -- values -----------------------------------------------------------------------------------


def format_time(ms: int | None) -> str:
    """A stored time (ms since the epoch) in local time, to the second."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_when(ms: int | None, *, now_ms: int | None = None) -> str:
    """A stored time, short and relative when recent: ``45s ago``, ``12 min ago``,
    ``today 14:03``, else ``2025-11-28 14:03`` (local time)."""
    if ms is None:
        return "—"
    now = now_ms if now_ms is not None else int(datetime.now().timestamp() * 1000)
    age = (now - ms) / 1000
    if 0 <= age < 60:
        return f"{int(age)}s ago"
    if 0 <= age < 3600:
        return f"{int(age // 60)} min ago"
    when = datetime.fromtimestamp(ms / 1000).astimezone()
    if when.date() == datetime.fromtimestamp(now / 1000).astimezone().date():
        return when.strftime("today %H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``; ``—`` while unknown."""
    if start_ms is None or end_ms is None:
        return "—"
    ms = max(end_ms - start_ms, 0)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


def format_metric(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


def _user_keys(keys: Iterable[str]) -> list[str]:
    """User keys first (sorted), then mloop's own (``mloop.*``)."""
    return sorted(keys, key=lambda k: (k.startswith(SYSTEM_PREFIX), k))


def _table(title: str | None = None) -> Table:
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        collapse_padding=True,
    )


# -- experiments ------------------------------------------------------------------------------


def experiments_table(experiments: Sequence[Experiment]) -> Table:
    table = _table()
    table.add_column("ID", no_wrap=True)
    table.add_column("Name", min_width=8, overflow="fold")
    table.add_column("Stage", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    show_location = any(e.artifact_location for e in experiments)
    if show_location:
        table.add_column("Artifacts", overflow="fold")
    for exp in experiments:
        row: list[Any] = [
            Text(exp.experiment_id),
            Text(exp.name, style="bold"),
            exp.lifecycle_stage,
            format_time(exp.creation_time),
        ]
        if show_location:
            row.append(Text(exp.artifact_location or ""))
        table.add_row(*row)
    return table


# -- runs -------------------------------------------------------------------------------------


def runs_table(
    runs: Sequence[Run],
    experiment_names: Mapping[str, str],
    *,
    width: int = 80,
    max_extra: int = 6,
    order_by: Sequence[str] = (),
) -> Table:
    """One row a run; the user metrics (then params) most runs share fill the spare width.

    Metrics and params named in ``order_by`` come first.
    """
    show_experiment = len({r.info.experiment_id for r in runs}) > 1
    names_width = max((len(r.info.run_name or "") for r in runs), default=4)
    # ID 32, status 8, started 16, duration 8, each with 1 of padding either side.
    spare = width - (32 + 8 + 16 + 8 + 4 * 2) - min(max(names_width, 4), 20) - 2
    if show_experiment:
        spare -= 12
    metric_maps = [r.data.metrics for r in runs]
    param_maps = [r.data.params for r in runs]
    candidates = [
        *(("metric", k) for k in _preferred("metric", order_by)),
        *(("param", k) for k in _preferred("param", order_by)),
        *(("metric", k) for k in _common_keys(metric_maps, max_extra)),
        *(("param", k) for k in _common_keys(param_maps, max_extra)),
    ]
    extra: list[tuple[str, str]] = []
    for kind, key in candidates:
        needed = max(len(key), 8) + 2
        if (kind, key) not in extra and len(extra) < max_extra and needed <= spare:
            extra.append((kind, key))
            spare -= needed
    table = _table()
    table.add_column("Run ID", no_wrap=True)
    table.add_column("Name", min_width=4, max_width=20, overflow="fold")
    if show_experiment:
        table.add_column("Experiment", min_width=4, max_width=10, overflow="ellipsis")
    table.add_column("Status", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    for kind, key in extra:
        table.add_column(
            Text(key),
            justify="right" if kind == "metric" else "left",
            style="" if kind == "metric" else "dim",
            overflow="fold",
        )
    for run in runs:
        info = run.info
        row: list[Any] = [Text(info.run_id), Text(info.run_name or "")]
        if show_experiment:
            row.append(Text(experiment_names.get(info.experiment_id, info.experiment_id)))
        row += [
            status_text(info.status),
            format_when(info.start_time),
            format_duration(info.start_time, info.end_time),
        ]
        for kind, key in extra:
            if kind == "metric":
                row.append(format_metric(run.data.metrics.get(key)))
            else:
                row.append(Text(run.data.params.get(key, "")))
        table.add_row(*row)
    return table


def _preferred(kind: str, order_by: Sequence[str]) -> list[str]:
    prefix = f"{kind}s."
    keys = []
    for expression in order_by:
        field = expression.strip().split(" ")[0] if expression.strip() else ""
        if field.startswith(prefix):
            keys.append(field[len(prefix) :].strip("`\"'"))
    return keys


def _common_keys(mappings: Iterable[Mapping[str, Any]], limit: int) -> list[str]:
    counts: dict[str, int] = {}
    for mapping in mappings:
        for key in mapping:
            if not key.startswith(SYSTEM_PREFIX):
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))[:limit]


@dataclass(frozen=True)
class RunDetails:
    """Everything ``mloop runs show`` prints about one run."""

    run: Run
    experiment: Experiment
    artifacts: list[ArtifactInfo]
    inputs: list[RunInput]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.run.to_dict(),
            "experiment": self.experiment.to_dict(),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "inputs": [
                {
                    "ref": i.ref,
                    "context": i.context,
                    "kind": i.kind,
                    "digest": i.digest,
                    "attributes": i.attributes,
                }
                for i in self.inputs
            ],
        }


def run_details(details: RunDetails) -> Group:
    run, info = details.run, details.run.info
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("Run ID", Text(info.run_id))
    overview.add_row("Name", Text(info.run_name or ""))
    overview.add_row(
        "Experiment", Text(f"{details.experiment.name} ({details.experiment.experiment_id})")
    )
    overview.add_row("Status", status_text(info.status))
    overview.add_row("User", Text(info.user_id or "—"))
    overview.add_row("Started", format_time(info.start_time))
    overview.add_row("Ended", format_time(info.end_time))
    overview.add_row("Duration", format_duration(info.start_time, info.end_time))
    if info.parent_run_id:
        overview.add_row("Parent run", Text(info.parent_run_id))
    if info.lifecycle_stage != "active":
        overview.add_row("Lifecycle", Text(info.lifecycle_stage, style="red"))
    parts: list[Any] = [overview]
    parts.append(_key_values("Params", run.data.params))
    parts.append(
        _key_values("Metrics (latest)", {k: format_metric(v) for k, v in run.data.metrics.items()})
    )
    parts.append(_key_values("Tags", run.data.tags))
    artifacts = _table(f"Artifacts ({len(details.artifacts)})")
    artifacts.add_column("Path", overflow="fold")
    artifacts.add_column("Size", justify="right")
    artifacts.add_column("Digest", style="dim", overflow="fold")
    for artifact in details.artifacts:
        artifacts.add_row(
            Text(artifact.path), format_size(artifact.size), Text((artifact.digest or "")[:16])
        )
    parts.append(artifacts)
    inputs = _table(f"Inputs ({len(details.inputs)})")
    inputs.add_column("Ref", overflow="fold")
    inputs.add_column("Context")
    inputs.add_column("Kind")
    inputs.add_column("Digest", style="dim", overflow="fold")
    for item in details.inputs:
        inputs.add_row(
            Text(item.ref), Text(item.context), Text(item.kind), Text((item.digest or "")[:16])
        )
    parts.append(inputs)
    return Group(*parts)


def _key_values(title: str, values: Mapping[str, str]) -> Table:
    table = _table(f"{title} ({len(values)})")
    table.add_column("Key", overflow="fold")
    table.add_column("Value", overflow="fold")
    for key in _user_keys(values):
        table.add_row(Text(key), Text(values[key]))
    return table


# -- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRow:
    section: str
    key: str
    values: list[str | float | None]

    @property
    def differs(self) -> bool:
        return len({_comparable(v) for v in self.values}) > 1


def _comparable(value: str | float | None) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def compare_rows(runs: Sequence[Run]) -> list[CompareRow]:
    """Params then metrics, one row a key present in any of ``runs``; missing values are None."""
    rows: list[CompareRow] = []
    param_keys = _user_keys({k for r in runs for k in r.data.params})
    rows += [CompareRow("param", k, [r.data.params.get(k) for r in runs]) for k in param_keys]
    metric_keys = _user_keys({k for r in runs for k in r.data.metrics})
    rows += [CompareRow("metric", k, [r.data.metrics.get(k) for r in runs]) for k in metric_keys]
    return rows


def comparison_json(runs: Sequence[Run], rows: Sequence[CompareRow]) -> dict[str, Any]:
    def section(name: str) -> list[dict[str, Any]]:
        return [
            {
                "key": row.key,
                "values": {
                    run.info.run_id: (
                        str(v) if isinstance(v, float) and not math.isfinite(v) else v
                    )
                    for run, v in zip(runs, row.values, strict=True)
                },
                "differs": row.differs,
            }
            for row in rows
            if row.section == name
        ]

    params, metrics = section("param"), section("metric")
    return {
        "runs": [run.to_dict() for run in runs],
        "params": params,
        "metrics": metrics,
        "differences": {
            "params": [p["key"] for p in params if p["differs"]],
            "metrics": [m["key"] for m in metrics if m["differs"]],
        },
    }


def comparison_table(runs: Sequence[Run], rows: Sequence[CompareRow]) -> Table:
    table = _table()
    table.caption = f"{DIFF_MARK} marks values that differ between the runs"
    table.add_column("", width=1, no_wrap=True)
    table.add_column("Key", overflow="fold")
    for run in runs:
        header = Text(run.info.run_name or "", style="bold")
        header.append(f"\n{run.info.run_id}", style="dim")
        table.add_column(header, overflow="fold")
    table.add_row("", "status", *[status_text(r.info.status) for r in runs])
    table.add_row(
        "",
        "duration",
        *[format_duration(r.info.start_time, r.info.end_time) for r in runs],
        end_section=True,
    )
    for row in rows:
        style = "bold yellow" if row.differs else ""
        cells = [
            Text(format_metric(v) if isinstance(v, float) else ("—" if v is None else v))
            for v in row.values
        ]
        table.add_row(
            DIFF_MARK if row.differs else "",
            Text(f"{row.section}s.{row.key}"),
            *cells,
            style=style,
        )
    return table
