"""One behaviour suite for the artifact store, run against every unit-testable backend."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from mloop.artifacts import ArtifactStore, BlobInfo, open_artifact_store
from mloop.artifacts._memory import MemoryBackend
from mloop.errors import IntegrityError, InvalidInput, NotFound
from tests.unit.artifacts.bounded_memory import stream_through

Corrupt = Callable[[str, bytes | None], None]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    uri = str(tmp_path / "store") if request.param == "local" else "memory://tests"
    return open_artifact_store(uri)


@pytest.fixture
def corrupt(store: ArtifactStore) -> Corrupt:
    """Change a stored blob behind the store's back: flip its first byte, or replace it."""

    def flip(digest: str, replacement: bytes | None = None) -> None:
        key = f"blobs/sha256/{digest[:2]}/{digest[2:]}"
        backend = store._backend
        if isinstance(backend, MemoryBackend):
            old = backend.objects[key]
            backend.objects[key] = replacement or bytes([old[0] ^ 0xFF]) + old[1:]
            return
        path = Path(store.root, *key.split("/"))
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        old = path.read_bytes()
        path.write_bytes(replacement or bytes([old[0] ^ 0xFF]) + old[1:])

    return flip


def test_put_bytes_round_trips(store: ArtifactStore) -> None:
    info = store.put_bytes(b"hello")

    assert info == BlobInfo(_sha(b"hello"), 5)
    assert store.get_bytes(info.digest) == b"hello"
    assert store.exists(info.digest)
    assert store.size(info.digest) == 5


def test_empty_blob_round_trips(store: ArtifactStore) -> None:
    info = store.put_bytes(b"")

    assert info.size == 0
    assert store.get_bytes(info.digest) == b""


def test_put_stream_reads_in_chunks_and_round_trips(store: ArtifactStore) -> None:
    data = os.urandom(3 * (1 << 20) + 17)

    info = store.put_stream(io.BytesIO(data))

    assert info == BlobInfo(_sha(data), len(data))
    with store.open(info.digest) as reader:
        first = reader.read(10)
        rest = reader.read()
    assert first + rest == data


def test_put_file_round_trips(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights" * 1000)

    info = store.put_file(source)

    assert store.get_bytes(info.digest) == source.read_bytes()


def test_put_stream_refuses_text(store: ArtifactStore) -> None:
    with pytest.raises(InvalidInput, match="binary stream"):
        store.put_stream(io.StringIO("text"))  # type: ignore[arg-type]


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"same")

    infos = {
        store.put_bytes(b"same"),
        store.put_stream(io.BytesIO(b"same")),
        store.put_file(source),
    }

    assert infos == {BlobInfo(_sha(b"same"), 4)}
    assert list(store.list()) == [BlobInfo(_sha(b"same"), 4)]


def test_existing_blob_is_not_written_again(store: ArtifactStore, corrupt: Corrupt) -> None:
    digest = store.put_bytes(b"original").digest
    corrupt(digest, b"tampered")

    store.put_stream(io.BytesIO(b"original"))

    # The stored copy was left alone (a rewrite would have healed it).
    with pytest.raises(IntegrityError):
        store.get_bytes(digest)


def test_list_is_sorted_and_delete_removes(store: ArtifactStore) -> None:
    blobs = [store.put_bytes(bytes([n]) * n) for n in range(1, 6)]

    assert list(store.list()) == sorted(blobs, key=lambda b: b.digest)

    store.delete(blobs[0].digest)

    assert not store.exists(blobs[0].digest)
    assert blobs[0] not in list(store.list())
    with pytest.raises(NotFound):
        store.delete(blobs[0].digest)


def test_unknown_digest_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    missing = _sha(b"never stored")

    assert not store.exists(missing)
    for call in (store.get_bytes, store.open, store.size, store.delete):
        with pytest.raises(NotFound, match=missing):
            call(missing)
    with pytest.raises(NotFound):
        store.download(missing, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "digest",
    ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, "sha256:" + "0" * 64],
)
def test_malformed_digest_is_invalid_input(store: ArtifactStore, digest: str) -> None:
    for call in (store.get_bytes, store.open, store.exists, store.size, store.delete):
        with pytest.raises(InvalidInput, match="not a SHA-256 digest"):
            call(digest)


def test_get_bytes_detects_corruption(store: ArtifactStore, corrupt: Corrupt) -> None:
    digest = store.put_bytes(b"precious weights").digest
    corrupt(digest, None)

    with pytest.raises(IntegrityError) as caught:
        store.get_bytes(digest)

    message = str(caught.value)
    assert digest in message
    assert _sha(b"\x8frecious weights") in message
    assert "log the artifact again" in message
    assert caught.value.details["found_size"] == 16


def test_open_detects_corruption_at_the_end(store: ArtifactStore, corrupt: Corrupt) -> None:
    digest = store.put_bytes(b"x" * 5000).digest
    corrupt(digest, None)

    with store.open(digest) as reader:
        assert len(reader.read(100)) == 100
        with pytest.raises(IntegrityError, match=digest):
            _drain(reader, 1000)


def _drain(reader: BinaryIO, size: int) -> None:
    while reader.read(size):
        pass


def test_open_detects_truncation(store: ArtifactStore, corrupt: Corrupt) -> None:
    digest = store.put_bytes(b"complete content").digest
    corrupt(digest, b"complete")

    with store.open(digest) as reader, pytest.raises(IntegrityError):
        reader.read()


def test_download_writes_verified_file(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"payload").digest
    dest = tmp_path / "deep" / "er" / "file.bin"

    store.download(digest, dest)

    assert dest.read_bytes() == b"payload"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def test_download_leaves_nothing_on_corruption(
    store: ArtifactStore, corrupt: Corrupt, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"payload" * 1000).digest
    corrupt(digest, None)
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(IntegrityError):
        store.download(digest, out / "file.bin")

    assert list(out.iterdir()) == []


def test_download_keeps_existing_file_on_corruption(
    store: ArtifactStore, corrupt: Corrupt, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"new").digest
    corrupt(digest, None)
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")

    with pytest.raises(IntegrityError):
        store.download(digest, dest)

    assert dest.read_bytes() == b"old"


# -- local-folder specifics ---------------------------------------------------------------


def test_local_layout_and_no_temp_files_left(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_artifact_store(str(root))
    source = tmp_path / "a.bin"
    source.write_bytes(b"file")

    digests = {
        store.put_bytes(b"bytes").digest,
        store.put_stream(io.BytesIO(b"stream")).digest,
        store.put_file(source).digest,
        store.put_bytes(b"bytes").digest,
    }

    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == sorted(f"blobs/sha256/{d[:2]}/{d[2:]}" for d in digests)


def test_local_blobs_are_read_only(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path))
    digest = store.put_bytes(b"immutable").digest

    mode = (tmp_path / "blobs" / "sha256" / digest[:2] / digest[2:]).stat().st_mode

    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_local_list_ignores_stray_files(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path))
    info = store.put_bytes(b"real")
    (tmp_path / "blobs" / "sha256" / "zz").mkdir()
    (tmp_path / "blobs" / "sha256" / "zz" / "notes.txt").write_text("stray")

    assert list(store.list()) == [info]


def test_local_put_stream_keeps_memory_bounded(tmp_path: Path) -> None:
    total = 48 << 20
    peaks = stream_through(open_artifact_store(str(tmp_path)), total)

    assert peaks.info.size == peaks.read == total
    assert peaks.put_peak < 8 << 20
    assert peaks.read_peak < 8 << 20
