"""``mloop keys generate``, ``mloop models sign`` and ``mloop models verify``.

``verify`` exits 0 when the package verified, 1 when it did not (the reason on stderr, one
line), and 2 for bad input (a missing key file, a malformed URI), like every command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from mloop.cli import _render
from mloop.cli._groups import keys_app, models_app

NOT_VERIFIED = 1


@keys_app.command("generate")
def generate(
    directory: Annotated[
        Path,
        typer.Argument(help="Folder for the key pair (created if missing).", show_default=False),
    ],
    name: Annotated[str, typer.Option("--name", help="File name of the pair.")] = "mloop-signing",
    curve: Annotated[
        str, typer.Option("--curve", help="EC curve: P-256, P-384 or P-521.")
    ] = "P-256",
) -> None:
    """Create a signing key pair: NAME.key (private, mode 0600) and NAME.pub to share."""
    from mloop.models import generate_signing_key

    private_path, public_path = generate_signing_key(directory, name=name, curve=curve)
    out = _render.console()
    out.print(
        Text.assemble(("Private key ", ""), (str(private_path), "bold"), " (keep secret)"),
        soft_wrap=True,
    )
    out.print(
        Text.assemble(("Public key  ", ""), (str(public_path), "bold"), " (share it)"),
        soft_wrap=True,
    )


@models_app.command("sign")
def sign(
    uri: Annotated[
        str,
        typer.Argument(
            help="A package folder, runs:/RUN_ID/NAME or models:/NAME/VERSION (or @ALIAS).",
            show_default=False,
        ),
    ],
    key: Annotated[Path, typer.Option("--key", help="Private key (PEM).", show_default=False)],
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", help="Signing certificate for KEY (certificate mode)."),
    ] = None,
    chain: Annotated[
        list[Path] | None,
        typer.Option("--chain", help="Intermediate CA certificates to embed (repeatable)."),
    ] = None,
) -> None:
    """Sign a model package; the Sigstore bundle is written to mloop-model.sig inside it."""
    from mloop.models import sign_package

    signature = sign_package(uri, key, certificate=certificate, certificate_chain=list(chain or []))
    _render.console().print(
        Text.assemble(("Signed ", ""), (uri, "bold"), f": {signature}"), soft_wrap=True
    )


@models_app.command("verify")
def verify(
    uri: Annotated[
        str,
        typer.Argument(
            help="A package folder, runs:/RUN_ID/NAME or models:/NAME/VERSION (or @ALIAS).",
            show_default=False,
        ),
    ],
    trusted_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-keys",
            help="Folder of trusted public keys (*.pub), or one key file (repeatable).",
        ),
    ] = None,
    ca: Annotated[
        list[Path] | None,
        typer.Option("--ca", help="The organisation's CA certificate to pin (repeatable)."),
    ] = None,
    identity: Annotated[
        list[str] | None,
        typer.Option(
            "--identity",
            help="A signer identity to accept in certificate mode: e-mail, URI, DNS name or "
            "common name (repeatable).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify a package's signature and every file it covers. Exit 1 if not verified."""
    from mloop.errors import UntrustedSignature
    from mloop.models import verify_signature

    try:
        info = verify_signature(
            uri,
            list(trusted_keys or []),
            trusted_ca=list(ca or []),
            allowed_identities=list(identity or []),
        )
    except UntrustedSignature as exc:
        if as_json:
            _render.emit_json({"verified": False, "message": exc.message, **exc.details})
        sys.stdout.flush()
        sys.stderr.write(f"not verified: {_render.one_line(exc.message)}\n")
        raise typer.Exit(NOT_VERIFIED) from None
    if as_json:
        _render.emit_json({"verified": True, **info.to_dict()})
        return
    signer = info.subject or f"key {info.key_id[:16]} ({info.trusted_by})"
    _render.console().print(
        Text.assemble(
            ("Verified ", "green"),
            (uri, "bold"),
            f": {len(info.digests)} file(s) signed by {signer}, digest {info.root_digest[:16]}",
        ),
        soft_wrap=True,
    )
