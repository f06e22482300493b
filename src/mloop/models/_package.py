"""Writing a package folder, and proving one is exactly what was written.

:func:`save_model` builds the package in a hidden temporary folder next to the target and
renames it into place, so a package is either complete or absent, never half-written.
:func:`verify_package` re-hashes every file and refuses a package with a changed, missing or
extra file, naming each; it runs on every load.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mloop.errors import Conflict, InvalidInput, NotFound, TamperedPackage
from mloop.models._files import digest_files, package_files, sha256_file
from mloop.models._flavors import Flavor, flavor_for, get_flavor
from mloop.models._manifest import MANIFEST_NAME, RESERVED_NAMES, Manifest
from mloop.models._requirements import pinned_requirements, python_version
from mloop.models._signature import ModelSignature
from mloop.models._signature_infer import infer_signature, schema_of


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    flavor: str | Flavor | None = None,
    signature: ModelSignature | None = None,
    input_example: Any = None,
) -> Manifest:
    """Write ``model`` as a package folder at ``path`` (which must not exist yet).

    The flavor is picked from the model's type unless named. Without a ``signature``, one is
    inferred from ``input_example`` (inputs) and the model's predictions on it (outputs).
    """
    return write_package(
        model, Path(path), flavor=flavor, signature=signature, input_example=input_example
    )


def write_package(
    model: Any,
    target: Path,
    *,
    flavor: str | Flavor | None = None,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    run_id: str | None = None,
) -> Manifest:
    """:func:`save_model`, plus the run that made the package (set by ``log_model``)."""
    if target.exists() or target.is_symlink():
        raise Conflict(f"{target} already exists; save the model to a new path")
    if not target.parent.is_dir():
        raise NotFound(f"folder {target.parent} does not exist; create it first")
    chosen = _pick_flavor(model, flavor)
    building = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:12]}"
    building.mkdir()
    try:
        flavor_data = chosen.save(model, building)
        try:
            json.dumps(flavor_data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"flavor {chosen.name!r} returned flavor data that is not JSON ({exc}); "
                "return only JSON values from Flavor.save"
            ) from None
        clash = RESERVED_NAMES & {p.name for p in building.iterdir()}
        if clash:
            raise InvalidInput(f"flavor {chosen.name!r} wrote reserved file(s) {sorted(clash)}")
        draft = Manifest(
            flavor=chosen.name,
            flavor_data=flavor_data,
            signature=signature,
            requirements=pinned_requirements(chosen.packages),
            python_version=python_version(),
            mloop_version=_mloop_version(),
            run_id=run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files=digest_files(building),
        )
        if signature is None and input_example is not None:
            draft = draft.model_copy(
                update={"signature": _infer(chosen, building, draft, input_example)}
            )
        (building / MANIFEST_NAME).write_bytes(draft.to_json())
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return draft


def _pick_flavor(model: Any, flavor: str | Flavor | None) -> Flavor:
    if flavor is None:
        return flavor_for(model)
    chosen = get_flavor(flavor) if isinstance(flavor, str) else flavor
    if not chosen.can_save(model):
        raise InvalidInput(
            f"flavor {chosen.name!r} cannot save a {type(model).__module__}."
            f"{type(model).__qualname__}"
        )
    return chosen


def _infer(flavor: Flavor, folder: Path, draft: Manifest, example: Any) -> ModelSignature:
    """Inputs from the example; outputs from what the saved model (read back through its
    flavor, so the package is proven loadable) predicts for it."""
    inputs = infer_signature(example).inputs
    predictor = flavor.load(folder, draft)
    from mloop.models._signature_enforce import enforce

    outputs = schema_of(predictor.predict(enforce(inputs, example)), role="output")
    return ModelSignature(inputs=inputs, outputs=outputs)


def _mloop_version() -> str:
    from mloop import __version__

    return __version__


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of the package folder at ``path``, parsed and checked (digests not)."""
    folder = Path(path)
    manifest_path = folder / MANIFEST_NAME
    if not folder.exists():
        raise NotFound(f"model package {folder} does not exist")
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is a file; a model package is a folder")
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise InvalidInput(
            f"{folder} is not a model package: it has no {MANIFEST_NAME}; create packages "
            "with mloop.models.save_model or mloop.log_model"
        )
    return Manifest.from_json(manifest_path.read_bytes(), source=str(manifest_path))


def package_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the manifest's bytes: it pins every file, so it names the package."""
    return sha256_file(Path(path) / MANIFEST_NAME)


def verify_package(path: str | os.PathLike[str]) -> Manifest:
    """Check every file of the package at ``path`` against its manifest; return the manifest.

    Raises :class:`~mloop.errors.TamperedPackage` naming each changed, missing or extra file.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    present = set(package_files(folder))
    problems: list[tuple[str, str]] = []
    for name, expected in sorted(manifest.files.items()):
        if name not in present:
            problems.append((name, "missing"))
        elif sha256_file(folder / name) != expected:
            problems.append((name, "changed"))
    problems.extend((name, "extra") for name in sorted(present - manifest.files.keys()))
    if problems:
        described = "; ".join(f"{name!r} {_PROBLEMS[kind]}" for name, kind in problems)
        raise TamperedPackage(
            f"model package {folder} does not match its manifest: {described}. Do not load "
            "it; log the model again from its source",
            details={
                "file": problems[0][0],
                "problems": [{"file": n, "problem": k} for n, k in problems],
            },
        )
    return manifest


_PROBLEMS = {
    "missing": "is missing",
    "changed": "was changed (its SHA-256 differs from the manifest's)",
    "extra": "is not listed in the manifest",
}
