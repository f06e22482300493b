"""``mloop models inspect``: a package's manifest, signature, files and integrity.

Exit 0 when every file matches the manifest, 1 when the package was tampered with (the
problem is shown), 2 when the URI cannot be resolved or the manifest cannot be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import models_app

if TYPE_CHECKING:
    from mloop.models._inspect import PackageInspection
    from mloop.models._signature import ColumnSchema, TensorSchema

TAMPERED = 1


@models_app.command("inspect")
def inspect(
    uri: Annotated[
        str,
        typer.Argument(
            help="runs:/RUN_ID/NAME, models:/NAME/VERSION, models:/NAME@ALIAS or a folder.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a model package's manifest, signature and files, and verify every digest.

    Exit 0 when the package is intact, 1 when a file was changed, removed or added.
    """
    from mloop.models._inspect import inspect_package

    inspection = inspect_package(uri)
    if as_json:
        _render.emit_json(inspection.to_dict())
    else:
        _render.console().print(_view(inspection))
    if not inspection.verified:
        raise typer.Exit(TAMPERED)


def _view(inspection: PackageInspection) -> Group:
    manifest = inspection.manifest
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column(overflow="fold")
    status = (
        Text("verified: every file matches the manifest", style="green")
        if inspection.verified
        else Text(f"TAMPERED: {inspection.problem}", style="red bold")
    )
    rows = [
        ("package", Text(inspection.uri)),
        ("folder", Text(str(inspection.path))),
        ("status", status),
        ("digest", Text(inspection.package_digest)),
        ("flavor", Text(manifest.flavor)),
        ("format", Text(str(manifest.format_version))),
        ("run", Text(manifest.run_id or "—")),
        ("created", Text(manifest.created_at)),
        ("python", Text(manifest.python_version)),
        ("requires", Text(", ".join(manifest.requirements) or "—")),
        ("signed", Text("yes (mloop-model.sig)" if inspection.signed else "no")),
    ]
    for key, value in rows:
        about.add_row(key, value)
    parts: list[Table | Text] = [about]
    if manifest.signature is not None:
        parts += [Text(), _schema_table("inputs", manifest.signature.inputs)]
        if manifest.signature.outputs is not None:
            parts += [Text(), _schema_table("outputs", manifest.signature.outputs)]
    files = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="files", title_justify="left"
    )
    files.add_column("file", overflow="fold")
    files.add_column("sha256")
    for name, digest in sorted(manifest.files.items()):
        files.add_row(Text(name), digest)
    parts += [Text(), files]
    return Group(*parts)


def _schema_table(title: str, schema: ColumnSchema | TensorSchema) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left"
    )
    if schema.kind == "columns":
        for column in ("column", "type", "nullable"):
            table.add_column(column)
        for spec in schema.columns:
            table.add_row(Text(spec.name), spec.type, "yes" if spec.nullable else "no")
        return table
    for column in ("tensor", "dtype", "shape", "nullable"):
        table.add_column(column)
    table.add_row(
        Text(schema.name or "—"),
        schema.dtype,
        str(list(schema.shape)),
        "yes" if schema.nullable else "no",
    )
    return table
