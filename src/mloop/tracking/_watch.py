"""Has anything changed in these folders since we last looked? Answered in microseconds.

Automatic capture keeps a working copy's git state between runs, because asking git costs
milliseconds and creating a run should cost well under one. That cache must still notice a
commit, a checkout, a staged file, an edited file or a new file before the next run starts.

On Linux, inotify answers: the kernel queues an event as part of the change itself, so a
change finished before ``changed()`` is always seen, and the check is one non-blocking read
whatever the size of the repository. Elsewhere, or when inotify is refused (the per-user
watch limit), the status (ctime, size, inode) of every watched file and folder is compared
with a snapshot instead, at a cost that grows with the number of tracked files. File systems
store times coarsely (ext4 to a few milliseconds, FAT to two seconds), so a snapshot that
saw a change younger than ``RACY_SECONDS`` is not trusted, the way git treats "racily
clean" index entries: the next check reports a change and the caller asks git again.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

RACY_SECONDS = 2.0
# Beyond this many tracked files the snapshot fallback only watches folders and git's own
# files: statting every file before each run would cost more than asking git.
MAX_SNAPSHOT_FILES = 5_000

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_UNMOUNT = 0x2000
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_ENTRY_EVENTS = _IN_CREATE | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO
_CONTENT_EVENTS = _IN_MODIFY | _IN_ATTRIB
_WATCH_LOST = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_Q_OVERFLOW | _IN_IGNORED
_MASK = _ENTRY_EVENTS | _CONTENT_EVENTS | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class WatchedDir:
    """A folder to watch.

    ``names``: entries whose content or metadata matter (tracked files, ``HEAD``…); their
    creation, removal and renaming matter too. ``any_entry``: whether creating, removing or
    renaming any other entry matters (a new untracked file changes git's answer).
    ``tree``: a working-tree folder, whose names the snapshot fallback stops statting
    beyond ``MAX_SNAPSHOT_FILES`` tracked files.
    """

    path: str
    names: frozenset[str] = frozenset()
    any_entry: bool = True
    tree: bool = False


class Watch(Protocol):
    def add(self, dirs: Iterable[WatchedDir]) -> None: ...

    def changed(self) -> bool: ...

    def close(self) -> None: ...


def open_watch(*, use_inotify: bool = True) -> Watch:
    """A watch over nothing yet; :meth:`Watch.add` folders before reading what they hold."""
    if use_inotify and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            return _FallbackWatch(_InotifyWatch())
    return _SnapshotWatch()


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class _InotifyWatch:
    """Watches through one inotify instance; raises ``OSError`` when a watch is refused."""

    def __init__(self) -> None:
        libc = _libc()
        fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd = fd
        self._owner = os.getpid()
        self._dirs: dict[int, WatchedDir] = {}
        self._stale = False

    def add(self, dirs: Iterable[WatchedDir]) -> None:
        libc = _libc()
        for folder in dirs:
            wd = int(
                libc.inotify_add_watch(self._fd, os.fsencode(folder.path), _MASK | _IN_ONLYDIR)
            )
            if wd < 0:
                error = ctypes.get_errno()
                if error in (2, 20):  # ENOENT, ENOTDIR: it went away while we looked
                    self._stale = True
                    continue
                raise OSError(error, f"inotify_add_watch {folder.path} failed")
            known = self._dirs.get(wd)
            if known is not None:  # the same folder twice: one watch, both interests
                folder = WatchedDir(
                    folder.path,
                    known.names | folder.names,
                    known.any_entry or folder.any_entry,
                    known.tree or folder.tree,
                )
            self._dirs[wd] = folder

    def changed(self) -> bool:
        if self._stale:
            return True
        if os.getpid() != self._owner:
            # A forked child shares the parent's queue; reading it would steal the parent's
            # events. The child reports a change and builds its own watch.
            return True
        while True:
            try:
                data = os.read(self._fd, 65_536)
            except BlockingIOError:
                return False
            if self._matters(data):
                self._stale = True
                return True

    def _matters(self, data: bytes) -> bool:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = os.fsdecode(data[offset + _EVENT.size : offset + _EVENT.size + length])
            name = name.rstrip("\0")
            offset += _EVENT.size + length
            folder = self._dirs.get(wd)
            if mask & _WATCH_LOST or folder is None:
                return True
            if mask & _ENTRY_EVENTS and (folder.any_entry or name in folder.names):
                return True
            if mask & _CONTENT_EVENTS and name in folder.names:
                return True
        return False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _SnapshotWatch:
    """Compares the status of every watched path with the status it had when added."""

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._stamps: list[tuple[int, int, int] | None] = []
        self._racy = False
        self._files = 0

    def add(self, dirs: Iterable[WatchedDir]) -> None:
        dirs = list(dirs)
        self._files += sum(len(d.names) for d in dirs if d.tree)
        paths = [d.path for d in dirs if d.any_entry]
        for folder in dirs:
            if self._files <= MAX_SNAPSHOT_FILES or not folder.tree:
                paths.extend(os.path.join(folder.path, name) for name in sorted(folder.names))
        since = time.time_ns() - int(RACY_SECONDS * 1e9)
        stamps = _stamps(paths)
        self._racy = self._racy or any(s is not None and s[0] >= since for s in stamps)
        self._paths.extend(paths)
        self._stamps.extend(stamps)

    def changed(self) -> bool:
        return self._racy or _stamps(self._paths) != self._stamps

    def close(self) -> None:
        self._paths = []


class _FallbackWatch:
    """inotify while it works; the snapshot from the first refused watch on."""

    def __init__(self, inotify: _InotifyWatch) -> None:
        self._inner: _InotifyWatch | _SnapshotWatch = inotify
        self._added: list[WatchedDir] = []
        self._lock = threading.Lock()

    def add(self, dirs: Iterable[WatchedDir]) -> None:
        dirs = list(dirs)
        with self._lock:
            self._added.extend(dirs)
            try:
                self._inner.add(dirs)
            except OSError:
                self._inner.close()
                self._inner = _SnapshotWatch()
                self._inner.add(self._added)

    def changed(self) -> bool:
        with self._lock:
            return self._inner.changed()

    def close(self) -> None:
        with self._lock:
            self._inner.close()


def _stamps(paths: list[str]) -> list[tuple[int, int, int] | None]:
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ctime_ns, st.st_size, st.st_ino))
    return out


__all__ = ["MAX_SNAPSHOT_FILES", "RACY_SECONDS", "Watch", "WatchedDir", "open_watch"]
