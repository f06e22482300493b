"""A custom ``Settings`` object that names a key-encryption key turns encryption on by
itself: the tracking backend and the dataset registry it opens encrypt what they store,
with no MLOOP_KEK_FILE in the environment and no mloop.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mloop.artifacts import artifact_store_for, generate_kek_file
from mloop.artifacts._encryption import MAGIC
from mloop.config import Settings
from mloop.data._versions import open_registry
from mloop.errors import EncryptionKeyError
from mloop.tracking import MloopClient
from mloop.tracking._resolve import backend_for

CANARY = "CUSTOM-SETTINGS-CANARY"


@pytest.fixture
def encrypting(tmp_path: Path) -> Settings:
    assert "MLOOP_KEK_FILE" not in os.environ
    kek = tmp_path / "custom.kek"
    generate_kek_file(kek)
    return Settings(kek_file=str(kek))


def _blobs() -> list[Path]:
    root = Path(os.environ["MLOOP_HOME"]) / "artifacts" / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_all_encrypted(blobs: list[Path]) -> None:
    assert blobs
    for path in blobs:
        content = path.read_bytes()
        assert content.startswith(MAGIC), path
        assert CANARY.encode() not in content, path


def test_the_artifact_store_follows_the_settings_it_is_given(encrypting: Settings) -> None:
    digest = artifact_store_for(encrypting).put_bytes(CANARY.encode()).digest
    _assert_all_encrypted(_blobs())
    assert artifact_store_for(encrypting).get_bytes(digest) == CANARY.encode()
    with pytest.raises(EncryptionKeyError):
        artifact_store_for().get_bytes(digest)  # the default settings have no key


def test_a_tracking_backend_opened_with_custom_settings_encrypts_run_artifacts(
    encrypting: Settings, tmp_path: Path
) -> None:
    plain = MloopClient()  # a backend for the same stores without a key, cached first
    client = MloopClient(backend=backend_for(settings=encrypting))
    assert client.backend is not plain.backend
    run = client.create_run(client.create_experiment("secret"))
    weights = tmp_path / "weights.txt"
    weights.write_text(f"{CANARY}\n" * 100)
    client.log_artifact(run.info.run_id, weights, "model")

    _assert_all_encrypted(_blobs())
    got = client.download_artifacts(run.info.run_id, "model/weights.txt", tmp_path / "back")
    assert Path(got).read_text() == weights.read_text()
    with pytest.raises(EncryptionKeyError):
        plain.download_artifacts(run.info.run_id, "model/weights.txt", tmp_path / "plain")


def test_a_dataset_registry_opened_with_custom_settings_encrypts_versions(
    encrypting: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,secret\n" + "".join(f"{i},{CANARY}-{i}\n" for i in range(20)))
    with open_registry(encrypting) as registry:
        version = registry.register("train", data)
        column = version.to_arrow().column("secret").to_pylist()
    assert column[:2] == [f"{CANARY}-0", f"{CANARY}-1"]
    _assert_all_encrypted(_blobs())
