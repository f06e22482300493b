"""The URI picks the backend, and the public surface stays what callers code against."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mloop.artifacts
from mloop.artifacts import open_artifact_store
from mloop.errors import ConfigError


def test_public_api_is_pinned() -> None:
    assert mloop.artifacts.__all__ == [
        "ArtifactStore",
        "BlobInfo",
        "FileKeyProvider",
        "KeyProvider",
        "RewrapReport",
        "artifact_store_for",
        "generate_kek_file",
        "iter_local_files",
        "key_provider_from_settings",
        "open_artifact_store",
        "open_key_provider",
        "register_key_provider",
        "rewrap_store",
        "safe_relpath",
    ]


def test_plain_path_opens_a_local_folder(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "a"))
    digest = store.put_bytes(b"x").digest

    assert store.root == str(tmp_path / "a")
    assert (tmp_path / "a" / "blobs" / "sha256" / digest[:2] / digest[2:]).is_file()


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert open_artifact_store("rel/store").root == str(tmp_path / "rel" / "store")


def test_file_uri_opens_a_local_folder(tmp_path: Path) -> None:
    store = open_artifact_store((tmp_path / "b c").as_uri())

    assert store.root == str(tmp_path / "b c")
    assert store.get_bytes(store.put_bytes(b"y").digest) == b"y"


def test_file_uri_with_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be local"):
        open_artifact_store("file://fileserver/share")


def test_memory_stores_are_independent() -> None:
    first = open_artifact_store("memory://")
    digest = first.put_bytes(b"z").digest

    assert not open_artifact_store("memory://").exists(digest)
    assert first.root == "memory://"


def test_unknown_scheme_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        open_artifact_store("ftp://host/artifacts")

    message = str(caught.value)
    assert "'ftp'" in message
    assert "file://, memory://, s3://" in message


def test_s3_without_bucket_is_refused() -> None:
    with pytest.raises(ConfigError, match="names no bucket"):
        open_artifact_store("s3://")


def test_s3_without_s3fs_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)

    with pytest.raises(ConfigError, match=r"pip install 'mloop\[s3\]'"):
        open_artifact_store("s3://bucket/prefix")


def test_s3_root_is_normalized() -> None:
    store = open_artifact_store("S3://bucket/prefix/", s3_endpoint_url="http://127.0.0.1:1")

    assert store.root == "s3://bucket/prefix"
