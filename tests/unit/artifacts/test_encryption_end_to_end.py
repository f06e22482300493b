"""With MLOOP_KEK_FILE set, what runs and dataset versions store is encrypted, and reads back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import mloop
from mloop.artifacts import generate_kek_file
from mloop.artifacts._encryption import MAGIC
from mloop.data import get_dataset_version, register
from mloop.errors import EncryptionKeyError
from mloop.tracking._resolve import reset_backends

CANARY = "END-TO-END-CANARY"


def _stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_run_artifacts_and_dataset_versions_are_stored_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = tmp_path / "mloop.kek"
    generate_kek_file(kek)
    monkeypatch.setenv("MLOOP_KEK_FILE", str(kek))
    weights = tmp_path / "weights.txt"
    weights.write_text(f"{CANARY} weights\n" * 1000)
    data = tmp_path / "train.csv"
    data.write_text("x,secret\n" + "".join(f"{i},{CANARY}-{i}\n" for i in range(50)))

    with mloop.start_run() as run:
        mloop.log_artifact(weights, "model")
        mloop.log_text(f"{CANARY} notes", "notes.txt")
    version = register("train", data)

    artifacts = Path(os.environ["MLOOP_HOME"]) / "artifacts"
    blobs = _stored_files(artifacts / "blobs")
    assert len(blobs) >= 4  # two run files; the dataset's file, manifest and statistics
    for path in _stored_files(artifacts):
        content = path.read_bytes()
        assert content.startswith(MAGIC), path
        assert CANARY.encode() not in content, path

    client = mloop.MloopClient(mloop.get_tracking_uri())
    got = Path(client.download_artifacts(run.info.run_id, "model/weights.txt", tmp_path / "dl"))
    assert got.read_text() == weights.read_text()
    again = get_dataset_version(version.ref)
    assert again.to_arrow().column("secret").to_pylist()[:2] == [f"{CANARY}-0", f"{CANARY}-1"]

    monkeypatch.delenv("MLOOP_KEK_FILE")
    reset_backends()
    with pytest.raises(EncryptionKeyError, match="MLOOP_KEK_FILE"):
        get_dataset_version(version.ref).to_arrow()
    with pytest.raises(EncryptionKeyError, match="no key-encryption key is configured"):
        mloop.MloopClient(mloop.get_tracking_uri()).download_artifacts(
            run.info.run_id, "model/weights.txt", tmp_path / "dl2"
        )


def test_a_logged_model_package_is_stored_encrypted_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mloop.models

    if not hasattr(mloop.models, "log_model"):
        pytest.skip("mloop.models.log_model / load_model (issue 4, part B) are not there yet")
    from sklearn.linear_model import LogisticRegression

    kek = tmp_path / "mloop.kek"
    generate_kek_file(kek)
    monkeypatch.setenv("MLOOP_KEK_FILE", str(kek))
    features = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]]
    model = LogisticRegression().fit(features, [0, 1, 0, 1])

    with mloop.start_run():
        info = mloop.models.log_model(model, "classifier")
    loaded = mloop.models.load_model(info.model_uri)

    assert list(loaded.predict(features)) == [0, 1, 0, 1]
    blobs = _stored_files(Path(os.environ["MLOOP_HOME"]) / "artifacts" / "blobs")
    assert blobs
    assert all(path.read_bytes().startswith(MAGIC) for path in blobs)
