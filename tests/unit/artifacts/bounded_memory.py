"""Streaming a large blob through a store and back while tracemalloc watches: the store
and the encrypting store are held to the same bound with the same stream."""

from __future__ import annotations

import io
import os
import tracemalloc
from dataclasses import dataclass

from mloop.artifacts import ArtifactStore, BlobInfo


@dataclass(frozen=True)
class Peaks:
    info: BlobInfo
    read: int
    put_peak: int
    read_peak: int


class _Endless(io.RawIOBase):
    """``total`` bytes of random blocks, produced as they are read (never held whole)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.block = os.urandom(1 << 16)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.total - self.sent, len(self.block))
        buffer[:n] = self.block[:n]
        self.sent += n
        return n


def stream_through(store: ArtifactStore, total: int) -> Peaks:
    """Put ``total`` bytes as a stream, read them back in 1 MiB reads; the peak traced
    memory of each half."""
    tracemalloc.start()
    try:
        info = store.put_stream(io.BufferedReader(_Endless(total)))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with store.open(info.digest) as reader:
            read = sum(len(chunk) for chunk in iter(lambda: reader.read(1 << 20), b""))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Peaks(info, read, put_peak, read_peak)
