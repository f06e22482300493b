"""Making packages that an attacker would make: files swapped in behind a manifest that
still lists the right digests (as if the manifest were forged too), or skops files edited
by hand."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mloop.models._manifest import MANIFEST_NAME


def swap_file(package: Path, name: str, data: bytes) -> None:
    """Replace ``name`` and re-list its digest, so ``verify_package`` passes: what the
    flavor's own checks must then catch."""
    (package / name).write_bytes(data)
    manifest = json.loads((package / MANIFEST_NAME).read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (package / MANIFEST_NAME).write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n")


def edit_skops_schema(data: bytes, edit: Callable[[Any], None]) -> bytes:
    """The skops file ``data`` with its ``schema.json`` changed in place by ``edit``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "schema.json":
                schema = json.loads(content)
                edit(schema)
                content = json.dumps(schema).encode()
            target.writestr(item, content)
    return out.getvalue()


def nodes(tree: Any) -> list[dict[str, Any]]:
    """Every node (a dict with ``__loader__``) of a skops schema."""
    found, pending = [], [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                found.append(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found
