"""`mloop export`: what is live, written as documents that apply back as unchanged.

Each object becomes one document with the kind's canonical spec (defaults left out,
aliases already resolved to the version numbers that are live). Into a folder, each goes
to ``<kinds>/<name>.yaml`` (``deployments/fraud.yaml``), written atomically; files of
objects that no longer exist are left alone, since export never deletes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mloop.errors import InvalidInput, UnsafePath
from mloop.iac._documents import API_VERSION
from mloop.iac._kinds import Kind, get_kind, kinds

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Exported:
    """The documents exported, the YAML stream of all of them, and the files written."""

    documents: tuple[dict[str, Any], ...]
    text: str
    files: tuple[Path, ...]


def export_documents(kinds_wanted: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every live object of ``kinds_wanted`` (default: every supported kind) as a document,
    by kind then name. Asking for a kind that is not supported yet is an error; by default
    such kinds are left out."""
    selected: list[Kind]
    if kinds_wanted:
        selected = []
        for name in dict.fromkeys(kinds_wanted):
            kind = get_kind(name)
            reason = kind.unavailable()
            if reason is not None:
                raise InvalidInput(reason)
            selected.append(kind)
    else:
        selected = [k for k in kinds().values() if k.unavailable() is None]
    documents = []
    for kind in selected:
        for name, obj in kind.list_live():
            documents.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": kind.name,
                    "metadata": {"name": name},
                    "spec": kind.dump(obj),
                }
            )
    return documents


def export(
    directory: str | Path | None = None, *, kinds_wanted: Sequence[str] | None = None
) -> Exported:
    """Export the live state (see the module doc); without ``directory`` nothing is written
    and ``text`` holds the documents as one YAML stream."""
    documents = export_documents(kinds_wanted)
    text = documents_yaml(documents)
    files: list[Path] = []
    if directory is not None:
        root = Path(directory)
        if root.exists() and not root.is_dir():
            raise InvalidInput(f"{root} is a file; give a folder to export into")
        for document in documents:
            path = root / folder_of(document["kind"]) / _file_name(document["metadata"]["name"])
            _write_atomically(path, documents_yaml([document]))
            files.append(path)
    return Exported(tuple(documents), text, tuple(files))


def documents_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """Documents as a YAML stream (``---`` between them), keys in document order."""
    return yaml.safe_dump_all(
        documents,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        explicit_start=True,
    )


def folder_of(kind: str) -> str:
    """``PipelineSchedule`` → ``pipeline-schedules``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + "s"


def _file_name(name: str) -> str:
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise UnsafePath(
            f"object name {name!r} cannot be a file name inside the export folder; export to "
            "stdout (leave out -o) instead"
        )
    return f"{name}.yaml"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["Exported", "documents_yaml", "export", "export_documents", "folder_of"]
