"""A forward-only buffered reader that skips large payloads without reading them.

The opcode walk reads a stream once, front to back, in fixed-size chunks, so memory stays
bounded whatever the file size. Payloads the walk does not need (array bytes, long
strings) are skipped: by seeking when the stream can seek, else by reading and discarding
chunk by chunk. Skipping past the end of the data is reported as truncation, exactly as a
real loader would fail there.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

CHUNK = 1 << 20
_CHEAP_SEEK = (io.BufferedReader, io.FileIO, io.BytesIO)


class Truncated(Exception):
    """The stream ended before a complete opcode or payload."""


class StreamReader:
    """Reads ``raw`` from its current position; ``offset`` is counted from that position."""

    __slots__ = ("_eof", "_raw", "_remaining_on_disk", "base", "buf", "pos")

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.buf = b""
        self.pos = 0
        self.base = 0
        self._remaining_on_disk = _remaining_seekable(raw)
        self._eof = False

    @property
    def offset(self) -> int:
        """Offset of the next unread byte, from where the reader started."""
        return self.base + self.pos

    def fill(self, needed: int) -> bool:
        """Make at least ``needed`` unread bytes available in ``buf`` from ``pos`` on;
        ``False`` when the stream ends first (what is there stays readable)."""
        available = len(self.buf) - self.pos
        if available >= needed:
            return True
        if self._eof:
            return False
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        while available < needed:
            chunk = self._raw.read(max(CHUNK, needed - available))
            if not chunk:
                self._eof = True
                break
            if self._remaining_on_disk is not None:
                self._remaining_on_disk -= len(chunk)
            parts.append(chunk)
            available += len(chunk)
        self.buf = b"".join(parts)
        return available >= needed

    def at_end(self) -> bool:
        return not self.fill(1)

    def read(self, n: int) -> bytes:
        if not self.fill(n):
            raise Truncated(f"needed {n} bytes, the data ends first")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def readline(self, limit: int) -> bytes | None:
        """Bytes up to and including the next newline; ``None`` when no newline comes
        within ``limit`` bytes or before the end (a loader fails there too)."""
        searched = 0
        while True:
            index = self.buf.find(b"\n", self.pos + searched)
            if index >= 0:
                if index - self.pos >= limit:
                    return None
                line = self.buf[self.pos : index + 1]
                self.pos = index + 1
                return line
            searched = len(self.buf) - self.pos
            if searched >= limit:
                return None
            self.fill(searched + 65536)
            if len(self.buf) - self.pos == searched:
                return None

    def skip_line(self) -> bool:
        """Move past the next newline without keeping the line; ``False`` at the end."""
        while True:
            index = self.buf.find(b"\n", self.pos)
            if index >= 0:
                self.pos = index + 1
                return True
            self.pos = len(self.buf)
            if not self.fill(1):
                return False

    def skip(self, n: int) -> None:
        """Move ``n`` bytes forward without keeping them."""
        available = len(self.buf) - self.pos
        if n <= available:
            self.pos += n
            return
        missing = n - available
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        if self._remaining_on_disk is not None:
            if missing > self._remaining_on_disk:
                raise Truncated(f"a payload of {n} bytes runs past the end of the data")
            self._raw.seek(missing, os.SEEK_CUR)
            self._remaining_on_disk -= missing
            self.base += missing
            return
        while missing:
            chunk = self._raw.read(min(CHUNK, missing))
            if not chunk:
                raise Truncated(f"a payload of {n} bytes runs past the end of the data")
            missing -= len(chunk)
            self.base += len(chunk)

    def detach(self) -> bytes:
        """The bytes read ahead but not consumed (for a caller taking the stream over)."""
        rest = self.buf[self.pos :]
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        return rest


def _remaining_seekable(raw: BinaryIO) -> int | None:
    """Bytes left in ``raw`` when it can seek cheaply (a real file or a window into one),
    else ``None`` (compressed streams seek by decompressing, which is no faster)."""
    if not is_cheaply_seekable(raw):
        return None
    try:
        here = raw.tell()
        end = raw.seek(0, os.SEEK_END)
        raw.seek(here)
    except (OSError, ValueError):
        return None
    return end - here


def is_cheaply_seekable(stream: BinaryIO) -> bool:
    """A file, an in-memory buffer or a window into a file (marked ``cheap_seek``)."""
    try:
        target = getattr(stream, "raw", stream) if isinstance(stream, io.BufferedReader) else stream
        cheap = getattr(target, "cheap_seek", isinstance(target, _CHEAP_SEEK))
        return bool(cheap) and stream.seekable()
    except (OSError, ValueError):
        return False
