"""`mloop serve`: the inference server over a deployment or a model URI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from mloop.errors import InvalidInput


def serve(
    target: Annotated[
        str,
        typer.Argument(
            metavar="DEPLOYMENT_OR_MODEL_URI",
            help="A deployment name, or a model to serve as an implicit deployment: "
            "models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH or a package folder.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Off loopback, API keys are required unless "
            "MLOOP_SERVER_AUTH=off or the deployment's guards say otherwise."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(help="Server processes (each loads the models; they share the port).")
    ] = 1,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (request logs are JSON lines on stdout).")
    ] = "warning",
    prediction_log: Annotated[
        bool,
        typer.Option(
            "--prediction-log/--no-prediction-log",
            help="Log every answered request durably before answering (MLOOP_PREDICTION_LOG_URI).",
        ),
    ] = True,
    log_fsync: Annotated[
        str,
        typer.Option(
            help="How the prediction log survives a crash. Every answer is in the "
            "write-ahead file before it is sent, so a killed server loses nothing; "
            "interval: fsync every second (a power cut loses at most the last second); "
            "always: each answer is on disk before it is sent (survives a power cut; "
            "concurrent answers share an fsync); group: same as always; off: the kernel "
            "flushes when it likes."
        ),
    ] = "interval",
) -> None:
    """Serve a model over the Open Inference Protocol (KServe V2) and TF-Serving JSON."""
    if not 0 < port < 65536:
        raise InvalidInput(f"--port {port} is not a TCP port (1-65535)")
    if workers < 1:
        raise InvalidInput(f"--workers {workers} must be at least 1")
    from mloop.serving._predlog_wal import SYNC_POLICIES  # late: `mloop --help` stays fast

    if log_fsync not in SYNC_POLICIES:
        raise InvalidInput(f"--log-fsync {log_fsync!r} is not one of {', '.join(SYNC_POLICIES)}")
    from mloop.cli._render import spinner
    from mloop.serving._app import serve as run

    def ready(url: str) -> None:
        typer.echo(f"serving {target} on {url} (Ctrl-C to stop)", err=True)

    run(
        target,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_predictions=prediction_log,
        log_fsync=log_fsync,
        loading=spinner,
        on_ready=ready,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands and groups to the root ``mloop`` app."""
    app.command("serve")(serve)


def main(argv: Sequence[str]) -> int:
    """``mloop serve ARGV…`` on its own, with the CLI's error handling (see mloop.cli.main)."""
    import typer.main

    from mloop.cli._main import run

    alone = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    alone.command()(serve)
    return run(typer.main.get_command(alone).main, argv, "mloop serve")
