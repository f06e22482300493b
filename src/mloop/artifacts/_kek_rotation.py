"""Rotating the key-encryption key: re-wrap every blob's data key under the new KEK.

Only the envelope header changes — the data key inside is recovered with the old KEK and
wrapped with the new one, and the encrypted segments are copied byte for byte, never
decrypted. Blobs stored before encryption was turned on can be encrypted in the same pass.
Each blob is replaced atomically under its own key, so readers see the old object or the
new one, and a rotation that stops half-way can simply be run again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mloop.artifacts import _encryption
from mloop.artifacts._kek import KeyProvider
from mloop.artifacts._paths import blob_key
from mloop.errors import ConfigError

if TYPE_CHECKING:
    from mloop.artifacts._store import ArtifactStore


@dataclass(frozen=True)
class RewrapReport:
    """What a rotation pass did, blob by blob."""

    rewrapped: int
    """Encrypted under an older KEK; now under the current one."""
    encrypted: int
    """Stored as plaintext; now encrypted (only with ``encrypt_plaintext``)."""
    current: int
    """Already under the current KEK; left alone."""
    plaintext: int
    """Stored as plaintext and left so."""

    def to_dict(self) -> dict[str, int]:
        return {
            "rewrapped": self.rewrapped,
            "encrypted": self.encrypted,
            "current": self.current,
            "plaintext": self.plaintext,
        }


class _OldOrNew(KeyProvider):
    """Unwraps with whichever of the two providers holds the key a header names."""

    def __init__(self, new: KeyProvider, old: KeyProvider | None) -> None:
        self._new = new
        self._old = old

    @property
    def name(self) -> str:
        return self._new.name

    @property
    def key_id(self) -> str:
        return self._new.key_id

    def describe(self) -> str:
        if self._old is None:
            return self._new.describe()
        return f"{self._new.describe()} or the previous {self._old.describe()}"

    def can_unwrap(self, key_id: str) -> bool:
        return self._new.can_unwrap(key_id) or (
            self._old is not None and self._old.can_unwrap(key_id)
        )

    def wrap(self, data_key: bytes) -> bytes:
        return self._new.wrap(data_key)

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        if self._new.can_unwrap(key_id) or self._old is None:
            return self._new.unwrap(wrapped, key_id)
        return self._old.unwrap(wrapped, key_id)


def rewrap_store(
    store: ArtifactStore,
    *,
    previous: KeyProvider | None = None,
    encrypt_plaintext: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RewrapReport:
    """Bring every blob of ``store`` under its current KEK (``store.key_provider``).

    ``previous`` opens data keys wrapped by the KEK being retired. Keep the old KEK until
    this returns without error: a blob it cannot open stops the pass with
    :class:`~mloop.errors.EncryptionKeyError`, and running it again resumes. ``progress`` is
    called with the number of blobs looked at so far.
    """
    current = store.key_provider
    if current is None:
        raise ConfigError(
            "re-wrapping needs the new key-encryption key: set MLOOP_KEK_FILE to it (the old "
            "one goes in --old-kek)"
        )
    provider = _OldOrNew(current, previous)
    backend = store._backend  # the rotation replaces objects in place, below the CAS API
    counts = {"rewrapped": 0, "encrypted": 0, "current": 0, "plaintext": 0}
    for seen, blob in enumerate(store.list(), start=1):
        key = blob_key(blob.digest)
        fd, name = tempfile.mkstemp(prefix=".rewrap-", dir=backend.staging_dir())
        spool = Path(name)
        try:
            with os.fdopen(fd, "w+b") as out:
                outcome = _rewrite(store, blob.digest, provider, encrypt_plaintext, out)
            if outcome in ("rewrapped", "encrypted"):
                backend.put_file(spool, key)
        finally:
            spool.unlink(missing_ok=True)
        counts[outcome] += 1
        if progress is not None:
            progress(seen)
    return RewrapReport(**counts)


def _rewrite(
    store: ArtifactStore,
    digest: str,
    provider: KeyProvider,
    encrypt_plaintext: bool,
    out: BinaryIO,
) -> str:
    with store._backend.open(blob_key(digest)) as raw:
        outcome = _encryption.rewrap(raw, digest, provider, provider, out, store.root)
    if outcome != "plaintext" or not encrypt_plaintext:
        return outcome
    # Read through the store so the plaintext is verified against its digest first.
    with store.open(digest) as content:
        chunks = iter(lambda: content.read(_encryption.DEFAULT_SEGMENT_SIZE), b"")
        _encryption.seal(chunks, out, provider)
    return "encrypted"
