"""Byte streams the scanner reads: windows into a file, decompressors, spooled copies.

Every format is read as a stream from its start, so nothing is held in memory whole:
archive members are windows into the archive (or decompressors over such windows), and a
container that needs random access (zip, tar, 7z) nested inside a compressed stream is
first spooled to a temporary file. A shared :class:`Budget` stops decompression bombs.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

from mloop.models._scan._reader import CHUNK

Opener = Callable[[], BinaryIO]
"""Opens a content from its first byte (called again to read it a second time)."""


class ScanLimit(Exception):
    """Decompressed data exceeds the scan's budget (a decompression bomb, or simply more
    than the scanner agrees to read)."""


class Unsupported(Exception):
    """A compression the scanner cannot read here (e.g. lz4 without the lz4 package)."""


class Budget:
    """How many decompressed bytes one scan may produce in total."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise ScanLimit(
                f"decompresses to more than {self.limit:,} bytes; the scanner stops there "
                "(a decompression bomb?)"
            )


class Window(io.RawIOBase):
    """``size`` bytes of ``file`` from ``start``; seeking is as cheap as in the file."""

    cheap_seek = True

    def __init__(self, file: BinaryIO, start: int, size: int) -> None:
        self._file = file
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(n)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _Inflating(io.RawIOBase):
    """A zlib (``wbits=15``) or raw deflate (``wbits=-15``) stream, read incrementally;
    data after the end of the stream is an error (no writer leaves any)."""

    def __init__(self, raw: BinaryIO, wbits: int) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(wbits)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._inflate.eof:
                if self._inflate.unused_data or self._raw.read(1):
                    raise zlib.error("data after the end of the compressed stream")
                return 0
            data = self._inflate.unconsumed_tail or self._raw.read(CHUNK)
            if not data and not self._inflate.unconsumed_tail:
                raise EOFError("the compressed stream is truncated")
            out = self._inflate.decompress(data, len(view))
            if out:
                view[: len(out)] = out
                return len(out)


class _Unzip(io.RawIOBase):
    """A zip member compressed with a method zipfile knows (bzip2, lzma)."""

    def __init__(self, raw: BinaryIO, method: int) -> None:
        import zipfile

        self._raw = raw
        self._decompressor = zipfile._get_decompressor(method)  # type: ignore[attr-defined]
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            data = self._raw.read(CHUNK)
            if not data:
                return 0
            self._out = self._decompressor.decompress(data)
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


class _Counted(io.RawIOBase):
    """Charges every byte read from ``inner`` to the budget; closing closes ``source`` too
    (the compressed stream, which the decompressors leave open)."""

    def __init__(self, inner: IO[bytes], budget: Budget, source: BinaryIO) -> None:
        self._inner = inner
        self._budget = budget
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        self._budget.spend(len(data))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        self._source.close()
        super().close()


def buffered(raw: io.RawIOBase) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(raw, CHUNK))


def decompressing(kind: str, raw: BinaryIO, budget: Budget) -> BinaryIO:
    """A stream of ``raw`` decompressed as ``kind`` (names from :mod:`._sniff`); closing
    it closes ``raw``, and so does a failure to open it."""
    try:
        return buffered(_Counted(_decompressor(kind, raw), budget, raw))
    except BaseException:
        raw.close()
        raise


def _decompressor(kind: str, raw: BinaryIO) -> IO[bytes]:
    inner: IO[bytes]
    if kind == "gzip":
        inner = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    elif kind == "bz2":
        inner = bz2.BZ2File(raw)
    elif kind in {"xz", "lzma"}:
        inner = lzma.LZMAFile(raw)  # noqa: SIM115 - closed with the returned stream
    elif kind == "zlib":
        inner = buffered(_Inflating(raw, 15))
    elif kind == "deflate":
        inner = buffered(_Inflating(raw, -15))
    elif kind == "lz4":
        try:
            import lz4.frame  # type: ignore[import-not-found]
        except ImportError:
            raise Unsupported("lz4-compressed; install the lz4 package to scan it") from None
        inner = lz4.frame.LZ4FrameFile(raw)
    elif kind == "zstd":
        inner = _zstd_reader(raw)
    elif kind.startswith("zip-method-"):
        inner = buffered(_Unzip(raw, int(kind.rsplit("-", 1)[1])))
    else:  # pragma: no cover - the sniffer only names the kinds above
        raise Unsupported(f"{kind} compression")
    return inner


def _zstd_reader(raw: BinaryIO) -> IO[bytes]:
    for module_name in ("compression.zstd", "backports.zstd"):
        try:
            module = __import__(module_name, fromlist=["ZstdFile"])
        except ImportError:
            continue
        return cast(IO[bytes], module.ZstdFile(raw))
    raise Unsupported("zstd-compressed; this Python cannot decompress zstd")


def spooled(opener: Opener, directory: str | None = None) -> BinaryIO:
    """A seekable temporary copy of the content (for formats that need random access)."""
    copy = cast(BinaryIO, tempfile.TemporaryFile(dir=directory))  # noqa: SIM115 - returned
    with opener() as source:
        shutil.copyfileobj(source, copy, CHUNK)
    copy.seek(0)
    return copy
