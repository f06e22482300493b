"""Key-encryption keys: the KEK file, the provider registry, settings, and `mloop keys kek`."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mloop.artifacts import (
    FileKeyProvider,
    KeyProvider,
    _kek,
    generate_kek_file,
    key_provider_from_settings,
    open_artifact_store,
    open_key_provider,
    register_key_provider,
)
from mloop.artifacts._encryption import MAGIC
from mloop.config import get_settings
from mloop.errors import Conflict, EncryptionKeyError, IntegrityError, InvalidInput
from tests.unit.cli.helpers import one_error_line, run_cli

# -- KEK files --------------------------------------------------------------------------------


def test_generate_writes_a_private_versioned_key_file(tmp_path: Path) -> None:
    path = tmp_path / "mloop.kek"

    key_id = generate_kek_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "mloop-kek"
    assert document["version"] == 1
    assert document["key_id"] == key_id
    assert len(base64.b64decode(document["key"])) == 32
    assert FileKeyProvider(path).key_id == key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mloop.kek"]


def test_two_keys_never_share_an_id(tmp_path: Path) -> None:
    assert generate_kek_file(tmp_path / "a") != generate_kek_file(tmp_path / "b")


def test_generate_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "mloop.kek"
    generate_kek_file(path)
    before = path.read_bytes()
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")

    with pytest.raises(Conflict, match="never overwrites"):
        generate_kek_file(path)
    with pytest.raises(Conflict):
        generate_kek_file(link)

    assert path.read_bytes() == before
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "mloop.kek"]


def test_generate_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        generate_kek_file(tmp_path / "missing" / "k.kek")


def test_a_raw_32_byte_key_file_works(tmp_path: Path) -> None:
    path = tmp_path / "raw.kek"
    key = secrets.token_bytes(32)
    path.write_bytes(key)

    provider = FileKeyProvider(path)

    assert provider.key_id == _kek.key_id_of(key)
    assert provider.unwrap(provider.wrap(b"k" * 32), provider.key_id) == b"k" * 32


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "neither mloop's JSON KEK format nor 32 raw bytes"),
        (b"short", "neither"),
        (b'{"format": "other"}', "not a 'mloop-kek' document"),
        (b'{"format": "mloop-kek", "version": 9, "key": ""}', "format version 9"),
        (b'{"format": "mloop-kek", "version": 1, "key": "c2hvcnQ="}', "not 32 bytes of base64"),
        (b'{"format": "mloop-kek", "version": 1, "key": 5}', "not 32 bytes of base64"),
        (b"x" * 5000, "far too big"),
    ],
)
def test_unusable_key_files_say_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.kek"
    path.write_bytes(content)

    with pytest.raises(EncryptionKeyError, match=reason) as caught:
        FileKeyProvider(path)

    assert str(path) in str(caught.value)
    assert "mloop keys kek" in str(caught.value)


def test_an_edited_key_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.kek"
    generate_kek_file(path)
    document = json.loads(path.read_text())
    document["key_id"] = "kek-000000000000000000000000"
    path.chmod(0o600)
    path.write_text(json.dumps(document))

    with pytest.raises(EncryptionKeyError, match="does not match its key"):
        FileKeyProvider(path)


def test_a_missing_key_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyError, match="does not exist; create one with `mloop keys kek"):
        FileKeyProvider(tmp_path / "nope.kek")


def test_an_unreadable_key_file_is_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyError, match="cannot be read"):
        FileKeyProvider(tmp_path)  # a folder


def test_a_wrapped_key_that_was_changed_is_an_integrity_error(tmp_path: Path) -> None:
    generate_kek_file(tmp_path / "k.kek")
    provider = FileKeyProvider(tmp_path / "k.kek")
    wrapped = bytearray(provider.wrap(b"d" * 32))
    wrapped[-1] ^= 1

    with pytest.raises(IntegrityError):
        provider.unwrap(bytes(wrapped), provider.key_id)
    with pytest.raises(EncryptionKeyError):
        provider.unwrap(provider.wrap(b"d" * 32), "kek-someone-else")


def test_retired_keys_stay_readable_through_previous(tmp_path: Path) -> None:
    generate_kek_file(tmp_path / "old.kek")
    generate_kek_file(tmp_path / "new.kek")
    old = FileKeyProvider(tmp_path / "old.kek")
    both = FileKeyProvider(tmp_path / "new.kek", previous=(tmp_path / "old.kek",))

    wrapped = old.wrap(b"d" * 32)

    assert both.key_id != old.key_id
    assert both.can_unwrap(old.key_id)
    assert both.unwrap(wrapped, old.key_id) == b"d" * 32


# -- provider registry and settings -----------------------------------------------------------


class _InProcessKms(KeyProvider):
    """A provider the way a KMS plugin would write one: named keys it never hands out."""

    vault: ClassVar[dict[str, bytes]] = {}

    def __init__(self, reference: str) -> None:
        self._key_id = reference
        self.vault.setdefault(reference, AESGCM.generate_key(bit_length=256))

    @property
    def name(self) -> str:
        return "test-kms"

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.vault[self._key_id]).encrypt(nonce, data_key, None)

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        if key_id not in self.vault:
            raise EncryptionKeyError(f"the KMS has no key {key_id}")
        return AESGCM(self.vault[key_id]).decrypt(wrapped[:12], wrapped[12:], None)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear with it."""
    monkeypatch.setattr(_kek, "_factories", dict(_kek._factories))


@pytest.mark.usefixtures("registry")
def test_a_registered_provider_is_chosen_by_scheme(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_key_provider("test-kms", _InProcessKms)
    monkeypatch.setenv("MLOOP_KEK_FILE", "test-kms://projects/p/keys/artifacts")

    store = open_artifact_store(str(tmp_path / "store"))
    digest = store.put_bytes(b"protected by a KMS").digest

    assert isinstance(store.key_provider, _InProcessKms)
    assert store.get_bytes(digest) == b"protected by a KMS"
    stored = next((tmp_path / "store" / "blobs").rglob(digest[2:])).read_bytes()
    assert stored.startswith(MAGIC)
    assert b"test-kms" in stored
    assert b"projects/p/keys/artifacts" in stored
    monkeypatch.setenv("MLOOP_KEK_FILE", "test-kms://projects/p/keys/other")
    with pytest.raises(EncryptionKeyError, match="projects/p/keys/artifacts"):
        open_artifact_store(str(tmp_path / "store")).get_bytes(digest)


@pytest.mark.usefixtures("registry")
def test_provider_names_are_checked() -> None:
    for bad in ("", "x", "Upper", "has space", "1abc", "a" * 40):
        with pytest.raises(InvalidInput, match="not valid"):
            register_key_provider(bad, _InProcessKms)
    with pytest.raises(InvalidInput, match="callable"):
        register_key_provider("fine-name", "not callable")  # type: ignore[arg-type]


def test_an_unknown_provider_scheme_lists_the_known_ones() -> None:
    with pytest.raises(
        EncryptionKeyError, match=r"not registered; use a KEK file path or.*file://"
    ):
        open_key_provider("vault://secret/mloop")


def test_paths_and_file_uris_open_the_file_provider(tmp_path: Path) -> None:
    path = tmp_path / "k.kek"
    key_id = generate_kek_file(path)

    for location in (str(path), path, f"file://{path}"):
        provider = open_key_provider(location)
        assert isinstance(provider, FileKeyProvider)
        assert provider.key_id == key_id


def test_kek_file_setting_comes_from_env_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert get_settings().kek_file is None
    assert key_provider_from_settings() is None
    generate_kek_file(tmp_path / "toml.kek")
    generate_kek_file(tmp_path / "env.kek")
    (tmp_path / "mloop.toml").write_text(f'kek_file = "{tmp_path / "toml.kek"}"\n')

    from_toml = key_provider_from_settings()
    monkeypatch.setenv("MLOOP_KEK_FILE", str(tmp_path / "env.kek"))
    from_env = key_provider_from_settings()

    assert isinstance(from_toml, FileKeyProvider)
    assert from_toml.path == tmp_path / "toml.kek"
    assert isinstance(from_env, FileKeyProvider)
    assert from_env.path == tmp_path / "env.kek"


# -- mloop keys kek ---------------------------------------------------------------------------


def test_cli_writes_a_kek_and_shows_only_its_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "mloop.kek"

    code, out, err = run_cli(capsys, "keys", "kek", str(path))

    assert code == 0, err
    document = json.loads(path.read_text())
    assert document["key_id"] in out
    assert "MLOOP_KEK_FILE" in out
    assert document["key"] not in out + err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_refuses_to_overwrite_a_kek(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "mloop.kek"
    path.write_text("precious")

    code, _, err = run_cli(capsys, "keys", "kek", str(path))

    assert code == 2
    assert "already exists" in one_error_line(err)
    assert path.read_text() == "precious"


def test_cli_reports_an_unusable_kek_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOOP_KEK_FILE", str(tmp_path / "gone.kek"))

    code, _, err = run_cli(capsys, "keys", "rewrap")

    assert code == 2
    assert "gone.kek does not exist" in one_error_line(err)
