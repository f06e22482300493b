"""7z members, decompressed by py7zr into temporary files (7z has no streaming reader).

Sizes are checked against the scan's budget before anything is extracted; names are only
labels (nothing is written under them), so ``../`` in a member name is harmless here.
"""

from __future__ import annotations

import tempfile
from types import ModuleType, TracebackType
from typing import Any, BinaryIO, cast

from mloop.models._scan._streams import Budget, Opener, Unsupported


class _SpoolIO:
    """A py7zr writer (its ``Py7zIO`` protocol) backed by an anonymous temporary file."""

    def __init__(self) -> None:
        self.file = cast(BinaryIO, tempfile.TemporaryFile())  # noqa: SIM115 - closed by Extracted

    def write(self, data: bytes | bytearray) -> int:
        return self.file.write(data)

    def read(self, size: int | None = None) -> bytes:
        return self.file.read(-1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def flush(self) -> None:
        self.file.flush()

    def size(self) -> int:
        here = self.file.tell()
        end = self.file.seek(0, 2)
        self.file.seek(here)
        return end

    def close(self) -> None:
        """py7zr calls this when a member is complete; the copy stays until the scan ends."""

    def opener(self) -> Opener:
        def reopen() -> BinaryIO:
            self.file.seek(0)
            return cast(BinaryIO, _Unclosable(self.file))

        return reopen


class _Unclosable:
    """Lets a scan "close" the shared temporary copy without deleting it."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _Unclosable:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass


class Extracted(dict[str, _SpoolIO]):
    """Member name → temporary copy; closing deletes every copy."""

    def __enter__(self) -> Extracted:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for copy in self.values():
            copy.file.close()


def extract_members(py7zr: ModuleType, archive: BinaryIO, budget: Budget) -> Extracted:
    from py7zr.io import WriterFactory

    extracted = Extracted()

    class Factory(WriterFactory):
        def create(self, filename: str) -> Any:
            copy = _SpoolIO()
            extracted[filename] = copy
            return copy

    try:
        with py7zr.SevenZipFile(archive, mode="r") as bundle:
            if bundle.needs_password():
                raise Unsupported("an encrypted 7z archive (the password is not known)")
            budget.spend(sum(info.uncompressed or 0 for info in bundle.list()))
            bundle.extractall(factory=Factory())
    except BaseException:
        extracted.__exit__(None, None, None)
        raise
    return extracted
