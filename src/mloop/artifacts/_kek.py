"""Key-encryption keys (KEKs): the provider seam, its registry, and the built-in file provider.

Every encrypted blob has its own random data key; a provider only ever wraps and unwraps
those 32-byte data keys, so the KEK itself never touches artifact bytes and can live in a
file today and in a cloud KMS tomorrow. Providers are chosen by URI scheme, like artifact
backends: ``MLOOP_KEK_FILE=/secrets/mloop.kek`` is the file provider, and a plugin that
calls :func:`register_key_provider("aws-kms", …)` makes ``aws-kms://…`` mean its provider.
The built-in file provider registers itself through the same function. ``cryptography`` is
imported only when a key is used, so ``import mloop`` does not pay for it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mloop.errors import Conflict, EncryptionKeyError, IntegrityError, InvalidInput

KEY_BYTES = 32
KEK_FORMAT = "mloop-kek"
KEK_FORMAT_VERSION = 1
_MAX_KEK_FILE_BYTES = 4096
_WRAP_NONCE_BYTES = 12
_WRAP_LABEL = b"mloop artifact data key v1"
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9+.-]{1,31}")


class KeyProvider(ABC):
    """Wraps and unwraps per-object data keys with a key-encryption key.

    ``name`` (the provider's scheme) and ``key_id`` are written into every envelope header
    in the clear, so both must be safe to show: a fingerprint or a KMS key ARN, never key
    material. ``unwrap`` raises :class:`EncryptionKeyError` when it does not hold (or may not
    use) the key ``key_id`` names, and :class:`IntegrityError` when the wrapped key is not
    authentic — the store turns both into messages naming the blob.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """The scheme the provider is registered under (``file``, ``aws-kms``, …)."""

    @property
    @abstractmethod
    def key_id(self) -> str:
        """The id of the key new data keys are wrapped with."""

    @abstractmethod
    def wrap(self, data_key: bytes) -> bytes:
        """Encrypt a data key under the current KEK."""

    @abstractmethod
    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Recover a data key that was wrapped under the KEK ``key_id``."""

    def can_unwrap(self, key_id: str) -> bool:
        """Whether this provider holds ``key_id``; override to keep retired KEKs readable."""
        return key_id == self.key_id

    def describe(self) -> str:
        """Where the key comes from, for error messages (never the key itself)."""
        return f"{self.name} key {self.key_id}"


KeyProviderFactory = Callable[[str], KeyProvider]

_lock = threading.Lock()
_factories: dict[str, KeyProviderFactory] = {}


def register_key_provider(name: str, factory: KeyProviderFactory) -> None:
    """Make ``NAME://REFERENCE`` in ``MLOOP_KEK_FILE`` open ``factory(REFERENCE)``.

    Register before the artifact store is opened (at import of the plugin). Registering a
    name again replaces the factory, so a plugin can be reloaded.
    """
    if not isinstance(name, str) or not _PROVIDER_NAME.fullmatch(name):
        raise InvalidInput(
            f"key provider name {name!r} is not valid: use 2-32 lowercase letters, digits, "
            "'+', '-' or '.', starting with a letter (it becomes the URI scheme)"
        )
    if not callable(factory):
        raise InvalidInput(f"the factory for key provider {name!r} must be callable")
    with _lock:
        _factories[name] = factory


def registered_key_providers() -> list[str]:
    with _lock:
        return sorted(_factories)


def open_key_provider(location: str | os.PathLike[str]) -> KeyProvider:
    """The provider a ``MLOOP_KEK_FILE`` value names: a path, ``file://…`` or ``NAME://…``."""
    text = os.fspath(location)
    match = _URI.match(text)
    scheme, reference = (match.group(1).lower(), match.group(2)) if match else ("file", text)
    if match and scheme == "file":
        from mloop.artifacts._backends import local_path

        reference = local_path(text)
    with _lock:
        factory = _factories.get(scheme)
    if factory is None:
        valid = ", ".join(f"{name}://" for name in registered_key_providers())
        raise EncryptionKeyError(
            f"MLOOP_KEK_FILE names key provider {scheme!r}, which is not registered; use a "
            f"KEK file path or one of: {valid} (plugins register theirs with "
            "mloop.artifacts.register_key_provider)",
            details={"provider": scheme, "registered": registered_key_providers()},
        )
    return factory(reference)


def key_id_of(key: bytes) -> str:
    """A public fingerprint of a KEK: different keys get different ids, so a wrong key is
    detected before any decryption is attempted, and the id reveals nothing of the key."""
    return "kek-" + hashlib.sha256(b"mloop kek id v1\x00" + key).hexdigest()[:24]


class FileKeyProvider(KeyProvider):
    """An AES-256 KEK read from a local file (see :func:`generate_kek_file`).

    ``previous`` are retired KEK files kept readable during a rotation; new data keys are
    always wrapped with the file at ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, previous: tuple[str | os.PathLike[str], ...] = ()
    ) -> None:
        self._path = Path(path)
        self._key = read_kek_file(self._path)
        self._key_id = key_id_of(self._key)
        self._keys = {self._key_id: self._key}
        for old in previous:
            key = read_kek_file(Path(old))
            self._keys.setdefault(key_id_of(key), key)

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self._path)!r}, key_id={self._key_id!r})"

    @property
    def name(self) -> str:
        return "file"

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        return f"key {self._key_id} from the KEK file {self._path}"

    def can_unwrap(self, key_id: str) -> bool:
        return key_id in self._keys

    def wrap(self, data_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(_WRAP_NONCE_BYTES)
        return nonce + AESGCM(self._key).encrypt(nonce, data_key, _wrap_aad(self._key_id))

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._keys.get(key_id)
        if key is None:
            raise EncryptionKeyError(
                f"the data key was wrapped with {key_id}, which {self.describe()} is not",
                details={"expected_key_id": key_id, "configured_key_id": self._key_id},
            )
        nonce, sealed = wrapped[:_WRAP_NONCE_BYTES], wrapped[_WRAP_NONCE_BYTES:]
        try:
            data_key = AESGCM(key).decrypt(nonce, sealed, _wrap_aad(key_id))
        except (InvalidTag, ValueError):
            # The key id is a fingerprint of the key, so the right key failing means the
            # wrapped bytes themselves were changed.
            raise IntegrityError(
                f"the wrapped data key does not verify under {key_id}: the envelope header "
                "was changed or damaged"
            ) from None
        if len(data_key) != KEY_BYTES:
            raise IntegrityError("the unwrapped data key has the wrong length")
        return data_key


def _wrap_aad(key_id: str) -> bytes:
    return _WRAP_LABEL + b"\x00" + key_id.encode()


# -- KEK files --------------------------------------------------------------------------------


def parse_kek(content: bytes, *, source: str = "the KEK file") -> bytes:
    """The 32-byte key in a KEK file: mloop's JSON format, or exactly 32 raw bytes
    (``head -c 32 /dev/urandom``), so keys made by other tools work too."""
    if len(content) == KEY_BYTES and not content.lstrip().startswith(b"{"):
        return content
    if len(content) > _MAX_KEK_FILE_BYTES:
        raise _bad_kek(source, f"it is {len(content)} bytes, far too big for a key")
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        raise _bad_kek(source, "it is neither mloop's JSON KEK format nor 32 raw bytes") from None
    if not isinstance(document, dict) or document.get("format") != KEK_FORMAT:
        raise _bad_kek(source, f"it is JSON but not a {KEK_FORMAT!r} document")
    version = document.get("version")
    if version != KEK_FORMAT_VERSION:
        raise _bad_kek(
            source,
            f"its format version {version!r} is not one this mloop reads "
            f"({KEK_FORMAT_VERSION}); upgrade mloop",
        )
    encoded = document.get("key")
    try:
        key = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise _bad_kek(source, "its 'key' is not 32 bytes of base64")
    stated = document.get("key_id")
    if stated is not None and stated != key_id_of(key):
        raise _bad_kek(source, f"its key_id {stated!r} does not match its key (edited?)")
    return key


def read_kek_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            content = handle.read(_MAX_KEK_FILE_BYTES + 1)
    except FileNotFoundError:
        raise EncryptionKeyError(
            f"the KEK file {path} does not exist; create one with `mloop keys kek {path}` or "
            "point MLOOP_KEK_FILE at the key that encrypted the store",
            details={"path": str(path)},
        ) from None
    except OSError as exc:
        raise EncryptionKeyError(
            f"the KEK file {path} cannot be read ({exc.strerror or exc}); check its "
            "permissions, or point MLOOP_KEK_FILE elsewhere",
            details={"path": str(path)},
        ) from None
    return parse_kek(content, source=f"the KEK file {path}")


def _bad_kek(source: str, reason: str) -> EncryptionKeyError:
    return EncryptionKeyError(
        f"{source} is not a usable key-encryption key: {reason}. Create a new one with "
        "`mloop keys kek PATH` (existing encrypted artifacts still need their old key)",
        details={"source": source},
    )


def kek_document(key: bytes) -> bytes:
    document: dict[str, Any] = {
        "format": KEK_FORMAT,
        "version": KEK_FORMAT_VERSION,
        "algorithm": "AES-256",
        "key_id": key_id_of(key),
        "key": base64.b64encode(key).decode("ascii"),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def generate_kek_file(path: str | os.PathLike[str]) -> str:
    """Write a new random KEK to ``path`` (mode 0600) and return its key id.

    The file appears complete or not at all, and an existing file is never replaced:
    overwriting a KEK would make every artifact encrypted under it unreadable.
    """
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise Conflict(
            f"{target} already exists; mloop never overwrites a key-encryption key (the "
            "artifacts it protects would become unreadable) — choose another path",
            details={"path": str(target)},
        )
    if not target.parent.is_dir():
        raise InvalidInput(
            f"the folder {target.parent} does not exist; create it first (mode 0700 is wise)",
            details={"path": str(target)},
        )
    key = secrets.token_bytes(KEY_BYTES)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(kek_document(key))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, target)  # fails, unlike rename, when the target appeared meanwhile
        except FileExistsError:
            raise Conflict(
                f"{target} already exists; mloop never overwrites a key-encryption key",
                details={"path": str(target)},
            ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_dir(target.parent)
    return key_id_of(key)


def _fsync_dir(folder: Path) -> None:
    """Make the new name durable: a KEK that vanishes after a crash loses every artifact."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


register_key_provider("file", FileKeyProvider)
