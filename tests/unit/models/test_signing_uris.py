"""Signing packages stored as run artifacts: the signature goes back with the package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.cli.helpers import run_cli

import mloop
import mloop.models
from mloop.errors import UntrustedSignature
from mloop.models import generate_signing_key, sign_package, verify_signature
from mloop.tracking import MloopClient, start_run
from mloop.tracking import log_artifacts as log_run_artifacts

pytestmark = pytest.mark.skipif(
    not hasattr(mloop.models, "resolve_package"),
    reason="mloop.models.resolve_package (part B) has not landed yet",
)


@pytest.fixture
def run_uri(tmp_path: Path) -> tuple[str, str]:
    folder = tmp_path / "package"
    folder.mkdir()
    data = b"weights" * 100
    (folder / "model.skops").write_bytes(data)
    files = {"model.skops": hashlib.sha256(data).hexdigest()}
    (folder / "mloop-model.json").write_text(json.dumps({"format_version": 1, "files": files}))
    with start_run() as run:
        log_run_artifacts(folder, "model")
    return run.info.run_id, f"runs:/{run.info.run_id}/model"


def test_signing_a_run_uri_stores_the_signature_as_a_run_artifact(
    run_uri: tuple[str, str], tmp_path: Path
) -> None:
    run_id, uri = run_uri
    private_key, public_key = generate_signing_key(tmp_path / "keys")
    sign_package(uri, private_key)

    client = MloopClient()
    assert "model/mloop-model.sig" in {a.path for a in client.list_artifacts(run_id, "model")}
    fresh = Path(client.download_artifacts(run_id, "model", tmp_path / "download"))
    assert verify_signature(fresh, [public_key]).mode == "key"
    assert verify_signature(uri, [public_key]).mode == "key"


def test_unsigned_run_uri_is_refused(run_uri: tuple[str, str], tmp_path: Path) -> None:
    _, uri = run_uri
    _, public_key = generate_signing_key(tmp_path / "keys")
    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(uri, [public_key])
    assert caught.value.details["reason"] == "missing"


def _another_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Same metadata and artifact stores, a fresh MLOOP_HOME: nothing cached locally."""
    from mloop.config import get_settings
    from mloop.tracking._resolve import reset_backends

    settings = get_settings()
    monkeypatch.setenv("MLOOP_DB_URI", settings.resolved_db_uri)
    monkeypatch.setenv("MLOOP_ARTIFACT_URI", settings.resolved_artifact_uri)
    home = tmp_path / "other-machine"
    monkeypatch.setenv("MLOOP_HOME", str(home))
    reset_backends()
    return home


def test_signing_a_registered_version_reaches_a_machine_with_a_fresh_cache(
    tracking_uri: str | None,
    iris_forest: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`mloop models sign models:/NAME/VERSION` stores the signature with the run's
    artifacts, so `models verify` and a load under a trust policy find it elsewhere."""
    from mloop.registry import TrustPolicy, set_alias, set_trust_policy

    with start_run():
        info = mloop.log_model(iris_forest, "model", registered_model_name="iris")
    set_alias("iris", "champion", 1)
    keys = tmp_path / "keys"
    private_key, public_key = generate_signing_key(keys)
    code, _, err = run_cli(capsys, "models", "sign", "models:/iris/1", "--key", str(private_key))
    assert code == 0, err

    listed = MloopClient(tracking_uri).list_artifacts(info.run_id, "model")
    assert "model/mloop-model.sig" in {a.path for a in listed}

    home = _another_machine(monkeypatch, tmp_path)
    assert not home.exists()
    code, out, err = run_cli(
        capsys, "models", "verify", "models:/iris@champion", "--trusted-keys", str(keys)
    )
    assert code == 0, err
    assert out.startswith("Verified")
    assert list(home.glob("cache/model-packages/*/mloop-model.sig"))

    set_trust_policy(
        "iris", TrustPolicy(require_signature=True, trusted_keys=(public_key.read_text(),))
    )
    assert mloop.load_model("models:/iris/1") is not None

    _, other_public = generate_signing_key(tmp_path / "other-keys")
    set_trust_policy(
        "iris", TrustPolicy(require_signature=True, trusted_keys=(other_public.read_text(),))
    )
    with pytest.raises(UntrustedSignature):
        mloop.load_model("models:/iris/1")


def test_a_run_on_a_server_set_in_python_gets_its_signature_on_that_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mloop.set_tracking_uri(server)` decides where the package comes from, so it also
    decides where its signature goes — not the local store the settings name."""
    from tests.fixtures.live_server import running_server

    from mloop.config import Settings
    from mloop.server import create_app
    from mloop.tracking._resolve import backend_for

    server_home = Settings(home=tmp_path / "server-home")
    backend = backend_for(server_home.resolved_db_uri, server_home)
    with running_server(create_app(backend)) as url:
        mloop.set_tracking_uri(url)
        try:
            folder = tmp_path / "package"
            folder.mkdir()
            (folder / "model.skops").write_bytes(b"weights" * 100)
            digest = hashlib.sha256(b"weights" * 100).hexdigest()
            manifest = {"format_version": 1, "files": {"model.skops": digest}}
            (folder / "mloop-model.json").write_text(json.dumps(manifest))
            with start_run() as run:
                log_run_artifacts(folder, "model")
            uri = f"runs:/{run.info.run_id}/model"
            private_key, public_key = generate_signing_key(tmp_path / "keys")
            sign_package(uri, private_key)

            listed = MloopClient(url).list_artifacts(run.info.run_id, "model")
            assert "model/mloop-model.sig" in {a.path for a in listed}
            monkeypatch.setenv("MLOOP_HOME", str(tmp_path / "fresh-client"))
            assert verify_signature(uri, [public_key]).mode == "key"
        finally:
            mloop.set_tracking_uri(None)
