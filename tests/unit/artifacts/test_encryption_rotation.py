"""Key rotation: re-wrapping data keys under a new KEK, and encrypting old plaintext blobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mloop.artifacts import (
    ArtifactStore,
    FileKeyProvider,
    RewrapReport,
    generate_kek_file,
    open_artifact_store,
    rewrap_store,
)
from mloop.artifacts._encryption import MAGIC
from mloop.errors import ConfigError, EncryptionKeyError
from tests.unit.cli.helpers import run_cli

CANARY = b"ROTATION-CANARY-"


def _provider(folder: Path, name: str) -> FileKeyProvider:
    generate_kek_file(folder / name)
    return FileKeyProvider(folder / name)


def _stored(store: ArtifactStore, digest: str) -> bytes:
    return Path(store.root, "blobs", "sha256", digest[:2], digest[2:]).read_bytes()


def _header_length(stored: bytes) -> int:
    return 13 + int.from_bytes(stored[9:13], "big")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    return folder


def test_rewrap_moves_every_blob_to_the_new_key_without_touching_content(
    tmp_path: Path, keys: Path
) -> None:
    root = str(tmp_path / "store")
    old, new = _provider(keys, "old.kek"), _provider(keys, "new.kek")
    before = open_artifact_store(root, key_provider=old)
    blobs = {before.put_bytes(data).digest: data for data in (b"", CANARY, os.urandom(3 << 20))}
    bodies = {d: _stored(before, d)[_header_length(_stored(before, d)) :] for d in blobs}
    plain = open_artifact_store(root, key_provider=None).put_bytes(CANARY * 3)

    report = rewrap_store(open_artifact_store(root, key_provider=new), previous=old)

    assert report == RewrapReport(rewrapped=3, encrypted=0, current=0, plaintext=1)
    after_new = open_artifact_store(root, key_provider=new)
    for digest, data in blobs.items():
        stored = _stored(after_new, digest)
        assert new.key_id.encode() in stored[: _header_length(stored)]
        assert stored[_header_length(stored) :] == bodies[digest]  # segments copied, not redone
        assert after_new.get_bytes(digest) == data
        with pytest.raises(EncryptionKeyError, match=new.key_id):
            open_artifact_store(root, key_provider=old).get_bytes(digest)
    assert after_new.get_bytes(plain.digest) == CANARY * 3
    again = rewrap_store(after_new, previous=old)
    assert again == RewrapReport(rewrapped=0, encrypted=0, current=3, plaintext=1)


def test_rewrap_can_encrypt_plaintext_blobs_too(tmp_path: Path, keys: Path) -> None:
    root = str(tmp_path / "store")
    plain = open_artifact_store(root, key_provider=None)
    digests = [plain.put_bytes(CANARY * n).digest for n in (1, 100_000)]
    current = _provider(keys, "current.kek")
    store = open_artifact_store(root, key_provider=current)

    report = rewrap_store(store, encrypt_plaintext=True)

    assert report == RewrapReport(rewrapped=0, encrypted=2, current=0, plaintext=0)
    for digest, n in zip(digests, (1, 100_000), strict=True):
        stored = _stored(store, digest)
        assert stored.startswith(MAGIC)
        assert CANARY not in stored
        assert store.get_bytes(digest) == CANARY * n
    assert not list((tmp_path / "store" / "tmp").iterdir())


def test_rewrap_without_the_old_key_stops_and_can_be_resumed(tmp_path: Path, keys: Path) -> None:
    root = str(tmp_path / "store")
    old, new = _provider(keys, "old.kek"), _provider(keys, "new.kek")
    digest = open_artifact_store(root, key_provider=old).put_bytes(CANARY).digest
    store = open_artifact_store(root, key_provider=new)

    with pytest.raises(EncryptionKeyError, match=old.key_id):
        rewrap_store(store)

    assert rewrap_store(store, previous=old).rewrapped == 1
    assert store.get_bytes(digest) == CANARY


def test_rewrap_needs_a_current_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MLOOP_KEK_FILE"):
        rewrap_store(open_artifact_store(str(tmp_path), key_provider=None))


def test_cli_rotates_with_mloop_kek_file_and_old_kek(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keys: Path
) -> None:
    old, new = _provider(keys, "old.kek"), _provider(keys, "new.kek")
    monkeypatch.setenv("MLOOP_KEK_FILE", str(old.path))
    root = str(Path(os.environ["MLOOP_HOME"]) / "artifacts")
    digest = open_artifact_store(root).put_bytes(CANARY).digest
    monkeypatch.setenv("MLOOP_KEK_FILE", str(new.path))

    code, out, err = run_cli(capsys, "keys", "rewrap", "--old-kek", str(old.path), "--json")

    assert code == 0, err
    assert json.loads(out) == {"rewrapped": 1, "encrypted": 0, "current": 0, "plaintext": 0}
    assert open_artifact_store(root).get_bytes(digest) == CANARY
    code, out, err = run_cli(capsys, "keys", "rewrap")
    assert code == 0, err
    assert "0 re-wrapped" in out
    assert "1 already current" in out
