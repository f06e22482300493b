"""``log_model``: a package stored as artifacts of a run, optionally registered.

The package is written to a temporary folder first (complete, with its manifest), then
uploaded file by file through the tracking API, so it lands in the run the same way
embedded and through a server. Registering records the manifest's digest: from then on
the registry can tell if anyone replaces the package under the version.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.artifacts import safe_relpath
from mloop.errors import InvalidInput
from mloop.models._manifest import Manifest
from mloop.models._package import package_digest, write_package
from mloop.models._signature import ModelSignature


@dataclass(frozen=True)
class ModelInfo:
    """Where a logged model went: ``model_uri`` loads it with :func:`load_model`."""

    model_uri: str
    run_id: str
    artifact_path: str
    package_digest: str
    manifest: Manifest
    registered_model_name: str | None = None
    registered_version: int | None = None

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def signature(self) -> ModelSignature | None:
        return self.manifest.signature


def log_model(
    model: Any,
    name: str,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Package ``model`` and store it under ``name/`` in the active run (a new run is
    started if none is active); with ``registered_model_name``, also register it as the
    next version of that model, linked to the run and the datasets it read."""
    import mloop

    artifact_path = safe_relpath(name)
    if artifact_path != name:
        raise InvalidInput(
            f"model name {name!r} is not a plain artifact path; use {artifact_path!r}"
        )
    active = mloop.active_run() or mloop.start_run()
    run_id = active.info.run_id
    with tempfile.TemporaryDirectory(prefix="mloop-model-") as scratch:
        folder = Path(scratch) / "package"
        manifest = write_package(
            model, folder, signature=signature, input_example=input_example, run_id=run_id
        )
        digest = package_digest(folder)
        mloop.log_artifacts(folder, artifact_path)
    source = f"runs:/{run_id}/{artifact_path}"
    version = None
    if registered_model_name is not None:
        version = _register(registered_model_name, source, run_id, digest)
    return ModelInfo(
        model_uri=source,
        run_id=run_id,
        artifact_path=artifact_path,
        package_digest=digest,
        manifest=manifest,
        registered_model_name=registered_model_name,
        registered_version=version,
    )


def _register(name: str, source: str, run_id: str, digest: str) -> int:
    """Register with no explicit dataset versions: given the run, the registry links the
    dataset versions the run recorded as training inputs (``mloop.log_input``), checking
    that each exists, which is the lineage wanted here."""
    from mloop import registry
    from mloop.registry._remote import remote_registry

    remote = remote_registry()  # through a tracking server, its registry holds the run
    if remote is not None:
        return remote.register_model_version(
            name, source, run_id=run_id, package_digest=digest
        ).version
    version = registry.register_model_version(name, source, run_id=run_id, package_digest=digest)
    return version.version
