"""Object-storage backend over fsspec (S3 today; GCS and Azure fit the same class).

An object PUT is atomic on these services — readers see the old object or the new one,
never a partial one — so blobs are uploaded straight to their final key. Listing caches
are off: the store asks "does this blob exist?" and must not get a stale answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from mloop.errors import ConfigError


class FsspecBackend:
    def __init__(self, fs: Any, uri: str, protocol: str) -> None:
        self._fs = fs
        self._uri = uri
        self._base = uri.removeprefix(f"{protocol}://").strip("/")

    @property
    def root(self) -> str:
        return self._uri

    def staging_dir(self) -> Path | None:
        return None

    def put_file(self, src: Path, key: str) -> None:
        self._fs.put_file(str(src), self._path(key))

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self._fs.open(self._path(key), "rb"))

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        info = self._fs.info(self._path(key))
        if info.get("type") != "file":
            raise FileNotFoundError(key)
        return int(info["size"])

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        start = len(self._base) + 1
        found = self._fs.find(self._path(prefix), detail=True)
        for path in sorted(found):
            yield path[start:], int(found[path]["size"])

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not self._fs.exists(path):
            raise FileNotFoundError(key)
        self._fs.rm_file(path)

    def _path(self, key: str) -> str:
        return f"{self._base}/{key}"


def open_s3(uri: str, *, s3_endpoint_url: str | None = None, **_options: Any) -> FsspecBackend:
    import s3fs

    rest = uri.split("://", 1)[1].strip("/")
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise ConfigError(
            f"artifact store URI {uri!r} names no bucket; use s3://bucket or s3://bucket/prefix"
        )
    client_kwargs = {"endpoint_url": s3_endpoint_url} if s3_endpoint_url else {}
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)
    return FsspecBackend(fs, f"s3://{rest}", "s3")
