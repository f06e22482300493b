"""``scan_path``: every file under a path, every member of every archive, by content.

Each content is recognized by its first bytes (:mod:`._sniff`) and read as a stream:

- containers (zip, tar, 7z) are opened and each member scanned the same way, recursively;
  compressed streams (gzip, bz2, xz, lzma, zlib, lz4, zstd — joblib's compressors) are
  decompressed on the fly; ``.npy`` headers say whether a pickle follows;
- everything else goes to the opcode walk. A content starting with a ``PROTO`` opcode is
  a pickle and must parse to the end — one pickle after another (``torch.save``'s legacy
  stream and joblib write several), with joblib's raw array bytes stepped over — or it is
  rejected. A content whose walk fails before importing or calling anything (JSON, text,
  ONNX, images…) is data, not a pickle: any unpickler fails on it just as early, having
  done nothing.
- every non-pickle format is also walked as if it were handed to ``pickle.load`` (a file
  can be a valid zip and a valid pickle at once), and everything joblib-aware is walked a
  second time as plain pickle, because the two readings diverge at the first array.

Fail closed: what cannot be read (bad structure, encryption, unknown compression, too
deep, too big) is a finding, never a pass.
"""

from __future__ import annotations

import lzma
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, cast

from mloop.errors import InvalidInput, NotFound
from mloop.models._scan import _npy, _sniff, _torch, _zip
from mloop.models._scan._reader import StreamReader, Truncated, is_cheaply_seekable
from mloop.models._scan._report import (
    PARSE_ERROR,
    UNSUPPORTED,
    FileFindings,
    ScanReport,
)
from mloop.models._scan._streams import (
    Budget,
    Opener,
    ScanLimit,
    Unsupported,
    Window,
    buffered,
    decompressing,
    spooled,
)
from mloop.models._scan._walk import PickleWalker, WalkError

MAX_DEPTH = 12
MIN_BUDGET = 8 << 30
BUDGET_RATIO = 1000


def scan_path(path: str | Path) -> ScanReport:
    """Scan a file, archive or folder without loading anything; see the module docstring.

    Raises :class:`~mloop.errors.NotFound` when ``path`` does not exist and
    :class:`~mloop.errors.InvalidInput` when it cannot be read (permissions, a device…):
    an unreadable input is not a scan result.
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise NotFound(f"cannot scan {str(root)!r}: no such file or folder")
    if not root.is_dir() and not root.is_file():
        raise InvalidInput(f"cannot scan {str(root)!r}: not a regular file or folder")
    scan = _Scan(root)
    try:
        if root.is_dir():
            scan.folder(root)
        else:
            scan.file(root, root.name)
    except PermissionError as error:
        raise InvalidInput(
            f"cannot read {error.filename or str(root)!r}: permission denied"
        ) from None
    except OSError as error:
        raise InvalidInput(f"cannot read {str(root)!r}: {error.strerror or error}") from None
    return scan.report()


class _Scan:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: list[FileFindings] = []
        size = _total_size(root)
        self.budget = Budget(max(MIN_BUDGET, BUDGET_RATIO * size))

    def report(self) -> ScanReport:
        findings = [finding for record in self.records for finding in record.findings()]
        files = [record.scanned() for record in self.records]
        return ScanReport(str(self.root), findings, files)

    # -- the file system --------------------------------------------------------------------

    def folder(self, folder: Path) -> None:
        for directory, subdirectories, names in os.walk(folder, onerror=_raise):
            subdirectories.sort()
            for subdirectory in list(subdirectories):
                if Path(directory, subdirectory).is_symlink():
                    record = self._record(_label(folder, Path(directory, subdirectory)))
                    record.format = "symlink"
                    record.add(UNSUPPORTED, "a symbolic link to a folder is not followed")
            for name in sorted(names):
                path = Path(directory, name)
                if path.is_file():
                    self.file(path, _label(folder, path))
                else:
                    record = self._record(_label(folder, path))
                    record.format = "special"
                    record.add(UNSUPPORTED, "not a regular file (broken link, device, pipe)")

    def file(self, path: Path, label: str) -> None:
        with open(path, "rb") as probe:  # fail early, as a whole, when unreadable
            probe.read(1)
        self.content(lambda: cast(BinaryIO, open(path, "rb")), label, 0)  # noqa: SIM115

    # -- one content ------------------------------------------------------------------------

    def _record(self, label: str) -> FileFindings:
        record = FileFindings(label)
        self.records.append(record)
        return record

    def content(
        self, opener: Opener, label: str, depth: int, record: FileFindings | None = None
    ) -> None:
        record = record or self._record(label)
        try:
            if depth > MAX_DEPTH:
                raise Unsupported(f"archives nested more than {MAX_DEPTH} levels deep")
            with opener() as stream:
                head = _read_head(stream)
            kind = _sniff.sniff(head)
            record.format = kind if record.format == "unknown" else f"{record.format}+{kind}"
            if kind == _sniff.PICKLE:
                self.pickle(opener, record, head)
                return
            self.as_pickle_too(opener, record)
            if kind in _sniff.COMPRESSED:
                self.content(
                    lambda: decompressing(kind, opener(), self.budget), label, depth + 1, record
                )
            elif kind == _sniff.ZIP:
                self.zip(opener, label, record, depth)
            elif kind == _sniff.TAR:
                self.tar(opener, label, record, depth)
            elif kind == _sniff.SEVEN_ZIP:
                self.seven_zip(opener, label, record, depth)
            elif kind == _sniff.NPY:
                self.npy(opener, record)
            elif kind == _sniff.JOBLIB_ZFILE:
                self.content(lambda: _joblib_zfile(opener, self.budget), label, depth + 1, record)
        except Unsupported as problem:
            record.add(UNSUPPORTED, f"cannot be scanned: {problem}")
        except ScanLimit as problem:
            record.add(UNSUPPORTED, str(problem))
        except (
            OSError,
            EOFError,
            ValueError,
            Truncated,
            lzma.LZMAError,
            zlib.error,
            RecursionError,
        ) as problem:
            if isinstance(problem, PermissionError | FileNotFoundError):
                raise
            record.add(PARSE_ERROR, f"cannot be read: {_describe(problem)}")

    # -- pickles ----------------------------------------------------------------------------

    def pickle(self, opener: Opener, record: FileFindings, head: bytes) -> None:
        with opener() as stream:
            reader = StreamReader(stream)
            walker = PickleWalker(reader, record, joblib_aware=True)
            try:
                first = walker.walk()
            except WalkError as error:
                if _sniff.starts_like_a_pickle(head) or walker.acted or walker.flagged:
                    record.add(PARSE_ERROR, f"not a valid pickle: {error}", offset=error.offset)
                else:
                    record.format = record.format.replace(_sniff.PICKLE, "data")
                if walker.skipped_payloads:
                    self.plain_pickles(opener, record)
                return
            skipped = walker.skipped_payloads
            if isinstance(first, int) and first == _torch.MAGIC_NUMBER:
                record.format = record.format.replace(_sniff.PICKLE, "pytorch-legacy")
                self.layout(record, lambda: _torch.scan_legacy_stream(reader, self._walk(record)))
            else:
                skipped += self.more_pickles(reader, record)
                if skipped:
                    record.format = record.format.replace(_sniff.PICKLE, "joblib")
        if skipped:
            self.plain_pickles(opener, record)

    def more_pickles(self, reader: StreamReader, record: FileFindings) -> int:
        """The pickles after the first: loaders such as joblib's and torch's read several."""
        skipped = 0
        number = 1
        while not reader.at_end():
            number += 1
            walker = PickleWalker(reader, record, joblib_aware=True)
            try:
                walker.walk()
            except WalkError as error:
                record.add(
                    PARSE_ERROR,
                    f"the data after pickle #{number - 1} is not a valid pickle: {error}",
                    offset=error.offset,
                )
                break
            finally:
                skipped += walker.skipped_payloads
        return skipped

    def plain_pickles(self, opener: Opener, record: FileFindings) -> None:
        """The stream as ``pickle.load`` would read it, up to where that fails."""
        with opener() as stream:
            reader = StreamReader(stream)
            while not reader.at_end():
                try:
                    PickleWalker(reader, record).walk()
                except WalkError:
                    return

    def as_pickle_too(self, opener: Opener, record: FileFindings) -> None:
        """A zip, tar or .npy handed to ``pickle.load`` instead: what would it import?"""
        with opener() as stream:
            reader = StreamReader(stream)
            walker = PickleWalker(reader, record, joblib_aware=True)
            try:
                while True:
                    walker.walk()
                    if reader.at_end():
                        break
                    walker = PickleWalker(reader, record, joblib_aware=True)
            except WalkError:
                pass
        if walker.skipped_payloads:
            self.plain_pickles(opener, record)

    def _walk(self, record: FileFindings) -> _torch.Walk:
        def walk(reader: StreamReader, on_pid: Callable[[Any], None] | None, cap: int) -> Any:
            return PickleWalker(reader, record, container_cap=cap, on_pid=on_pid).walk()

        return walk

    def layout(self, record: FileFindings, scan: Callable[[], None]) -> None:
        try:
            scan()
        except WalkError as error:
            record.add(PARSE_ERROR, f"not a valid pickle: {error}", offset=error.offset)
        except (_torch.LayoutError, Truncated) as error:
            record.add(PARSE_ERROR, f"not a valid PyTorch file: {error}")

    def npy(self, opener: Opener, record: FileFindings) -> None:
        with opener() as stream:
            reader = StreamReader(stream)
            try:
                header = _npy.read_header(reader)
            except (_npy.NpyError, Truncated) as error:
                record.add(PARSE_ERROR, f"not a valid .npy file: {error}")
                return
            if header.holds_objects:
                record.format += " (object array: pickle)"
                try:
                    PickleWalker(reader, record).walk()
                except WalkError as error:
                    record.add(PARSE_ERROR, f"not a valid pickle: {error}", offset=error.offset)
                    return
            else:
                try:
                    reader.skip(header.nbytes)
                except Truncated:
                    record.add(PARSE_ERROR, "the .npy data is shorter than its shape says")
                    return
            if not reader.at_end():
                record.add(PARSE_ERROR, "data after the end of the .npy array")

    # -- archives ---------------------------------------------------------------------------

    @contextmanager
    def random_access(self, opener: Opener) -> Iterator[BinaryIO]:
        stream = opener()
        if is_cheaply_seekable(stream):
            with stream:
                yield stream
            return
        stream.close()
        with spooled(opener) as copy:
            yield copy

    def zip(self, opener: Opener, label: str, record: FileFindings, depth: int) -> None:
        with self.random_access(opener) as archive:
            size = archive.seek(0, os.SEEK_END)
            try:
                members = _zip.members(archive, size)
            except _zip.ZipError as error:
                record.add(PARSE_ERROR, f"not a readable zip archive: {error}")
                return
            storages = _zip.torch_storage_members(members)
            if storages:
                record.format = record.format.replace(_sniff.ZIP, "pytorch-zip")
            for member in members:
                member_label = f"{label}!{member.names[0]}"
                if member.header_offset in storages:
                    continue  # raw tensor bytes: torch reads them as such, never unpickles
                self.content(
                    lambda member=member: _open_member(archive, member, self.budget),  # type: ignore[misc]
                    member_label,
                    depth + 1,
                )

    def tar(self, opener: Opener, label: str, record: FileFindings, depth: int) -> None:
        with self.random_access(opener) as archive, ExitStack() as stack:
            try:
                bundle = stack.enter_context(tarfile.open(fileobj=archive, mode="r:"))
                members = bundle.getmembers()
            except (tarfile.TarError, EOFError) as error:
                record.add(PARSE_ERROR, f"not a readable tar archive: {error}")
                return
            names = {member.name for member in members}
            torch_legacy = names >= _torch.TAR_MEMBERS
            if torch_legacy:
                record.format = record.format.replace(_sniff.TAR, "pytorch-legacy-tar")
            for member in members:
                if not member.isfile():
                    continue

                def open_member(member: tarfile.TarInfo = member) -> BinaryIO:
                    extracted = bundle.extractfile(member)
                    assert extracted is not None
                    return cast(BinaryIO, extracted)

                member_label = f"{label}!{member.name}"
                if torch_legacy and member.name in {"storages", "tensors"}:
                    self.torch_tar_member(open_member, member_label, member.name)
                else:
                    self.content(open_member, member_label, depth + 1)

    def torch_tar_member(self, opener: Opener, label: str, name: str) -> None:
        record = self._record(label)
        record.format = f"pytorch-legacy-{name}"
        scan = _torch.scan_tar_storages if name == "storages" else _torch.scan_tar_tensors
        with opener() as stream:
            reader = StreamReader(stream)
            self.layout(record, lambda: scan(reader, self._walk(record)))

    def seven_zip(self, opener: Opener, label: str, record: FileFindings, depth: int) -> None:
        try:
            import py7zr
        except ImportError:
            raise Unsupported("a 7z archive; install py7zr to scan it") from None
        from mloop.models._scan._sevenzip import extract_members

        with self.random_access(opener) as archive:
            try:
                extracted = extract_members(py7zr, archive, self.budget)
            except (Unsupported, ScanLimit):
                raise
            except Exception as error:  # py7zr raises many types on damaged archives
                record.add(PARSE_ERROR, f"not a readable 7z archive: {_describe(error)}")
                return
            with extracted:
                for name, copy in extracted.items():
                    self.content(copy.opener(), f"{label}!{name}", depth + 1)


def _open_member(archive: BinaryIO, member: _zip.Member, budget: Budget) -> BinaryIO:
    window = buffered(Window(archive, member.data_offset, member.compressed_size))
    if member.method == 0:  # stored: read as is, encrypted flag or not (as torch does)
        return window
    if member.encrypted:
        window.close()
        raise Unsupported("an encrypted, compressed member (the password is not known)")
    kinds = {8: "deflate", 12: "bz2", 14: "zip-method-14"}
    if member.method not in kinds:
        window.close()
        raise Unsupported(f"zip compression method {member.method}")
    return decompressing(kinds[member.method], window, budget)


def _joblib_zfile(opener: Opener, budget: Budget) -> BinaryIO:
    """joblib < 0.10: ``ZF``, a 19-character hex length, maybe a space, zlib data."""
    stream = opener()
    header = stream.read(21)
    if len(header) < 21:
        raise Unsupported("a truncated joblib zfile header")
    try:
        int(header[2:].strip(), 16)
    except ValueError:
        raise Unsupported("a joblib zfile header without a length") from None
    space = stream.read(1)
    rest = stream if space == b" " else _Prepend(space, stream)
    return decompressing("zlib", cast(BinaryIO, rest), budget)


class _Prepend:
    """``head`` then ``stream`` (to put back a byte read too far)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if size < 0:
                return head + self._stream.read()
            return head + self._stream.read(max(size - len(head), 0))
        return self._stream.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()

    @property
    def closed(self) -> bool:
        return bool(self._stream.closed)


def _read_head(stream: BinaryIO) -> bytes:
    parts = []
    size = 0
    while size < _sniff.HEAD_SIZE:
        chunk = stream.read(_sniff.HEAD_SIZE - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _label(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _total_size(root: Path) -> int:
    if root.is_file():
        return root.stat().st_size
    total = 0
    for directory, _, names in os.walk(root):
        for name in names:
            with suppress(OSError):
                total += Path(directory, name).stat().st_size
    return total


def _describe(problem: BaseException) -> str:
    text = str(problem) or type(problem).__name__
    return text.splitlines()[0][:300]


def _raise(error: OSError) -> None:
    raise error
