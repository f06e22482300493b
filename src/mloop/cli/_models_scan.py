"""``mloop models scan`` and ``mloop models import``.

``scan`` exits 0 when nothing unsafe was found, 1 when something was (a refused global, a
call of something that is not a name, content that does not parse — each listed), and 2
when the input cannot be read at all (missing path, permissions), like every command.
``import`` loads a third-party pickle through the same allow-list and re-saves it as a
model package in a safe format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import models_app
from mloop.errors import ConfigError

if TYPE_CHECKING:
    from mloop.models import ScanReport

UNSAFE = 1


@models_app.command("scan")
def scan(
    path: Annotated[
        Path,
        typer.Argument(
            help="A model file, an archive (zip, tar, 7z, PyTorch, .npz) or a folder.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every global a pickle-based model would import or call, without loading it.

    Exit 0 when everything is on the allow-list, 1 when anything is not (or cannot be
    parsed), 2 when PATH cannot be read.
    """
    from mloop.models import scan_path

    report = scan_path(path)
    if as_json:
        _render.emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.safe:
        raise typer.Exit(UNSAFE)


def _print_report(report: ScanReport) -> None:
    out = _render.console()
    pickles = sum(1 for scanned in report.files if scanned.globals)
    summary = f"{len(report.files)} file(s) scanned, {pickles} with pickled objects"
    if report.safe:
        out.print(
            Text.assemble(("Safe ", "green bold"), (report.path, "bold"), f": {summary}"),
            soft_wrap=True,
        )
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("file", "finding", "global", "reason", "at byte"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        name = f"{finding.module}.{finding.name}" if finding.module else ""
        count = f" (x{finding.count})" if finding.count > 1 else ""
        table.add_row(
            Text(finding.file),
            Text(finding.kind, style="red"),
            Text(name),
            Text(finding.reason + count),
            "" if finding.offset is None else str(finding.offset),
        )
    out.print(table)
    out.print(
        Text.assemble(
            ("Unsafe ", "red bold"),
            (report.path, "bold"),
            f": {len(report.findings)} finding(s); {summary}. Do not load it with pickle, "
            "joblib or torch.load.",
        ),
        soft_wrap=True,
    )


@models_app.command("import")
def import_model(
    path: Annotated[
        Path,
        typer.Argument(
            help="A pickle, joblib (optionally compressed) or object .npy file.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for the new model package."),
    ] = None,
    name: Annotated[
        str,
        typer.Option("--name", help="Name of the model inside a logged run (with --register)."),
    ] = "model",
    register: Annotated[
        str | None,
        typer.Option(
            "--register",
            help="Also log the package to a new run and register it under this model name.",
        ),
    ] = None,
) -> None:
    """Load a third-party pickle through the allow-list and re-save it in a safe format.

    The file is scanned first and unpickled only if clean, by an unpickler that resolves
    allow-listed globals only; the object is then saved as an mloop model package.
    """
    from mloop.models import restricted_load

    if output is None and register is None:
        raise typer.BadParameter("give --output DIR, --register NAME, or both")
    model = restricted_load(path)
    save_model, log_model = _package_functions()
    out = _render.console()
    if output is not None:
        save_model(model, output)
        out.print(
            Text.assemble(("Imported ", "green"), (str(path), "bold"), f" into {output}"),
            soft_wrap=True,
        )
    if register is not None:
        info = log_model(model, name, registered_model_name=register)
        version = getattr(info, "registered_version", None)
        out.print(
            Text.assemble(
                ("Registered ", "green"),
                (register, "bold"),
                f" version {version}" if version is not None else "",
                f" from {info.model_uri}",
            ),
            soft_wrap=True,
        )


def _package_functions() -> tuple[Any, Any]:
    """Part B's save_model/log_model (model packages); a clear error until they exist."""
    import mloop.models as models

    save_model = getattr(models, "save_model", None)
    log_model = getattr(models, "log_model", None)
    if save_model is None or log_model is None:
        raise ConfigError(
            "this build of mloop cannot write model packages yet (mloop.models.save_model is "
            "missing); upgrade mloop"
        )
    return save_model, log_model
