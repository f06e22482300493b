"""Model URIs: ``runs:/RUN_ID/path``, ``models:/NAME/VERSION``, ``models:/NAME@alias``, or a
local folder (a plain path or ``file://``). Parsing is strict and total: any string either
gives one of these or an :class:`~mloop.errors.InvalidInput` that shows the valid forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mloop.errors import InvalidInput, UnsafePath

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,255}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")
FORMS = (
    "runs:/RUN_ID/NAME, models:/NAME/VERSION, models:/NAME@ALIAS, or the path of a package folder"
)


@dataclass(frozen=True)
class RunsUri:
    """A package logged as artifacts of a run, under ``path``."""

    run_id: str
    path: str

    def __str__(self) -> str:
        return f"runs:/{self.run_id}/{self.path}"


@dataclass(frozen=True)
class ModelsUri:
    """A registered model version: ``ref`` is a version number ("3") or "@alias"."""

    name: str
    ref: str

    def __str__(self) -> str:
        separator = "" if self.ref.startswith("@") else "/"
        return f"models:/{self.name}{separator}{self.ref}"


@dataclass(frozen=True)
class PathUri:
    """A package folder on this machine."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


ModelUri = RunsUri | ModelsUri | PathUri


def parse_model_uri(uri: str) -> ModelUri:
    """The kind of model ``uri`` names, checked; see :data:`FORMS`."""
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"model URI {uri!r} is empty; give {FORMS}")
    if "\x00" in uri:
        raise InvalidInput(f"model URI {uri!r} contains a NUL byte")
    match = _SCHEME.match(uri)
    if match is None:
        return PathUri(Path(uri))
    scheme = match.group(1).lower()
    if scheme == "runs":
        return _runs(uri)
    if scheme == "models":
        return _models(uri)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise InvalidInput(f"{uri!r} is not a local file URI; use file:///absolute/path")
        return PathUri(Path(unquote(parts.path)))
    raise InvalidInput(f"model URI {uri!r} has unknown scheme {scheme!r}; give {FORMS}")


def _runs(uri: str) -> RunsUri:
    rest = uri[len("runs:") :]
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidInput(f"{uri!r} is not a runs URI; write runs:/RUN_ID/NAME")
    run_id, _, path = rest[1:].partition("/")
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidInput(f"{uri!r} has no valid run id; write runs:/RUN_ID/NAME")
    if not path:
        raise InvalidInput(
            f"{uri!r} names no artifact path; write runs:/{run_id}/NAME, with the name given "
            "to log_model"
        )
    from mloop.artifacts import safe_relpath

    try:
        return RunsUri(run_id, safe_relpath(path))
    except UnsafePath as exc:
        raise InvalidInput(f"{uri!r}: {exc.message}") from None


def _models(uri: str) -> ModelsUri:
    rest = uri[len("models:") :]
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidInput(f"{uri!r} is not a models URI; write models:/NAME/VERSION or @ALIAS")
    rest = rest[1:]
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not _ALIAS.fullmatch(alias):
            raise InvalidInput(
                f"{uri!r} has an invalid alias {alias!r}; aliases are letters, digits, '_', "
                "'-' and '.'"
            )
        ref = f"@{alias}"
    else:
        name, _, version = rest.rpartition("/")
        if not _VERSION.fullmatch(version):
            raise InvalidInput(
                f"{uri!r} has no version number; write models:/NAME/VERSION (e.g. "
                "models:/iris/3) or models:/NAME@ALIAS"
            )
        ref = version
    if not name or "/" in name or name != name.strip():
        raise InvalidInput(f"{uri!r} has an invalid model name {name!r}")
    return ModelsUri(name, ref)
