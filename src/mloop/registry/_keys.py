"""API key material: making keys, parsing them, and hashing them for storage.

A key reads ``mloop_<key id>_<secret>``: the key id (16 hex digits) finds the stored row
without scanning, and the secret is 256 bits from :mod:`secrets`. The store keeps only a
salted scrypt hash of the whole key (per-key random salt; parameters recorded with the
hash so they can be raised later), compared with :func:`hmac.compare_digest`.

scrypt is deliberately slow (tens of milliseconds), which a server cannot pay on every
request; :class:`VerifiedKeys` remembers, in memory only, a fast digest of keys it has
already checked against a given stored hash, so a repeated key costs one BLAKE2b. A key
rotated, revoked or its user disabled is still caught: the caller reads the stored row on
every request and the cache is keyed by that row's hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict

from mloop.errors import Unauthenticated

PREFIX = "mloop"
_KEY = re.compile(r"^mloop_(?P<key_id>[0-9a-f]{8,32})_(?P<secret>[A-Za-z0-9_-]{16,128})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SCHEME = f"scrypt:n={_SCRYPT['n']},r={_SCRYPT['r']},p={_SCRYPT['p']}"


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str:
    """The key id inside ``key``; :class:`~mloop.errors.Unauthenticated` when ``key`` is not
    shaped like an mloop API key (the message never repeats the key)."""
    match = _KEY.match(key.strip()) if isinstance(key, str) else None
    if match is None:
        raise Unauthenticated(
            "the API key is malformed: mloop API keys look like mloop_<key id>_<secret>; "
            "create one with `mloop keys create USER`"
        )
    return match.group("key_id")


def new_salt() -> str:
    return secrets.token_hex(16)


def hash_key(key: str, salt: str, scheme: str = SCHEME) -> str:
    params = _parse_scheme(scheme)
    return hashlib.scrypt(
        key.strip().encode(), salt=bytes.fromhex(salt), dklen=32, maxmem=64 * 1024 * 1024, **params
    ).hex()


def _parse_scheme(scheme: str) -> dict[str, int]:
    name, _, params = scheme.partition(":")
    if name != "scrypt":
        raise Unauthenticated(f"this API key was hashed with {name!r}, which mloop cannot check")
    return {k: int(v) for k, v in (item.split("=") for item in params.split(","))}


class VerifiedKeys:
    """A bounded in-memory memo of keys that already matched a stored hash."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def matches(self, key: str, key_id: str, stored_hash: str, salt: str, scheme: str) -> bool:
        fast = hashlib.blake2b(key.strip().encode(), digest_size=32).digest()
        slot = (key_id, stored_hash)
        with self._lock:
            remembered = self._seen.get(slot)
            if remembered is not None:
                self._seen.move_to_end(slot)
        if remembered is not None:
            return hmac.compare_digest(remembered, fast)
        if not hmac.compare_digest(hash_key(key, salt, scheme), stored_hash):
            return False
        with self._lock:
            self._seen[slot] = fast
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
