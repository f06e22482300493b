"""The content-addressed store: hashing, de-duplication and verification, once.

Blobs are named by the SHA-256 of their bytes, so the same file logged by a thousand
runs is stored once, and every read can prove it got back what was written. Everything
here works in 1 MiB chunks so multi-GB artifacts never have to fit in memory.

With a key provider, new blobs are stored as encrypted envelopes (see ``_encryption``);
digests stay those of the plaintext, so de-duplication and verification do not change.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mloop.artifacts import _encryption
from mloop.artifacts._backends import _Backend, open_backend
from mloop.artifacts._kek import KeyProvider, open_key_provider
from mloop.artifacts._paths import BLOB_PREFIX, blob_key, check_digest, digest_of_key
from mloop.errors import IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from mloop.config import Settings

CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its SHA-256 (hex) and its size in bytes."""

    digest: str
    size: int


class _Setting(Enum):
    FROM_SETTINGS = "from settings"


def open_artifact_store(
    uri: str,
    *,
    s3_endpoint_url: str | None = None,
    key_provider: KeyProvider | _Setting | None = _Setting.FROM_SETTINGS,
) -> ArtifactStore:
    """Open the store at ``uri``: a folder, ``file://``, ``s3://bucket/prefix`` or ``memory://``.

    ``s3_endpoint_url`` points s3:// at an S3-compatible server (MinIO, moto, …).
    ``key_provider`` encrypts new blobs; by default it comes from the ``kek_file`` setting
    (``MLOOP_KEK_FILE``), so every component that opens the store encrypts alike. Pass
    ``None`` for a store that writes plaintext (it still reports encrypted blobs clearly).
    """
    if key_provider is _Setting.FROM_SETTINGS:
        key_provider = key_provider_from_settings()
    return ArtifactStore(
        open_backend(uri, s3_endpoint_url=s3_endpoint_url), key_provider=key_provider
    )


def artifact_store_for(settings: Settings | None = None) -> ArtifactStore:
    """The artifact store ``settings`` describe — root, S3 endpoint and key-encryption key
    read from the same object, so a custom ``Settings`` that turns encryption on is obeyed
    even when the environment and ``mloop.toml`` say nothing (default: the current ones)."""
    if settings is None:
        from mloop.config import get_settings

        settings = get_settings()
    return open_artifact_store(
        settings.resolved_artifact_uri,
        s3_endpoint_url=settings.s3_endpoint_url,
        key_provider=key_provider_from_settings(settings),
    )


def key_provider_from_settings(settings: Settings | None = None) -> KeyProvider | None:
    """The provider the ``kek_file`` setting names (``MLOOP_KEK_FILE`` unless ``settings``
    are given), or ``None`` when encryption is off."""
    if settings is None:
        from mloop.config import get_settings

        settings = get_settings()
    location = settings.kek_file
    return open_key_provider(location) if location else None


class ArtifactStore:
    """Immutable blobs addressed by digest, over any byte-level backend."""

    def __init__(self, backend: _Backend, *, key_provider: KeyProvider | None = None) -> None:
        self._backend = backend
        self._key_provider = key_provider

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    @property
    def root(self) -> str:
        """The URI of the store, as given to :func:`open_artifact_store` (normalized)."""
        return self._backend.root

    @property
    def key_provider(self) -> KeyProvider | None:
        """The provider new blobs are encrypted with; ``None`` means they are stored as is."""
        return self._key_provider

    # -- writing --------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: str | os.PathLike[str]) -> BlobInfo:
        """Store a local file.

        The file is copied while it is hashed, and the copy is uploaded: a file still being
        written (a checkpoint, a log) can then never end up stored under a digest that does
        not match its stored bytes.
        """
        with Path(path).open("rb") as stream:
            return self.put_stream(stream)

    def put_stream(self, stream: BinaryIO) -> BlobInfo:
        """Store everything ``stream`` yields, in bounded memory, de-duplicated.

        Content that fits in one chunk is hashed in memory first, so storing something the
        store already has (a run's environment lock, say) writes nothing at all.
        """
        head = _read_chunk(stream)
        if len(head) < CHUNK_SIZE:
            tail = _read_chunk(stream)
            if not tail:
                info = BlobInfo(hashlib.sha256(head).hexdigest(), len(head))
                if self._backend.exists(blob_key(info.digest)):
                    return info
            head += tail
        fd, name = tempfile.mkstemp(prefix=".spool-", dir=self._backend.staging_dir())
        spool = Path(name)
        try:
            with os.fdopen(fd, "w+b") as out:
                if self._key_provider is None:
                    info = _copy_hashing(head, stream, out)
                else:
                    # Encrypted while spooled: plaintext never lands in the staging folder.
                    info = BlobInfo(
                        *_encryption.seal(_chunks(head, stream), out, self._key_provider)
                    )
            key = blob_key(info.digest)
            if not self._backend.exists(key):
                self._backend.put_file(spool, key)
        finally:
            spool.unlink(missing_ok=True)
        return info

    # -- reading --------------------------------------------------------------------------

    def get_bytes(self, digest: str) -> bytes:
        with self.open(digest) as stream:
            return stream.read()

    def open(self, digest: str) -> BinaryIO:
        """A reader that raises :class:`IntegrityError` at the end if the bytes were changed.

        Only a read that reaches the end is verified; stop early and nothing is checked.
        """
        key = blob_key(digest)
        try:
            raw = self._backend.open(key)
        except FileNotFoundError:
            raise self._not_found(digest) from None
        try:
            content = _encryption.open_plaintext(raw, digest, self._key_provider, self.root)
        except BaseException:
            raw.close()
            raise
        return io.BufferedReader(_VerifyingReader(content, digest, self.root), CHUNK_SIZE)

    def download(self, digest: str, dest: str | os.PathLike[str]) -> None:
        """Write the blob to ``dest``, which appears only once the bytes are verified."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(digest) as stream:
            fd, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".partial", dir=target.parent
            )
            partial = Path(name)
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := stream.read(CHUNK_SIZE):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)

    # -- inspecting -----------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self._backend.exists(blob_key(digest))

    def size(self, digest: str) -> int:
        """The size of the content (for an encrypted blob, of its plaintext)."""
        key = blob_key(digest)
        try:
            stored = self._backend.size(key)
            if stored < _encryption.PREFIX_BYTES:
                return stored
            with self._backend.open(key) as raw:
                return _encryption.plaintext_size(raw, digest, stored, self.root)
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def delete(self, digest: str) -> None:
        """Remove a blob; the caller must know no run or model still refers to it."""
        try:
            self._backend.delete(blob_key(digest))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def list(self) -> Iterator[BlobInfo]:
        """Every blob, in digest order; stray objects under the blob prefix are ignored.

        Sizes come from the listing alone, so they are those of the stored objects: for an
        encrypted blob a little more than its content (:meth:`size` gives the content's).
        """
        for key, size in self._backend.list(BLOB_PREFIX):
            digest = digest_of_key(key)
            if digest is not None:
                yield BlobInfo(digest, size)

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(
            f"blob {digest} is not in the artifact store {self.root}; check that the store "
            "URI (MLOOP_ARTIFACT_URI) is the one the artifact was logged to",
            details={"digest": digest, "root": self.root},
        )


def _read_chunk(stream: BinaryIO) -> bytes:
    chunk = stream.read(CHUNK_SIZE)
    if isinstance(chunk, str):
        raise InvalidInput(
            "put_stream needs a binary stream (open the file with mode 'rb'), but it yielded text"
        )
    return chunk or b""


def _chunks(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    chunk = head
    while chunk:
        yield chunk
        chunk = _read_chunk(stream)


def _copy_hashing(head: bytes, stream: BinaryIO, out: BinaryIO) -> BlobInfo:
    hasher = hashlib.sha256()
    size = 0
    chunk = head
    while chunk:
        hasher.update(chunk)
        out.write(chunk)
        size += len(chunk)
        chunk = _read_chunk(stream)
    return BlobInfo(hasher.hexdigest(), size)


class _VerifyingReader(io.RawIOBase):
    """Hashes what passes through and checks the digest when the end is reached."""

    def __init__(self, inner: BinaryIO | io.RawIOBase, digest: str, root: str) -> None:
        self._inner = inner
        self._digest = check_digest(digest)
        self._root = root
        self._hasher = hashlib.sha256()
        self._size = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._take(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def readall(self) -> bytes:
        """Read in large chunks: the inherited version reads 8 KiB at a time."""
        parts = []
        while chunk := self._take(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def _take(self, size: int) -> bytes:
        chunk = self._inner.read(size)
        if not chunk:
            self._verify()
            return b""
        self._hasher.update(chunk)
        self._size += len(chunk)
        return chunk

    def _verify(self) -> None:
        if self._verified:
            return
        found = self._hasher.hexdigest()
        if found != self._digest:
            raise IntegrityError(
                f"blob {self._digest} in {self._root} is corrupted: its {self._size} stored "
                f"bytes hash to {found}. It was changed or damaged after it was written; "
                "restore it from a backup, or delete it and log the artifact again",
                details={
                    "digest": self._digest,
                    "found_digest": found,
                    "found_size": self._size,
                    "root": self._root,
                },
            )
        self._verified = True

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()
