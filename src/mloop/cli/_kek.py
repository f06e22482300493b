"""``mloop keys kek`` and ``mloop keys rewrap``: key-encryption keys for the artifact store.

``kek`` writes a new key file and prints only its id — the key itself is never shown.
``rewrap`` rotates: with ``MLOOP_KEK_FILE`` pointing at the new key and ``--old-kek`` at
the retired one, every blob's data key is re-wrapped; contents are not re-encrypted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import keys_app


@keys_app.command("kek")
def kek(
    path: Annotated[
        Path,
        typer.Argument(help="File to create (mode 0600); never overwritten.", show_default=False),
    ],
) -> None:
    """Create a key-encryption key for encrypting artifacts at rest (use: MLOOP_KEK_FILE=PATH)."""
    from mloop.artifacts import generate_kek_file

    key_id = generate_kek_file(path)
    out = _render.console()
    out.print(
        Text.assemble("Key-encryption key ", (key_id, "bold"), f" written to {path}"),
        soft_wrap=True,
    )
    out.print(
        f"Set MLOOP_KEK_FILE={path} to encrypt new artifacts. Back the file up and keep it "
        "secret: artifacts encrypted under it cannot be read without it.",
        soft_wrap=True,
    )


@keys_app.command("rewrap")
def rewrap(
    old_kek: Annotated[
        str | None,
        typer.Option(
            "--old-kek",
            help="The retired KEK file (or provider URI) whose data keys to re-wrap.",
            show_default=False,
        ),
    ] = None,
    encrypt_plaintext: Annotated[
        bool,
        typer.Option(
            "--encrypt-plaintext", help="Also encrypt blobs stored before encryption was on."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Re-wrap every artifact's data key under the KEK in MLOOP_KEK_FILE (key rotation)."""
    from mloop.artifacts import artifact_store_for, open_key_provider, rewrap_store

    store = artifact_store_for()
    previous = open_key_provider(old_kek) if old_kek else None
    report = rewrap_store(store, previous=previous, encrypt_plaintext=encrypt_plaintext)
    if as_json:
        _render.emit_json(report.to_dict())
        return
    _render.console().print(
        f"{store.root}: {report.rewrapped} re-wrapped, {report.encrypted} encrypted, "
        f"{report.current} already current, {report.plaintext} left as plaintext",
        soft_wrap=True,
    )
