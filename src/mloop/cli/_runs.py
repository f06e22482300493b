"""``mloop runs …``: find, inspect, compare, reproduce, delete runs and fetch artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

import mloop
from mloop.cli import _render
from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.tracking import ArtifactInfo, MloopClient, Run

runs_app = typer.Typer(
    name="runs",
    help="List, show, compare, reproduce and delete runs; download their artifacts.",
    no_args_is_help=True,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunId = Annotated[str, typer.Argument(help="The run's id (`mloop runs list` shows them).")]


@runs_app.command("list")
def list_runs(
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Only runs of this experiment (by name)."),
    ] = None,
    filter_string: Annotated[
        str,
        typer.Option(
            "--filter",
            "-f",
            help="Search filter, e.g. \"metrics.f1 > 0.9 and params.model = 'rf'\".",
        ),
    ] = "",
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by", "-o", help='Sort key, e.g. "metrics.f1 DESC"; repeat for more keys.'
        ),
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max", "-n", min=1, help="Show at most this many runs.")
    ] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List runs of every experiment (or one), newest first unless --order-by says otherwise."""
    found = mloop.search_runs(
        experiment_names=[experiment] if experiment else None,
        search_all_experiments=experiment is None,
        filter_string=filter_string,
        order_by=order_by or None,
        max_results=max_results,
    )
    assert isinstance(found, list)
    if as_json:
        _render.emit_json([run.to_dict() for run in found])
        return
    out = _render.console()
    if not found:
        out.print("No runs match." if filter_string else "No runs yet.")
        return
    names = {e.experiment_id: e.name for e in mloop.MloopClient().search_experiments()}
    out.print(_render.runs_table(found, names, width=out.width, order_by=order_by or ()))


@runs_app.command("show")
def show_run(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Show one run: info, params, latest metrics, tags, artifacts and inputs."""
    details = _details(mloop.MloopClient(), run_id)
    if as_json:
        _render.emit_json(details.to_dict())
    else:
        _render.console().print(_render.run_details(details))


def _details(client: MloopClient, run_id: str) -> _render.RunDetails:
    run = client.get_run(run_id)
    return _render.RunDetails(
        run=run,
        experiment=client.get_experiment(run.info.experiment_id),
        artifacts=_all_artifacts(client, run_id),
        inputs=client.backend.get_inputs(run_id),
    )


def _all_artifacts(client: MloopClient, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
    files: list[ArtifactInfo] = []
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            files.extend(_all_artifacts(client, run_id, entry.path))
        else:
            files.append(entry)
    return files


@runs_app.command("compare")
def compare_runs(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: JsonFlag = False,
) -> None:
    """Put runs side by side: params and metrics, with the differences marked."""
    if len(run_ids) < 2:
        raise InvalidInput("give at least two run ids to compare")
    client = mloop.MloopClient()
    runs: list[Run] = [client.get_run(run_id) for run_id in run_ids]
    rows = _render.compare_rows(runs)
    if as_json:
        _render.emit_json(_render.comparison_json(runs, rows))
    else:
        _render.console().print(_render.comparison_table(runs, rows))


@runs_app.command("reproduce")
def reproduce_run(run_id: RunId) -> None:
    """Print the steps that recreate a run: code version, environment, command."""
    from mloop.tracking._capture import reproduce_steps

    client = mloop.MloopClient()
    run = client.get_run(run_id)
    paths = [a.path for a in _all_artifacts(client, run_id)]
    for line in reproduce_steps(run.data.tags, paths, run_id):
        typer.echo(line)


@runs_app.command("delete")
def delete_run(
    run_id: RunId,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge", help="Remove the run and everything logged to it for good (no restore)."
        ),
    ] = False,
) -> None:
    """Delete a run: hidden from searches and restorable, or with --purge gone for good."""
    client = mloop.MloopClient()
    if purge:
        purge_run = getattr(client.backend, "purge_run", None)
        if purge_run is None:
            raise InvalidInput(
                "this tracking store cannot purge runs; run `mloop runs delete` without --purge, "
                "or purge on the machine that holds the database"
            )
        purge_run(run_id)
        _render.console().print(Text(f"Purged run {run_id}."))
        return
    client.delete_run(run_id)
    _render.console().print(
        Text(f"Deleted run {run_id}; `mloop runs restore {run_id}` brings it back.")
    )


@runs_app.command("restore")
def restore_run(run_id: RunId) -> None:
    """Bring back a run deleted without --purge."""
    mloop.MloopClient().restore_run(run_id)
    _render.console().print(Text(f"Restored run {run_id}."))


@runs_app.command("download-artifact")
def download_artifact(
    run_id: RunId,
    path: Annotated[str, typer.Argument(help="Artifact file or folder, e.g. model/model.pkl.")],
    dest: Annotated[
        Path, typer.Option("--dest", "-d", help="Folder to write into (created if missing).")
    ] = Path("."),
) -> None:
    """Copy a run's artifact (file or folder) to a local folder."""
    local = mloop.MloopClient().download_artifacts(run_id, path, dest)
    _render.console().print(Text(f"Downloaded {path} to {local}"))
