"""`mloop monitor`: compute a deployment's monitoring windows, see them, manage alerts.

``run`` computes the due windows once (drift, skew, performance, software metrics) and
evaluates the alert rules; ``watch`` does it on a schedule; ``show`` draws the windows as
sparklines, or as an HTML page of plots; ``rules`` and ``alerts`` manage and list alerts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.monitoring._jobs import MonitorResult
    from mloop.monitoring._store import Alert

monitor_app = typer.Typer(
    name="monitor",
    help="Monitoring: drift, skew, performance and software metrics per window; alert rules "
    "and their alerts.",
    no_args_is_help=True,
    add_completion=False,
)
rules_app = typer.Typer(
    name="rules", help="Alert rules (YAML): apply, list, delete.", no_args_is_help=True
)
monitor_app.add_typer(rules_app)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
DeploymentArg = Annotated[str, typer.Argument(help="Deployment name.", show_default=False)]
WindowOpt = Annotated[
    str | None,
    typer.Option("--window", help="Window length (5m, 1h, 1d); default: the monitor config's.",
                 show_default=False),
]  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    app.add_typer(monitor_app)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A spinner whose line follows the job's progress messages."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_render.console(),
        transient=True,
    ) as bar:
        task = bar.add_task("Monitoring", total=None)
        yield lambda message: bar.update(task, description=message)


def _at(text: str | None) -> int | None:
    from mloop.cli._predictions import parse_when

    moment = parse_when(text, "--at")
    return None if moment is None else int(moment.timestamp() * 1000)


def _run_once(
    deployment: str,
    *,
    window: str | None,
    now: bool,
    at: int | None,
    config: Path | None,
    deliver: bool,
    show_progress: bool,
) -> MonitorResult:
    from mloop.monitoring._jobs import run_monitor
    from mloop.monitoring._spec import MonitorConfig, load_yaml_documents

    parsed = None
    if config is not None:
        documents = load_yaml_documents(config)
        if len(documents) != 1:
            raise InvalidInput(f"{config} must hold one monitor config")
        parsed = MonitorConfig.parse(documents[0], source=str(config))
    with _progress(show_progress) as say:
        return run_monitor(
            deployment, now_ms=at, config=parsed, window=window, include_current=now,
            deliver=deliver, progress=say,
        )  # fmt: skip


def _metric_text(value: Any, kind: str = "g") -> str:
    if value is None:
        return "—"
    if kind == "%":
        return f"{value:.1%}"
    return f"{value:.3g}"


def _result_table(result: MonitorResult) -> Table:
    table = Table(title=f"{result.deployment}: windows computed", title_justify="left")
    for column in ("window (UTC)", "requests", "errors", "p99 ms", "online", "drift", "skew",
                   "output drift"):  # fmt: skip
        table.add_column(column, justify="left" if column.startswith("window") else "right")
    from mloop.monitoring._alerts import metric_value

    for window in result.windows:
        m = window.metrics
        start = _render.format_time(window.start_ms)
        table.add_row(
            f"{start}{' (partial)' if window.partial else ''}",
            str(m.get("count", 0)),
            _metric_text(m.get("error_rate"), "%"),
            _metric_text(m.get("latency_p99_ms")),
            _performance_text(m),
            _side_text(m.get("drift") or {}),
            _side_text(m.get("skew") or {}),
            _metric_text(metric_value(m, "output_drift")),
        )
    return table


def _performance_text(metrics: dict[str, Any]) -> str:
    performance = metrics.get("performance") or {}
    status = performance.get("status")
    if status == "ok":
        return f"{performance['metric_name']} {performance['value']:.3g}"
    if status == "too_few_labels":
        return f"{performance['labelled']} labels (< {performance['min_labels']})"
    return "no labels"


def _side_text(found: dict[str, Any]) -> str:
    if found.get("status") != "ok":
        return str(found.get("status", "—")).replace("_", " ")
    drifted = found.get("drifted_features") or []
    text = f"{found['max_score']:.3g}"
    return f"{text} ({', '.join(drifted[:3])})" if drifted else text


def _print_alerts(alerts: Sequence[Alert], title: str) -> None:
    out = _render.console()
    for alert in alerts:
        style = "bold red" if alert.firing else "green"
        text = alert.resolution if title == "resolved" else alert.message
        out.print(Text.assemble((f"{title}: ", style), text))


@monitor_app.command("run")
def run(
    deployment: DeploymentArg,
    window: WindowOpt = None,
    now: Annotated[
        bool, typer.Option("--now", help="Also compute the window in progress (partial).")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Run as if it were this time (ISO 8601 or an age such as 2h).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Monitor config YAML (default: the stored one).", show_default=False
        ),
    ] = None,
    no_deliver: Annotated[
        bool, typer.Option("--no-deliver", help="Store alerts but send them to no sink.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compute DEPLOYMENT's due windows once, store them and evaluate its alert rules."""
    result = _run_once(
        deployment, window=window, now=now, at=_at(at), config=config,
        deliver=not no_deliver, show_progress=not as_json,
    )  # fmt: skip
    if as_json:
        _render.emit_json(result.to_dict())
        return
    out = _render.console()
    if result.windows:
        out.print(_result_table(result))
    else:
        out.print(f"{deployment}: every due window is already computed.")
    if result.recomputed:
        out.print(f"{result.recomputed} earlier window(s) recomputed for late feedback.")
    _print_alerts(result.fired, "ALERT")
    _print_alerts(result.resolved, "resolved")
    still = [a for a in result.firing if a not in result.fired]
    _print_alerts(still, "still firing")


@monitor_app.command("watch")
def watch(
    deployments: Annotated[
        list[str] | None,
        typer.Argument(
            help="Deployments (default: every deployment with alert rules or a monitor config).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Run every this long (e.g. 5m).")
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", help='Run on a cron schedule in UTC (e.g. "*/5 * * * *").', show_default=False
        ),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", min=1, help="Stop after this many rounds.", show_default=False),
    ] = None,
    window: WindowOpt = None,
) -> None:
    """Run the monitor for DEPLOYMENTS on a schedule until interrupted (or --max-runs)."""
    from mloop.monitoring._watch import Schedule, watch_loop

    schedule = Schedule.parse(every=every, cron=cron)
    out = _render.console()

    def round_(names: list[str]) -> None:
        for name in names:
            try:
                result = _run_once(
                    name, window=window, now=False, at=None, config=None, deliver=True,
                    show_progress=False,
                )  # fmt: skip
            except Exception as exc:  # one deployment's failure must not stop the watch
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                out.print(Text.assemble(("error ", "red"), f"{name}: {message}"))
                continue
            computed = len(result.windows)
            out.print(
                f"{_render.format_time(result.now_ms)} {name}: {computed} window(s), "
                f"{len(result.fired)} fired, {len(result.resolved)} resolved, "
                f"{len(result.firing)} firing"
            )
            _print_alerts(result.fired, "ALERT")
            _print_alerts(result.resolved, "resolved")

    watch_loop(deployments or [], schedule, round_, max_runs=max_runs, stop=threading.Event())


@monitor_app.command("show")
def show(
    deployment: DeploymentArg,
    window: WindowOpt = None,
    last: Annotated[int, typer.Option("--last", min=1, help="How many windows.")] = 48,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Write an HTML page of time-series plots here.", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show DEPLOYMENT's newest windows: sparklines per metric, and its alerts."""
    from mloop.monitoring._report import SERIES, render_html, series, sparkline
    from mloop.monitoring._spec import duration_ms, format_duration
    from mloop.monitoring._store import get_monitor_config, list_alerts, list_windows

    length = duration_ms(window, "--window") if window else get_monitor_config(deployment).window_ms
    windows = list_windows(deployment, window=length)[-last:]
    alerts = list_alerts(deployment, limit=50)
    if as_json:
        _render.emit_json(
            {"windows": [w.to_dict() for w in windows], "alerts": [a.to_dict() for a in alerts]}
        )
        return
    out = _render.console()
    if html is not None:
        from mloop.monitoring._watch import write_atomic

        write_atomic(html, render_html(deployment, windows, alerts, window=format_duration(length)))
        out.print(f"Wrote {html}")
    if not windows:
        out.print(f"No {format_duration(length)} windows of {deployment} yet; "
                  f"`mloop monitor run {deployment}` computes them.")  # fmt: skip
        return
    table = Table(
        title=f"{deployment}: {len(windows)} windows of {format_duration(length)}, "
        f"{_render.format_time(windows[0].start_ms)} → {_render.format_time(windows[-1].end_ms)}",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("trend", no_wrap=True)
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("latest", justify="right")
    for metric, title, _ in SERIES:
        values = series(windows, metric)
        present = [v for v in values if v is not None]
        if not present:
            continue
        table.add_row(
            title, Text(sparkline(values), style="cyan"), f"{min(present):.3g}",
            f"{max(present):.3g}", _metric_text(values[-1]),
        )  # fmt: skip
    out.print(table)
    firing = [a for a in alerts if a.firing]
    _print_alerts(firing, "firing")


@rules_app.command("apply")
def rules_apply(
    file: Annotated[Path, typer.Argument(help="YAML file of alert rules.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Create or update the alert rules of a YAML file (all checked before any is saved)."""
    from mloop.monitoring._store import apply_alert_rules

    outcome = apply_alert_rules(file)
    if as_json:
        _render.emit_json([{"name": name, "action": action} for name, action in outcome])
        return
    for name, action in outcome:
        _render.console().print(Text.assemble(f"{action.capitalize()} alert rule ", (name, "bold")))


@rules_app.command("list")
def rules_list(
    deployment: Annotated[str | None, typer.Option(help="Only this deployment's rules.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the alert rules."""
    from mloop.monitoring._store import list_alert_rules

    rules = list_alert_rules(deployment)
    if as_json:
        _render.emit_json([r.to_json() for r in rules])
        return
    if not rules:
        _render.console().print("No alert rules; `mloop monitor rules apply FILE` adds them.")
        return
    table = Table()
    for column in ("name", "deployment", "condition", "sinks"):
        table.add_column(column)
    for rule in rules:
        table.add_row(rule.name, rule.deployment, rule.describe(),
                      ", ".join(s.type for s in rule.sinks))  # fmt: skip
    _render.console().print(table)


@rules_app.command("delete")
def rules_delete(
    name: Annotated[str, typer.Argument(help="Rule name.", show_default=False)],
) -> None:
    """Delete an alert rule (its alerts stay in the history; a firing one is resolved)."""
    from mloop.monitoring._store import delete_alert_rule

    delete_alert_rule(name)
    _render.console().print(Text.assemble("Deleted alert rule ", (name, "bold")))


@monitor_app.command("alerts")
def alerts(
    deployment: Annotated[
        str | None, typer.Argument(help="Only this deployment's alerts.", show_default=False)
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    firing: Annotated[bool, typer.Option("--firing", help="Only alerts still firing.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="The newest this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List alerts, newest last."""
    from mloop.monitoring._store import list_alerts

    found = list_alerts(deployment, rule=rule, state="firing" if firing else None, limit=limit)
    if as_json:
        _render.emit_json([a.to_dict() for a in found])
        return
    if not found:
        _render.console().print("No alerts.")
        return
    table = Table()
    for column in ("state", "rule", "fired", "value", "message"):
        table.add_column(column)
    for alert in found:
        table.add_row(
            Text(alert.state, style="bold red" if alert.firing else "green"), alert.rule,
            _render.format_time(alert.fired_ms), f"{alert.value:.4g}", alert.message,
        )  # fmt: skip
    _render.console().print(table)


@monitor_app.command("config")
def config(
    deployment: DeploymentArg,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Monitor config YAML to store (omit to show the current one).", show_default=False
        ),
    ] = None,
) -> None:
    """Show or set how DEPLOYMENT's windows are computed (window, training data, thresholds)."""
    from mloop.monitoring._spec import MonitorConfig, load_yaml_documents
    from mloop.monitoring._store import get_monitor_config, save_monitor_config

    if file is None:
        _render.emit_json(get_monitor_config(deployment).model_dump(mode="json"))
        return
    documents = load_yaml_documents(file)
    if len(documents) != 1:
        raise InvalidInput(f"{file} must hold one monitor config")
    save_monitor_config(deployment, MonitorConfig.parse(documents[0], source=str(file)))
    _render.console().print(Text.assemble("Saved the monitor config of ", (deployment, "bold")))
