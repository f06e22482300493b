"""`mloop agent run` and `mloop agent tick`: the controller of rollouts and triggers.

``run`` ticks until stopped: Ctrl-C (or SIGTERM, as a container runtime sends) lets the
tick in progress finish, releases the leader lease so another replica takes over at
once, and exits 0; a second Ctrl-C stops at once. ``tick`` does one round, for cron.
Several agents may run against one metadata store: one leads, the others wait.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from mloop.cli import _render

if TYPE_CHECKING:
    from mloop.agent import TickReport

agent_app = typer.Typer(
    name="agent",
    help="The controller: advances rollouts and fires retraining triggers; safe to run as "
    "several replicas (one leads, through a lease in the metadata store).",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
HolderOption = Annotated[
    str | None,
    typer.Option(
        "--holder",
        help="This agent's name in the lease and the audit log (default: agent@HOST:PID).",
        show_default=False,
    ),
]
_EVENT_STYLE = {
    "step": "cyan",
    "promoted": "green",
    "rolled_back": "yellow",
    "aborted": "yellow",
    "failed": "red",
}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``mloop`` app."""
    app.add_typer(agent_app)


def _seconds(text: str, what: str) -> float:
    """``5s``, ``2m``, ``500ms`` or a number of seconds; ``0`` allowed."""
    from mloop.agent._trigger_spec import duration_ms
    from mloop.errors import InvalidInput

    if text.strip() in ("0", "0s", "0.0"):
        return 0.0
    try:
        return duration_ms(text, what) / 1000
    except InvalidInput as exc:
        raise InvalidInput(f"--{what}: {exc.message}") from None


@agent_app.command("run")
def run(
    interval: Annotated[
        str, typer.Option("--interval", help="Time between ticks: 5s, 1m, …")
    ] = "5s",
    max_ticks: Annotated[
        int | None,
        typer.Option("--max-ticks", min=1, help="Stop after this many ticks.", show_default=False),
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option(
            "--lease",
            help="How long a term of leadership lasts without renewal (default: three "
            "intervals, at least 30s).",
            show_default=False,
        ),
    ] = None,
    holder: HolderOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line per tick instead of text.")
    ] = False,
) -> None:
    """Tick until stopped (Ctrl-C finishes the current tick and hands the lease over)."""
    from mloop.agent import run_agent
    from mloop.agent._tick import default_holder

    every = _seconds(interval, "interval")
    lease_s = None if ttl is None else _seconds(ttl, "lease")
    who = holder or default_holder()
    stop = threading.Event()
    out = _render.console()
    state: dict[str, Any] = {"leader": None}

    def stop_gently(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # asked twice: stop now
            raise KeyboardInterrupt
        stop.set()
        if not as_json:
            out.print(Text("stopping after this tick… (Ctrl-C again to stop at once)", style="dim"))

    def report(tick: TickReport) -> None:
        if as_json:  # one line per tick, for log collectors
            sys.stdout.write(json.dumps(tick.to_dict(), default=str) + "\n")
            sys.stdout.flush()
            return
        _print_tick(tick, state, verbose=False)

    previous = {sig: signal.signal(sig, stop_gently) for sig in (signal.SIGINT, signal.SIGTERM)}
    if not as_json:
        out.print(
            Text.assemble(
                ("mloop agent ", "bold"),
                f"{who}: ticking every {interval}",
                f" for {max_ticks} ticks" if max_ticks else "",
                " (Ctrl-C to stop)",
            )
        )
    try:
        ticks = run_agent(
            interval_s=every,
            max_ticks=max_ticks,
            holder=who,
            ttl_s=lease_s,
            stop=stop,
            on_tick=report,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_json:
        out.print(Text(f"Stopped after {ticks} tick{'s' if ticks != 1 else ''}; lease released."))


@agent_app.command("tick")
def tick(holder: HolderOption = None, as_json: JsonFlag = False) -> None:
    """One round: take the lead if free, advance rollouts, fire due triggers, and hand the
    lead back (for cron)."""
    from mloop.agent import release_lease
    from mloop.agent import tick as one_tick
    from mloop.agent._tick import default_holder

    who = holder or default_holder()
    report = one_tick(holder=who)
    if report.leader:  # done: the next cron run (any machine) may lead at once
        release_lease(who)
    if as_json:
        _render.emit_json(report.to_dict())
        return
    _print_tick(report, {"leader": None}, verbose=True)


@agent_app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Who leads the agents, and until when."""
    from mloop._ids import now_ms
    from mloop.agent import get_lease

    lease = get_lease()
    if as_json:
        _render.emit_json(None if lease is None else lease.to_dict())
        return
    if lease is None:
        _render.console().print("No agent has run against this store yet.")
        return
    live = lease.expires_ms > now_ms()
    _render.console().print(
        Text.assemble(
            (lease.holder, "bold"),
            " leads" if live else " led",
            f" (term {lease.token}, since {_render.format_time(lease.acquired_ms)}, ",
            f"until {_render.format_time(lease.expires_ms)})" if live else "expired)",
        )
    )


def _print_tick(report: TickReport, state: dict[str, Any], *, verbose: bool) -> None:
    out = _render.console()
    when = _render.format_time(report.now_ms)
    if report.leader != state["leader"] or verbose:
        if report.leader:
            out.print(
                Text(
                    f"{when} leading (term {report.lease.token if report.lease else '?'})",
                    style="green",
                )
            )
        else:
            who = report.leader_holder or "another agent"
            out.print(Text(f"{when} standing by: {who} leads", style="dim"))
        state["leader"] = report.leader
    for event in report.events:
        out.print(
            Text.assemble(
                f"{when} ",
                (event.kind.replace("_", " "), _EVENT_STYLE.get(event.kind, "")),
                f" {event.deployment} ",
                (event.rollout_id[:12], "bold"),
                f" {event.message}",
            )
        )
    for firing in report.firings:
        status = getattr(firing, "status", "?")
        trigger = getattr(firing, "trigger", "?")
        reason = getattr(firing, "reason", None)
        out.print(Text(f"{when} trigger {trigger}: {status}" + (f" ({reason})" if reason else "")))
    for error in report.errors:
        out.print(Text(f"{when} error: {error}", style="red"))
    if verbose and report.leader and not (report.events or report.firings or report.errors):
        out.print(Text("nothing was due", style="dim"))
