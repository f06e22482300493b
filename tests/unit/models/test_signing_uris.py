"""Signing packages stored as run artifacts: the signature goes back with the package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

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
