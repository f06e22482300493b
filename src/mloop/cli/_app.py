"""The ``mloop`` command: the Typer app and :func:`main`.

Each command parses its arguments, calls one library function and renders the result;
:func:`mloop.cli._main.run` turns every expected failure into one line and an exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, Literal

import typer
import typer.main

from mloop.cli import (  # noqa: F401  (each module adds its commands to the shared groups)
    _agent,
    _apply,
    _deploy,
    _evaluate,
    _identity,
    _kek,
    _models_package,
    _models_registry,
    _models_scan,
    _models_signing,
    _monitor,
    _pipeline,
    _predictions,
    _render,
    _rollout,
    _security,
    _serve,
    _triggers,
)
from mloop.cli._data import data_app
from mloop.cli._db import db_app
from mloop.cli._demo import demo
from mloop.cli._experiments import experiments_app
from mloop.cli._groups import audit_app, keys_app, models_app, users_app
from mloop.cli._main import run
from mloop.cli._runs import runs_app
from mloop.errors import ConfigError

app = typer.Typer(
    name="mloop",
    help="mloop: track, compare and reproduce machine-learning runs, and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(experiments_app)
app.add_typer(runs_app)
app.add_typer(db_app)
app.add_typer(data_app)
app.add_typer(models_app)
app.add_typer(keys_app)
app.add_typer(users_app)
app.add_typer(audit_app)
app.command("demo")(demo)
for _module in (
    _serve,
    _deploy,
    _security,
    _predictions,
    _evaluate,
    _monitor,
    _pipeline,
    _rollout,
    _triggers,
    _agent,
    _apply,
):
    _module.register(app)


def _version(value: bool) -> None:
    if value:
        from mloop import __version__

        typer.echo(f"mloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """mloop: track, compare and reproduce machine-learning runs, and serve them."""


@app.command("server")
def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    auth: Annotated[
        Literal["auto", "on", "off"] | None,
        typer.Option(
            help="Require API keys (MLOOP_API_KEY on clients). Default: MLOOP_SERVER_AUTH, "
            "else auto = on unless --host is a loopback address."
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one line per request (off by default: it costs ~0.15 ms a request).",
        ),
    ] = False,
) -> None:
    """Run the tracking server (HTTP API over the configured stores)."""
    try:
        from mloop.server import serve
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "mloop.server":
            raise ConfigError(
                "this installation of mloop has no server (mloop.server is missing); "
                "reinstall it with `pip install -U mloop`"
            ) from exc
        if not missing.startswith("mloop"):
            raise ConfigError(
                f"`mloop server` needs the {missing!r} package; `pip install -U mloop` "
                "installs the server's dependencies"
            ) from exc
        raise
    serve(host, port, workers, auth, access_log=access_log)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mloop`` with ``argv`` (default: the process's arguments); return the exit code."""
    return run(_run_command(), argv, "mloop")


@cache
def _run_command() -> Callable[..., Any]:
    """The Click command tree's entry point, built from ``app`` on the first call and reused:
    building it inspects every command's signature (~0.1-0.2 s), which tests calling
    :func:`main` many times would otherwise pay on each call. Calling it directly skips only
    Typer's pretty-traceback hook, which ``pretty_exceptions_enable=False`` turns off."""
    return typer.main.get_command(app).main
