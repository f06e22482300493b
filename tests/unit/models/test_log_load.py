"""log_model / load_model through the tracking API, embedded and through a live server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mloop
from mloop.errors import InvalidInput, NotFound, TamperedPackage
from mloop.models import ModelInfo, resolve_package
from mloop.models._manifest import MANIFEST_NAME
from mloop.models._package import package_digest


def _client() -> mloop.MloopClient:
    return mloop.MloopClient(mloop.get_tracking_uri())


def _files(run_id: str, folder: str) -> set[str]:
    found: set[str] = set()
    pending = [folder]
    while pending:
        for entry in _client().list_artifacts(run_id, pending.pop()):
            (pending.append(entry.path) if entry.is_dir else found.add(entry.path))
    return found


def test_round_trip_through_a_run(
    tracking_uri: str | None, iris_forest: Any, iris: tuple[Any, Any]
) -> None:
    x = iris[0]
    with mloop.start_run() as run:
        info = mloop.log_model(iris_forest, "classifier", input_example=x.head())
    run_id = run.info.run_id
    assert isinstance(info, ModelInfo)
    assert info.model_uri == f"runs:/{run_id}/classifier"
    assert info.run_id == run_id
    assert info.registered_version is None
    assert _files(run_id, "classifier") == {"classifier/mloop-model.json", "classifier/model.skops"}

    loaded = mloop.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(x), iris_forest.predict(x))
    np.testing.assert_array_equal(loaded.predict_proba(x), iris_forest.predict_proba(x))
    assert loaded.manifest.run_id == run_id
    assert package_digest(loaded.path) == info.package_digest
    home = Path(os.environ["MLOOP_HOME"]).absolute()
    assert loaded.path.parent == home / "cache" / "model-packages"
    assert mloop.load_model(info.model_uri).path == loaded.path  # downloaded once


def test_log_model_without_an_active_run_starts_one(iris_forest: Any) -> None:
    assert mloop.active_run() is None
    info = mloop.log_model(iris_forest, "model")
    active = mloop.active_run()
    assert active is not None
    assert active.info.run_id == info.run_id
    mloop.end_run()


def _logged(iris_forest: Any) -> ModelInfo:
    with mloop.start_run():
        return mloop.log_model(iris_forest, "model")


def test_a_replaced_artifact_is_refused_naming_the_file(iris_forest: Any) -> None:
    info = _logged(iris_forest)
    mloop.load_model(info.model_uri)  # cached while intact
    _client().log_bytes(info.run_id, b"not the model", "model/model.skops")
    with pytest.raises(TamperedPackage, match=r"'model\.skops' was changed"):
        mloop.load_model(info.model_uri)


def test_an_added_artifact_is_refused_naming_the_file(iris_forest: Any) -> None:
    info = _logged(iris_forest)
    _client().log_bytes(info.run_id, b"import os", "model/sitecustomize.py")
    with pytest.raises(TamperedPackage, match=r"'sitecustomize\.py' is not listed"):
        mloop.load_model(info.model_uri)


def test_resolve_package_downloads_without_checking(iris_forest: Any) -> None:
    info = _logged(iris_forest)
    _client().log_bytes(info.run_id, b"changed", "model/model.skops")
    folder = resolve_package(info.model_uri)
    assert (folder / "model.skops").read_bytes() == b"changed"


def test_unknown_runs_and_names_are_not_found(iris_forest: Any) -> None:
    info = _logged(iris_forest)
    with pytest.raises(NotFound, match="no model package under 'other'"):
        mloop.load_model(f"runs:/{info.run_id}/other")
    with pytest.raises(NotFound):
        mloop.load_model("runs:/0123456789abcdef0123456789abcdef/model")


def test_a_model_name_must_be_a_plain_path(iris_forest: Any) -> None:
    with pytest.raises(InvalidInput):
        mloop.log_model(iris_forest, "../escape")


def test_a_local_path_and_a_file_uri_load(tmp_path: Path, iris_forest: Any) -> None:
    from mloop.models import save_model

    save_model(iris_forest, tmp_path / "pkg")
    assert mloop.load_model(str(tmp_path / "pkg")).flavor == "sklearn"
    assert mloop.load_model(f"file://{tmp_path / 'pkg'}").path == tmp_path / "pkg"


def test_registered_versions_load_by_number_and_alias(
    tracking_uri: str | None, iris_forest: Any, iris: tuple[Any, Any]
) -> None:
    registry = pytest.importorskip("mloop.registry")
    if not hasattr(registry, "register_model_version"):
        pytest.skip("the registry (issue 4, part D) is not there yet")
    with mloop.start_run():
        info = mloop.log_model(iris_forest, "model", registered_model_name="iris")
    assert info.registered_version == 1
    version = registry.get_model_version("iris", 1)
    assert version.source == info.model_uri
    assert version.package_digest == info.package_digest
    assert version.run_id == info.run_id

    x = iris[0]
    expected = iris_forest.predict(x)
    np.testing.assert_array_equal(mloop.load_model("models:/iris/1").predict(x), expected)
    registry.set_alias("iris", "champion", 1)
    np.testing.assert_array_equal(mloop.load_model("models:/iris@champion").predict(x), expected)


def test_a_replaced_manifest_fails_the_registered_digest(iris_forest: Any) -> None:
    """Swap in a manifest that matches the files (so the package verifies on its own):
    the registry's record of the manifest digest still refuses it."""
    registry = pytest.importorskip("mloop.registry")
    if not hasattr(registry, "register_model_version"):
        pytest.skip("the registry (issue 4, part D) is not there yet")
    with mloop.start_run():
        info = mloop.log_model(iris_forest, "model", registered_model_name="iris")
    manifest = json.loads(resolve_package(info.model_uri).joinpath(MANIFEST_NAME).read_text())
    manifest["created_at"] = "2000-01-01T00:00:00+00:00"
    _client().log_bytes(info.run_id, json.dumps(manifest).encode(), f"model/{MANIFEST_NAME}")
    mloop.load_model(info.model_uri)  # the run's package is consistent in itself
    with pytest.raises(TamperedPackage, match="was registered with package digest"):
        mloop.load_model("models:/iris/1")


def test_load_applies_the_registered_models_trust_policy(tmp_path: Path, iris_forest: Any) -> None:
    """load_model hands the verified package to the trust policy before any flavor runs."""
    registry = pytest.importorskip("mloop.registry")
    models = pytest.importorskip("mloop.models")
    if not hasattr(registry, "set_trust_policy") or not hasattr(models, "sign_package"):
        pytest.skip("trust policies and signing (issue 4, parts C and D) are not there yet")
    from mloop.errors import UntrustedSignature

    with mloop.start_run():
        info = mloop.log_model(iris_forest, "model", registered_model_name="iris")
    private_key, public_key = models.generate_signing_key(tmp_path / "keys")
    policy = registry.TrustPolicy(require_signature=True, trusted_keys=(public_key.read_text(),))
    registry.set_trust_policy("iris", policy)
    with pytest.raises(UntrustedSignature):
        mloop.load_model("models:/iris/1")
    mloop.load_model(info.model_uri)  # a run URI names no registered model: no policy
    models.sign_package(info.model_uri, private_key)
    assert mloop.load_model("models:/iris/1").flavor == "sklearn"


def test_a_damaged_cached_copy_is_fetched_again(iris_forest: Any, iris: tuple[Any, Any]) -> None:
    info = _logged(iris_forest)
    cached = mloop.load_model(info.model_uri).path
    (cached / "model.skops").write_bytes(b"damaged on this disk")
    loaded = mloop.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(iris[0]), iris_forest.predict(iris[0]))
