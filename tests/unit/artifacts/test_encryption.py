"""Encryption at rest through the artifact store: round trips, keys, tampering, mixed stores."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from mloop.artifacts import (
    ArtifactStore,
    BlobInfo,
    FileKeyProvider,
    generate_kek_file,
    open_artifact_store,
)
from mloop.artifacts._encryption import DEFAULT_SEGMENT_SIZE, MAGIC, seal
from mloop.artifacts._memory import MemoryBackend
from mloop.errors import ConfigError, EncryptionKeyError, IntegrityError
from tests.unit.artifacts.bounded_memory import stream_through

SEGMENT = DEFAULT_SEGMENT_SIZE
CANARY = b"PLAINTEXT-CANARY-0123456789-"

Stored = Callable[[str], bytes]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest[2:]}"


@pytest.fixture
def kek(tmp_path: Path) -> FileKeyProvider:
    path = tmp_path / "keys" / "current.kek"
    path.parent.mkdir()
    generate_kek_file(path)
    return FileKeyProvider(path)


@pytest.fixture
def other_kek(tmp_path: Path) -> FileKeyProvider:
    path = tmp_path / "keys" / "other.kek"
    path.parent.mkdir(exist_ok=True)
    generate_kek_file(path)
    return FileKeyProvider(path)


@pytest.fixture(params=["local", "memory"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "store") if request.param == "local" else "memory://tests"


@pytest.fixture
def store(uri: str, kek: FileKeyProvider) -> ArtifactStore:
    return open_artifact_store(uri, key_provider=kek)


def _same_backend(store: ArtifactStore, provider: FileKeyProvider | None) -> ArtifactStore:
    """A second view of the same objects with another key (a memory store is not shared)."""
    return ArtifactStore(store._backend, key_provider=provider)


def _stored(store: ArtifactStore, digest: str) -> bytes:
    backend = store._backend
    if isinstance(backend, MemoryBackend):
        return backend.objects[_key(digest)]
    return Path(store.root, *_key(digest).split("/")).read_bytes()


def _replace(store: ArtifactStore, digest: str, content: bytes) -> None:
    backend = store._backend
    if isinstance(backend, MemoryBackend):
        backend.objects[_key(digest)] = content
        return
    path = Path(store.root, *_key(digest).split("/"))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(content)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 100, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 3 * SEGMENT + 17]
)
def test_round_trip_of_every_shape(store: ArtifactStore, size: int, tmp_path: Path) -> None:
    data = os.urandom(size)

    info = store.put_stream(io.BytesIO(data))

    assert info == BlobInfo(_sha(data), size)
    assert store.get_bytes(info.digest) == data
    assert store.size(info.digest) == size
    assert _stored(store, info.digest).startswith(MAGIC)
    with store.open(info.digest) as reader:
        assert reader.read(7) + reader.read() == data
    store.download(info.digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_put_file_and_put_bytes_encrypt_too(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(CANARY * 10)

    from_file = store.put_file(source)
    from_bytes = store.put_bytes(CANARY)

    for info, data in ((from_file, CANARY * 10), (from_bytes, CANARY)):
        assert store.get_bytes(info.digest) == data
        assert CANARY not in _stored(store, info.digest)


def test_stored_bytes_never_contain_the_plaintext(store: ArtifactStore, uri: str) -> None:
    data = CANARY * (3 * SEGMENT // len(CANARY))

    info = store.put_stream(io.BytesIO(data))

    stored = _stored(store, info.digest)
    assert CANARY[:12] not in stored
    assert len(stored) > len(data)
    if not uri.startswith("memory://"):
        # Nothing under the store's root — blobs or staging leftovers — holds plaintext.
        for path in Path(uri).rglob("*"):
            assert not path.is_file() or CANARY[:12] not in path.read_bytes(), path


def test_each_blob_gets_its_own_data_key(store: ArtifactStore) -> None:
    first = store.put_bytes(CANARY + b"1")
    second = store.put_bytes(CANARY + b"2")

    a, b = _stored(store, first.digest), _stored(store, second.digest)

    # Same KEK and near-identical content, yet no common ciphertext beyond the header fields.
    assert a[-48:] != b[-48:]
    assert a != b


def test_identical_content_is_stored_once_with_encryption_on(
    store: ArtifactStore, tmp_path: Path
) -> None:
    big = os.urandom(SEGMENT + 5)
    source = tmp_path / "same.bin"
    source.write_bytes(big)

    first = store.put_bytes(big)
    before = _stored(store, first.digest)
    again = {store.put_stream(io.BytesIO(big)), store.put_file(source), store.put_bytes(big)}
    small = {store.put_bytes(b"tiny"), store.put_bytes(b"tiny")}

    assert again == {first}
    assert len(small) == 1
    # A rewrite would have drawn a fresh data key and changed every stored byte.
    assert _stored(store, first.digest) == before
    assert sorted(b.digest for b in store.list()) == sorted([first.digest, _sha(b"tiny")])


def test_list_reports_stored_sizes_and_size_the_content(store: ArtifactStore) -> None:
    info = store.put_bytes(b"x" * 1000)

    (listed,) = store.list()

    assert listed.digest == info.digest
    assert listed.size == len(_stored(store, info.digest)) > 1000
    assert store.size(info.digest) == 1000


# -- keys -------------------------------------------------------------------------------------


def test_reading_without_a_key_says_which_key_is_needed(
    store: ArtifactStore, kek: FileKeyProvider
) -> None:
    digest = store.put_bytes(CANARY).digest
    keyless = _same_backend(store, None)

    with pytest.raises(EncryptionKeyError) as caught:
        keyless.open(digest)

    message = str(caught.value)
    assert "no key-encryption key is configured" in message
    assert "MLOOP_KEK_FILE" in message
    assert kek.key_id in message
    assert digest in message
    assert caught.value.details["expected_key_id"] == kek.key_id
    with pytest.raises(EncryptionKeyError):
        keyless.get_bytes(digest)


def test_a_wrong_key_is_detected_by_its_id_not_by_garbage(
    store: ArtifactStore, kek: FileKeyProvider, other_kek: FileKeyProvider, tmp_path: Path
) -> None:
    digest = store.put_bytes(CANARY).digest
    wrong = _same_backend(store, other_kek)

    with pytest.raises(EncryptionKeyError) as caught:
        wrong.get_bytes(digest)

    message = str(caught.value)
    assert kek.key_id in message
    assert other_kek.key_id in message
    assert str(other_kek.path) in message
    assert caught.value.details["expected_key_id"] == kek.key_id
    assert caught.value.details["configured_key_id"] == other_kek.key_id
    with pytest.raises(EncryptionKeyError):
        wrong.download(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_store_takes_its_key_from_mloop_kek_file(
    kek: FileKeyProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = str(tmp_path / "store")
    monkeypatch.setenv("MLOOP_KEK_FILE", str(kek.path))
    encrypting = open_artifact_store(root)
    digest = encrypting.put_bytes(CANARY).digest
    assert encrypting.key_provider is not None
    assert encrypting.key_provider.key_id == kek.key_id

    monkeypatch.delenv("MLOOP_KEK_FILE")
    plain = open_artifact_store(root)

    assert plain.key_provider is None
    with pytest.raises(EncryptionKeyError, match="no key-encryption key is configured"):
        plain.get_bytes(digest)
    monkeypatch.setenv("MLOOP_KEK_FILE", str(tmp_path / "missing.kek"))
    with pytest.raises(EncryptionKeyError, match=r"missing\.kek does not exist"):
        open_artifact_store(root)


# -- tampering --------------------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("where", ["first segment", "middle", "last byte"])
def test_a_changed_ciphertext_byte_is_an_integrity_error(store: ArtifactStore, where: str) -> None:
    data = os.urandom(2 * SEGMENT + 10)
    digest = store.put_bytes(data).digest
    stored = _stored(store, digest)
    at = {"first segment": 300, "middle": len(stored) // 2, "last byte": len(stored) - 1}[where]
    _replace(store, digest, _flip(stored, at))

    with pytest.raises(IntegrityError, match="fails authentication") as caught:
        store.get_bytes(digest)

    assert digest in str(caught.value)
    assert "restore it from a backup" in str(caught.value)


def test_tampering_stops_download_with_nothing_written(
    store: ArtifactStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(os.urandom(3 * SEGMENT)).digest
    stored = _stored(store, digest)
    _replace(store, digest, _flip(stored, len(stored) - 5))
    out = tmp_path / "dl"
    out.mkdir()

    with pytest.raises(IntegrityError):
        store.download(digest, out / "blob.bin")

    assert list(out.iterdir()) == []


def test_truncated_or_extended_blobs_are_integrity_errors(store: ArtifactStore) -> None:
    data = os.urandom(2 * SEGMENT + 10)
    digest = store.put_bytes(data).digest
    stored = _stored(store, digest)
    header = len(stored) - (len(data) + 3 * 16)
    sealed = SEGMENT + 16

    for broken in (
        stored[: header + 2 * sealed],  # cut exactly after a full segment
        stored[: header + sealed + 100],  # cut inside a segment
        stored[:header],  # header only
        stored[: header + 8],  # less than a tag
        stored + stored[header : header + sealed],  # a segment appended again
        stored + b"\x00",  # one stray byte
    ):
        _replace(store, digest, broken)
        with pytest.raises(IntegrityError):
            store.get_bytes(digest)


def test_reordered_segments_are_an_integrity_error(store: ArtifactStore) -> None:
    data = os.urandom(3 * SEGMENT)
    digest = store.put_bytes(data).digest
    stored = _stored(store, digest)
    sealed = SEGMENT + 16
    header = len(stored) - 3 * sealed
    segments = [stored[header + i * sealed : header + (i + 1) * sealed] for i in range(3)]

    for order in ((1, 0, 2), (0, 2, 1), (0, 0, 2)):
        _replace(store, digest, stored[:header] + b"".join(segments[i] for i in order))
        with pytest.raises(IntegrityError, match="segment"):
            store.get_bytes(digest)


def test_a_changed_header_never_yields_content(kek: FileKeyProvider) -> None:
    store = ArtifactStore(MemoryBackend(), key_provider=kek)
    digest = store.put_bytes(CANARY * 50).digest
    stored = _stored(store, digest)
    header_length = 13 + int.from_bytes(stored[9:13], "big")

    for at in range(header_length):
        _replace(store, digest, _flip(stored, at))
        with pytest.raises((IntegrityError, ConfigError)):
            store.get_bytes(digest)


def test_header_changes_are_reported_for_what_they_are(
    store: ArtifactStore, kek: FileKeyProvider
) -> None:
    digest = store.put_bytes(CANARY * 50).digest
    stored = _stored(store, digest)
    header_length = 13 + int.from_bytes(stored[9:13], "big")
    key_id_at = stored.index(kek.key_id.encode())

    _replace(store, digest, _flip(stored, key_id_at + 5))
    with pytest.raises(EncryptionKeyError, match="is encrypted with key-encryption key"):
        store.get_bytes(digest)
    _replace(store, digest, _flip(stored, header_length - 3))  # inside the wrapped data key
    with pytest.raises(IntegrityError, match="wrapped data key does not verify"):
        store.get_bytes(digest)
    _replace(store, digest, _flip(stored, 8))  # the format version
    with pytest.raises(ConfigError, match="envelope format version 0"):
        store.get_bytes(digest)
    _replace(store, digest, stored[:9] + (1 << 20).to_bytes(4, "big") + stored[13:])
    with pytest.raises(IntegrityError, match="header claims"):
        store.get_bytes(digest)


# -- mixed stores -----------------------------------------------------------------------------


def test_plaintext_blobs_written_before_encryption_stay_readable(
    uri: str, kek: FileKeyProvider
) -> None:
    plain = open_artifact_store(uri, key_provider=None)
    old = plain.put_bytes(b"written before encryption was turned on")
    encrypting = _same_backend(plain, kek)
    new = encrypting.put_bytes(b"written after")

    assert encrypting.get_bytes(old.digest) == b"written before encryption was turned on"
    assert encrypting.get_bytes(new.digest) == b"written after"
    assert encrypting.size(old.digest) == old.size
    assert plain.get_bytes(old.digest) == b"written before encryption was turned on"
    with pytest.raises(EncryptionKeyError):
        plain.get_bytes(new.digest)
    # De-duplication finds the plaintext copy: it stays plaintext (see `mloop keys rewrap`).
    encrypting.put_bytes(b"written before encryption was turned on")
    assert not _stored(encrypting, old.digest).startswith(MAGIC)


def test_plaintext_that_looks_like_an_envelope_is_read_as_stored(
    store: ArtifactStore, uri: str
) -> None:
    """A user may log an encrypted blob file as an artifact; it must come back verbatim."""
    inner = store.put_bytes(CANARY)
    envelope = _stored(store, inner.digest)
    plain = open_artifact_store(uri + "-plain", key_provider=None)

    outer_plain = plain.put_bytes(envelope)
    outer_encrypted = store.put_bytes(envelope)

    assert plain.get_bytes(outer_plain.digest) == envelope
    assert plain.size(outer_plain.digest) == len(envelope)
    assert store.get_bytes(outer_encrypted.digest) == envelope
    assert _same_backend(plain, store.key_provider).get_bytes(outer_plain.digest) == envelope  # type: ignore[arg-type]


def test_a_blob_with_a_forged_digest_field_is_read_as_plaintext_and_fails_verification(
    store: ArtifactStore,
) -> None:
    digest = store.put_bytes(CANARY).digest
    stored = _stored(store, digest)
    _replace(store, digest, _flip(stored, 20))  # inside the plaintext-digest field

    with pytest.raises(IntegrityError, match="corrupted"):
        store.get_bytes(digest)


# -- bounded memory ---------------------------------------------------------------------------


def test_encrypting_and_decrypting_keep_memory_bounded(
    tmp_path: Path, kek: FileKeyProvider
) -> None:
    store = open_artifact_store(str(tmp_path / "store"), key_provider=kek)
    total = 24 << 20
    peaks = stream_through(store, total)

    assert peaks.info.size == peaks.read == total
    assert peaks.put_peak < 8 << 20
    assert peaks.read_peak < 8 << 20


def test_seal_writes_what_the_store_reads(kek: FileKeyProvider) -> None:
    """Envelopes with small segments (any writer may choose its segment size) read back."""
    data = CANARY * 40
    out = io.BytesIO()
    digest, size = seal([data[:5], data[5:]], out, kek, segment_size=64)
    backend = MemoryBackend()
    backend.objects[_key(digest)] = out.getvalue()

    assert ArtifactStore(backend, key_provider=kek).get_bytes(digest) == data
    assert ArtifactStore(backend, key_provider=kek).size(digest) == size == len(data)
