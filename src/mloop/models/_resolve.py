"""From a model URI to a package folder on this machine.

A local path is used where it is. A run's package is downloaded (through the tracking
backend, so embedded and server work the same) into a cache under ``MLOOP_HOME``, named by
the SHA-256 of its file listing: the same files are downloaded once, and a package whose
files change on the server (a signature added, say) gets a fresh copy. Downloads are
written to a hidden folder and renamed into place, and every path is kept inside it.
A registered version resolves through the registry to its source URI and carries the
package digest the registry recorded, which loading then insists on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import IntegrityError, InvalidInput, NotFound, UnsafePath
from mloop.models._uris import ModelsUri, ModelUri, PathUri, RunsUri, parse_model_uri

if TYPE_CHECKING:
    from mloop.tracking import ArtifactInfo, MloopClient

CHUNK = 1 << 20
CACHE_FOLDER = ("cache", "model-packages")


@dataclass(frozen=True)
class Located:
    """A package folder, and what the URI says about it beyond the folder."""

    uri: str
    path: Path
    registered_model: str | None = None
    registered_digest: str | None = None
    registered_version: Any = None
    cached: bool = False
    """The folder is a downloaded copy in the cache (so it can be fetched again)."""


def resolve_package(uri: str | os.PathLike[str]) -> Path:
    """A local folder holding the package ``uri`` names, downloaded into the cache when it
    lives in a run. Digests are *not* checked here: :func:`verify_package` does that."""
    return locate(uri).path


def locate(uri: str | os.PathLike[str]) -> Located:
    text = os.fspath(uri)
    parsed = parse_model_uri(text)
    if isinstance(parsed, ModelsUri):
        return _registered(text, parsed)
    return Located(text, _folder(parsed), cached=isinstance(parsed, RunsUri))


def forget_cached(located: Located) -> None:
    """Drop a cached download (one found damaged on disk), so the next ``locate`` fetches
    the package again from the tracking store."""
    if located.cached and located.path.parent == _cache_root():
        shutil.rmtree(located.path, ignore_errors=True)


def _folder(parsed: ModelUri) -> Path:
    if isinstance(parsed, PathUri):
        folder = parsed.path.expanduser().absolute()
        if not folder.exists():
            raise NotFound(f"model package {folder} does not exist")
        return folder
    if isinstance(parsed, RunsUri):
        return _download_run_package(parsed)
    raise InvalidInput(f"{parsed} cannot be the source of a registered model version")


def _registered(text: str, parsed: ModelsUri) -> Located:
    from mloop import registry
    from mloop.registry._remote import remote_registry

    remote = remote_registry()  # through a tracking server, ask its registry
    version = (remote or registry).resolve(parsed.name, parsed.ref)
    source = str(version.source)
    inner = parse_model_uri(source)
    if isinstance(inner, ModelsUri):
        raise InvalidInput(
            f"{text} resolves to {source}, another registry URI; a version's source must be "
            "a runs:/ URI or a package path"
        )
    return Located(
        text,
        _folder(inner),
        registered_model=parsed.name,
        registered_digest=str(version.package_digest),
        registered_version=version,
        cached=isinstance(inner, RunsUri),
    )


# -- runs -------------------------------------------------------------------------------------


def _client() -> MloopClient:
    from mloop.tracking import MloopClient, get_tracking_uri

    return MloopClient(get_tracking_uri())


def _download_run_package(uri: RunsUri) -> Path:
    client = _client()
    listing = _files_under(client, uri)
    cache = _cache_root()
    key = _listing_key(listing)
    target = cache / key if key else None
    if target is not None and target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".partial-{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        digests = {
            relative: _download(client, uri.run_id, info, partial, relative)
            for relative, info in listing
        }
        target = cache / _key(digests.items())
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent download of the same package
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def _files_under(client: MloopClient, uri: RunsUri) -> list[tuple[str, ArtifactInfo]]:
    """Every file logged under the package's path, with its path inside the package."""
    from mloop.artifacts import safe_relpath

    found: list[tuple[str, ArtifactInfo]] = []
    pending = [uri.path]
    prefix = uri.path + "/"
    while pending:
        for entry in client.list_artifacts(uri.run_id, pending.pop()):
            if not entry.path.startswith(prefix):
                raise UnsafePath(
                    f"the tracking store listed {entry.path!r} under {uri.path!r}; refusing"
                )
            if entry.is_dir:
                pending.append(entry.path)
                continue
            relative = entry.path[len(prefix) :]
            if safe_relpath(relative) != relative:
                raise UnsafePath(f"artifact path {entry.path!r} is not a plain relative path")
            found.append((relative, entry))
    if not found:
        raise NotFound(
            f"run {uri.run_id} has no model package under {uri.path!r}; "
            f"`mloop runs show {uri.run_id}` lists its artifacts"
        )
    return sorted(found, key=lambda item: item[0])


def _listing_key(listing: list[tuple[str, ArtifactInfo]]) -> str | None:
    if any(info.digest is None for _, info in listing):
        return None
    return _key((relative, str(info.digest)) for relative, info in listing)


def _key(entries: Any) -> str:
    lines = "".join(f"{relative}\0{digest}\n" for relative, digest in sorted(entries))
    return hashlib.sha256(lines.encode()).hexdigest()


def _download(
    client: MloopClient, run_id: str, info: ArtifactInfo, root: Path, relative: str
) -> str:
    target = root / relative
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafePath(f"artifact {info.path!r} would be written outside {root}")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with client.backend.open_artifact(run_id, info.path) as source, target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    got = digest.hexdigest()
    if info.digest is not None and got != info.digest:
        raise IntegrityError(
            f"artifact {info.path!r} of run {run_id} arrived with SHA-256 {got}, but the "
            f"tracking store lists {info.digest}; try again",
            details={"file": info.path},
        )
    return got


def _cache_root() -> Path:
    from mloop.config import get_settings

    return get_settings().home.expanduser().absolute().joinpath(*CACHE_FOLDER)
