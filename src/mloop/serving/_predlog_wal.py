"""The write-ahead file under the prediction log: framing, appends, durable segments.

A request is acknowledged only after its record is in a local file the kernel holds (and,
with ``fsync="always"`` or ``"group"``, on the disk), so ``kill -9`` never loses an
answered request. Object storage cannot append, so records land here first and the
compactor turns closed segments into Parquet later.

Segment file: the 8-byte header ``MLPWAL01`` (format version 1), then frames::

    length: u32 little-endian | crc32(length bytes + payload): u32 little-endian | payload

The CRC covers the length too, so a damaged length is caught like a damaged payload.
Payloads are orjson objects (they start with ``{``), which lets the reader find the next
frame again after damage in the middle of a file (see :func:`scan_frames`).

Segments are named ``<uuid>.wal``. The writer holds an exclusive ``flock`` on its open
segment; a segment whose lock can be taken is closed (rolled, or left by a process that
died) and is fair game for the compactor. Several server processes can share one
directory: each owns only the segment it has locked.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mloop.errors import ConfigError

logger = logging.getLogger("mloop.serving.log")

HEADER = b"MLPWAL01"
_FRAME = struct.Struct("<II")
MAX_PAYLOAD = 64 << 20
SUFFIX = ".wal"
_TMP_SUFFIX = ".wal.tmp"

SyncPolicy = Literal["always", "group", "interval", "off"]
SYNC_POLICIES: tuple[str, ...] = ("always", "group", "interval", "off")


def encode_frame(payload: bytes) -> bytes:
    """One framed record; raises ``ValueError`` for a payload the reader would refuse."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a log record is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    length = len(payload).to_bytes(4, "little")
    return length + zlib.crc32(payload, zlib.crc32(length)).to_bytes(4, "little") + payload


@dataclass
class Scan:
    """What a segment holds: ``frames`` as (byte offset, payload); ``damaged`` counts the
    stretches skipped in the middle of the file (records there are lost); ``torn`` says the
    file ended inside a frame (a write that was cut off, so never acknowledged)."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    damaged: int = 0
    torn: bool = False


def _frame_at(data: bytes, pos: int) -> int:
    """The payload length of a valid frame starting at ``pos``, or -1."""
    if pos + _FRAME.size > len(data):
        return -1
    length, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + length
    if length > MAX_PAYLOAD or end > len(data):
        return -1
    body = memoryview(data)[pos + _FRAME.size : end]
    if zlib.crc32(body, zlib.crc32(data[pos : pos + 4])) != crc:
        return -1
    return int(length)


def _resync(data: bytes, start: int) -> int:
    """The offset of the next valid frame after damage at ``start``, or -1. Candidates are
    the positions eight bytes before a ``{`` (every payload is a JSON object), so a long
    damaged stretch is skipped without checking a CRC at every byte."""
    brace = data.find(b"{", start + _FRAME.size + 1)
    while brace != -1:
        pos = brace - _FRAME.size
        if _frame_at(data, pos) >= 0:
            return pos
        brace = data.find(b"{", brace + 1)
    return -1


def scan_frames(data: bytes) -> Scan:
    """Every intact frame of a segment body (without its header).

    A frame that fails its check is skipped when a valid frame follows it (damage in the
    middle: that record is lost, the ones after it are kept and ``damaged`` counts it); when
    nothing valid follows, the file ends in a torn write, which was never acknowledged.
    """
    scan = Scan()
    pos = 0
    while pos < len(data):
        length = _frame_at(data, pos)
        if length >= 0:
            scan.frames.append((pos, data[pos + _FRAME.size : pos + _FRAME.size + length]))
            pos += _FRAME.size + length
            continue
        following = _resync(data, pos)
        if following < 0:
            scan.torn = True
            break
        scan.damaged += 1
        pos = following
    return scan


def read_segment(path: Path) -> Scan:
    """The frames of one segment file; a file without the header holds nothing readable."""
    data = path.read_bytes()
    if not data.startswith(HEADER):
        return Scan(torn=bool(data))
    scan = scan_frames(data[len(HEADER) :])
    scan.frames = [(offset + len(HEADER), payload) for offset, payload in scan.frames]
    return scan


def segment_id(path: Path) -> str:
    return path.name.removesuffix(SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make a create, rename or unlink in ``folder`` itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Segment:
    def __init__(self, directory: Path) -> None:
        self.id = uuid.uuid4().hex
        tmp = directory / f"{self.id}{_TMP_SUFFIX}"
        self.path = directory / f"{self.id}{SUFFIX}"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(self.fd, HEADER)
            os.fsync(self.fd)
            # Renamed only once locked, so the compactor never sees an unlocked live segment.
            os.replace(tmp, self.path)
            fsync_dir(directory)
        except BaseException:
            os.close(self.fd)
            raise
        self.size = len(HEADER)
        self.records = 0
        self.opened = time.monotonic()

    def close(self) -> None:
        os.close(self.fd)  # releases the flock: the segment is now closed and compactable


class WalWriter:
    """Appends framed records to the current segment of one directory.

    ``sync``: ``"always"`` fsyncs every append before it returns; ``"group"`` lets appends
    from concurrent threads share one fsync (each still returns only once its own bytes are
    on disk); ``"interval"`` returns once the kernel has the bytes and a background thread
    fsyncs every ``flush_interval`` seconds (Redis's ``appendfsync everysec``: a killed
    process loses nothing, a power cut at most the last interval); ``"off"`` leaves the
    flushing to the kernel.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sync: SyncPolicy = "always",
        roll_bytes: int = 64 << 20,
        flush_interval: float = 1.0,
    ) -> None:
        if sync not in SYNC_POLICIES:
            raise ConfigError(
                f"unknown fsync policy {sync!r}; use one of {', '.join(SYNC_POLICIES)}"
            )
        self.directory = directory
        self.sync = sync
        self.roll_bytes = roll_bytes
        self.flush_interval = flush_interval
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._segment: _Segment | None = None
        self._written = 0
        self._synced = 0
        self._syncing = False
        self._closed = False
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._syncer: threading.Thread | None = None
        self._syncer_idle = False

    def append(self, payloads: Sequence[bytes]) -> None:
        """Write ``payloads`` (one write call) and return once they are durable per policy."""
        data = b"".join(encode_frame(p) for p in payloads)
        with self._cond:
            segment = self._current()
            _write_all(segment.fd, data)
            segment.size += len(data)
            segment.records += len(payloads)
            self._written += 1
            mine = self._written
            if self.sync == "always":
                os.fsync(segment.fd)
                self._synced = mine
            elif self.sync == "group":
                self._wait_synced(mine)
            elif self.sync == "interval":
                self._start_syncer()
            if segment.size >= self.roll_bytes:
                self._roll_locked()

    async def append_async(self, payloads: Sequence[bytes]) -> None:
        """:meth:`append` for an event loop: the write happens now (microseconds); the
        fsync runs on a syncer thread and every append waiting meanwhile shares the next
        one (group commit, whatever the policy), so the loop never blocks on the disk."""
        data = b"".join(encode_frame(p) for p in payloads)
        with self._cond:
            segment = self._current()
            _write_all(segment.fd, data)
            segment.size += len(data)
            segment.records += len(payloads)
            self._written += 1
            if segment.size >= self.roll_bytes:
                self._roll_locked()  # fsyncs: what was just written is durable
            if self.sync == "interval":
                self._start_syncer()
                return
            if self.sync == "off" or self._synced >= self._written:
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((self._written, loop, future))
            self._start_syncer()
            if self._syncer_idle:  # a busy syncer looks for waiters after its fsync
                self._cond.notify_all()
        await future

    def _start_syncer(self) -> None:
        if self._syncer is None:
            target = self._flush_loop if self.sync == "interval" else self._sync_loop
            self._syncer = threading.Thread(target=target, name="mloop-wal-syncer", daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        """Group commit for async appends: one fsync for every append waiting when it starts."""
        with self._cond:
            while True:
                while not self._waiters or self._syncing:
                    if self._closed and not self._waiters:
                        return
                    self._syncer_idle = True
                    self._cond.wait()
                    self._syncer_idle = False
                if self._synced >= self._written or self._segment is None:
                    self._synced = max(self._synced, self._written)
                    self._release_waiters(None)
                    continue
                self._release_waiters(self._fsync_unlocked())

    def _flush_loop(self) -> None:
        """``"interval"``: fsync what was written since the last round, every interval."""
        with self._cond:
            while not self._closed:
                self._cond.wait(self.flush_interval)
                dirty = self._synced < self._written and self._segment is not None
                if dirty and not self._syncing and not self._closed:
                    failure = self._fsync_unlocked()
                    if failure is not None:
                        logger.warning("prediction log fsync failed (will retry): %s", failure)

    def _fsync_unlocked(self) -> OSError | None:
        """fsync the open segment with the lock released meanwhile (appends go on); what was
        written when it started counts as synced once it succeeds. Rolling waits for it."""
        assert self._segment is not None
        target, fd = self._written, self._segment.fd
        self._syncing = True
        self._cond.release()
        failure: OSError | None = None
        try:
            os.fsync(fd)
        except OSError as exc:
            failure = exc
        finally:
            self._cond.acquire()
            self._syncing = False
        if failure is None:
            self._synced = max(self._synced, target)
        self._cond.notify_all()
        return failure

    def _release_waiters(self, failure: OSError | None) -> None:
        """Wake the async appends now durable (or all of them, with the fsync's error):
        one call into each event loop, however many appends it waits for."""
        keep = []
        ready: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiter in self._waiters:
            mine, loop, future = waiter
            if failure is None and mine > self._synced:
                keep.append(waiter)
            else:
                ready.setdefault(loop, []).append(future)
        self._waiters = keep
        for loop, futures in ready.items():
            loop.call_soon_threadsafe(_settle, futures, failure)

    def _wait_synced(self, mine: int) -> None:
        while self._synced < mine:
            if self._syncing:
                self._cond.wait()
                continue
            failure = self._fsync_unlocked()
            if failure is not None:
                raise failure

    def _current(self) -> _Segment:
        if self._closed:
            raise ConfigError("the prediction log is closed; open a new PredictionLog")
        if self._segment is None:
            self._segment = _Segment(self.directory)
        return self._segment

    def _roll_locked(self) -> None:
        while self._syncing:
            self._cond.wait()
        segment, self._segment = self._segment, None
        if segment is None:
            return
        if self._synced < self._written and self.sync != "off":
            os.fsync(segment.fd)
        self._synced = self._written
        segment.close()
        if self._waiters:
            self._release_waiters(None)

    def roll(self, *, older_than: float = 0.0) -> bool:
        """Close the current segment if it holds records and is at least ``older_than``
        seconds old, so the compactor can take it; True when one was closed."""
        with self._cond:
            segment = self._segment
            if segment is None or segment.records == 0:
                return False
            if time.monotonic() - segment.opened < older_than:
                return False
            self._roll_locked()
            return True

    def close(self) -> None:
        with self._cond:
            self._roll_locked()
            self._closed = True
            self._cond.notify_all()
            syncer = self._syncer
        if syncer is not None and syncer is not threading.current_thread():
            syncer.join()


def _settle(futures: list[asyncio.Future[None]], failure: OSError | None) -> None:
    for future in futures:
        if future.done():  # the caller was cancelled; its bytes are written all the same
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)


@contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """Lock a closed segment for compaction; yields False when it is live (another writer
    holds it) or already gone (another compactor took it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        yield same
    finally:
        os.close(fd)


def segments(directory: Path) -> list[Path]:
    """The segment files of ``directory``, oldest first (by modification time, then name)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            found.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    return [path for _, _, path in sorted(found)]


def remove_stale_temporaries(directory: Path, *, min_age: float = 600.0) -> None:
    """Delete half-created segments of dead writers (they never held a record). A live
    writer renames its file within milliseconds, but it creates the file before it can lock
    it, so only files older than ``min_age`` seconds are candidates."""
    if not directory.is_dir():
        return
    cutoff = time.time() - min_age
    for path in directory.glob(f"*{_TMP_SUFFIX}"):
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        with claimed(path) as ok:
            if ok:
                path.unlink(missing_ok=True)
