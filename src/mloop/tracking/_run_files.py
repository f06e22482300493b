"""Files sent with a new run through a server, by content once and by digest after that.

Automatic capture gives every run of a process the same files (the environment lock, the
uncommitted diff: tens of kilobytes). Sending them base64-encoded in every create-run
request, and decoding, hashing and looking them up in the artifact store on the server
for every run, was a fifth of what a run cost through the server. So a client sends a
file's bytes the first time, the server answers with the SHA-256 it stored them under,
and later runs send only ``{path: sha256}``.

The server accepts a digest only from a caller who sent those bytes to this server
process itself (it keeps them, bounded, in a :class:`ReceivedFiles`): knowing a file's
digest is not proof of holding the file, and must not let anyone attach a blob they could
not read to a run they can. A digest the server does not hold (restarted, another user,
evicted) is refused with the paths to send again, and the client resends them whole.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping

MAX_REMEMBERED_FILES = 256
MAX_REMEMBERED_BYTES = 64 << 20
RESEND_DETAIL = "resend"


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class DigestCache:
    """SHA-256 of content objects a process sends again and again, computed once each.

    Keyed by object identity, with the object kept referenced so its ``id`` cannot be
    reused by other content while it is in the cache.
    """

    def __init__(self, limit: int = 16) -> None:
        self._limit = limit
        self._known: dict[int, tuple[bytes, str]] = {}

    def digest(self, content: bytes) -> str:
        known = self._known.get(id(content))
        if known is not None and known[0] is content:
            return known[1]
        digest = sha256_hex(content)
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[id(content)] = (content, digest)
        return digest


class ReceivedFiles:
    """Server side: the files each caller sent with a new run, by ``(caller, sha256)``.

    Returning the same bytes object for a digest lets the backend reuse what it stored
    for that object (:class:`~mloop.tracking._sql_backend.SqlBackend` remembers the blobs
    of the objects it was given) instead of hashing and storing it again.
    """

    def __init__(
        self, max_files: int = MAX_REMEMBERED_FILES, max_bytes: int = MAX_REMEMBERED_BYTES
    ) -> None:
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._files: OrderedDict[tuple[str | None, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def remember(self, caller: str | None, content: bytes) -> str:
        """Keep ``content`` for ``caller``; return its SHA-256 (what the client refers to)."""
        digest = sha256_hex(content)
        if len(content) > self._max_bytes:
            return digest
        key = (caller, digest)
        with self._lock:
            if key in self._files:
                self._files.move_to_end(key)
                return digest
            self._files[key] = content
            self._bytes += len(content)
            while len(self._files) > self._max_files or self._bytes > self._max_bytes:
                _, dropped = self._files.popitem(last=False)
                self._bytes -= len(dropped)
        return digest

    def resolve(
        self, caller: str | None, digests: Mapping[str, str]
    ) -> tuple[dict[str, bytes], list[str]]:
        """The bytes for each ``{path: sha256}`` this caller sent before, and the paths of
        the digests it did not (sorted), which it must send again."""
        found: dict[str, bytes] = {}
        missing: list[str] = []
        with self._lock:
            for path, digest in digests.items():
                content = self._files.get((caller, digest))
                if content is None:
                    missing.append(path)
                else:
                    self._files.move_to_end((caller, digest))
                    found[path] = content
        return found, sorted(missing)


__all__ = ["RESEND_DETAIL", "DigestCache", "ReceivedFiles", "sha256_hex"]
