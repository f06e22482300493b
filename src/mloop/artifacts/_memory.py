"""In-memory backend, so tests of code above the store need no disk and no cleanup.

Each store opened on ``memory://`` has its own objects; nothing is shared between stores.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


class MemoryBackend:
    def __init__(self, uri: str = "memory://") -> None:
        self._uri = "memory://" + uri.split("://", 1)[-1].strip("/")
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> str:
        return self._uri

    def staging_dir(self) -> Path | None:
        return None

    def put_file(self, src: Path, key: str) -> None:
        data = src.read_bytes()
        with self._lock:
            self.objects[key] = data

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._get(key))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def size(self, key: str) -> int:
        return len(self._get(key))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._lock:
            found = sorted((k, len(v)) for k, v in self.objects.items() if k.startswith(prefix))
        yield from found

    def delete(self, key: str) -> None:
        with self._lock:
            if self.objects.pop(key, None) is None:
                raise FileNotFoundError(key)

    def _get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None


def open_memory(location: str, **_options: Any) -> MemoryBackend:
    return MemoryBackend(location)
