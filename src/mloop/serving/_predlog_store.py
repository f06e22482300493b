"""The log root: where compacted Parquet parts live (a local folder or object storage).

Layout, Hive-style so DuckDB, Polars and Spark read it with partition pruning::

    <root>/deployment=<name>/date=YYYY-MM-DD/hour=HH/part-<segment>-<n>.parquet   predictions
    <root>/feedback/deployment=<name>/date=…/hour=…/part-….parquet                feedback

A part appears whole or not at all: locally it is written under a dot-name, fsynced and
renamed; on object storage a PUT is atomic. Part names derive from the WAL segment they
came from, so compacting a segment twice (a crash before its deletion) rewrites the same
files instead of adding copies.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mloop.errors import ConfigError, InvalidInput
from mloop.serving._predlog_wal import fsync_dir

# The registry's deployment names (registry/_names.py), capped so that
# "deployment=<name>" fits the 255-byte limit of a file name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,243}$")
_HOUR_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


def check_deployment(name: str) -> str:
    """Deployment names become folder names: keep them to one safe path segment (starting
    with a letter or digit, so never ``.`` or ``..``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"deployment name {name!r} is not valid in the prediction log: use letters, "
            "digits, '.', '_' and '-' (up to 244 characters, starting with a letter or digit)"
        )
    return name


def partition_of(time_ms: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def hour_start_ms(date: str, hour: str) -> int:
    moment = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class LogRoot:
    """Byte-level access to the log root; local folders use plain ``os`` calls."""

    def __init__(self, uri: str, *, s3_endpoint_url: str | None = None) -> None:
        self.uri = uri
        self._fs: Any = None
        if "://" not in uri or uri.startswith("file://"):
            self._local: Path | None = Path(uri.removeprefix("file://")).absolute()
            self._base = str(self._local)
            return
        self._local = None
        scheme = uri.split("://", 1)[0]
        if scheme != "s3":
            raise ConfigError(
                f"prediction log root {uri!r} has an unknown scheme; use a folder, "
                "file://… or s3://bucket/prefix"
            )
        try:
            import s3fs
        except ImportError as exc:  # pragma: no cover - s3fs is in the dev extra
            raise ConfigError(
                "an s3:// prediction log root needs s3fs: pip install 'mloop[s3]'"
            ) from exc
        client_kwargs = {"endpoint_url": s3_endpoint_url} if s3_endpoint_url else {}
        self._fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)
        self._base = uri.removeprefix("s3://").strip("/")

    def table_dir(self, table: str, deployment: str) -> str:
        prefix = f"{table}/" if table != "predictions" else ""
        return f"{prefix}deployment={check_deployment(deployment)}"

    def deployments(self, table: str) -> list[str]:
        """Deployment names that have Parquet parts in ``table``."""
        prefix = f"{table}/" if table != "predictions" else ""
        names = []
        for entry in self._listdir(prefix.rstrip("/")):
            if entry.startswith("deployment="):
                names.append(entry.removeprefix("deployment="))
        return sorted(names)

    def write_part(self, relative: str, table: pa.Table) -> None:
        """Write ``table`` as the Parquet file ``relative`` under the root, atomically."""
        if self._local is not None:
            final = self._local / relative
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=final.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    pq.write_table(table, out, compression="zstd")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(final.parent)
            return
        with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp_file:
            pq.write_table(table, tmp_file.name, compression="zstd")
            self._fs.put_file(tmp_file.name, f"{self._base}/{relative}")

    def parts(
        self, table: str, deployment: str, since_ms: int | None, until_ms: int | None
    ) -> Iterator[str]:
        """Parquet parts whose hour overlaps [since, until), pruned by folder name."""
        base = self.table_dir(table, deployment)
        for date_dir in self._listdir(base):
            for hour_dir in self._listdir(f"{base}/{date_dir}"):
                match = _HOUR_DIR.match(f"{date_dir}/{hour_dir}")
                if not match:
                    continue
                start = hour_start_ms(*match.groups())
                if until_ms is not None and start >= until_ms:
                    continue
                if since_ms is not None and start + 3_600_000 <= since_ms:
                    continue
                for name in self._listdir(f"{base}/{date_dir}/{hour_dir}"):
                    if name.endswith(".parquet") and not name.startswith("."):
                        yield f"{base}/{date_dir}/{hour_dir}/{name}"

    def read_part(self, relative: str) -> pa.Table | None:
        """One part, or None when it vanished between listing and reading."""
        try:
            if self._local is not None:
                return pq.read_table(self._local / relative)
            with self._fs.open(f"{self._base}/{relative}", "rb") as stream:
                return pq.read_table(stream)
        except FileNotFoundError:
            return None

    def _listdir(self, relative: str) -> list[str]:
        if self._local is not None:
            try:
                return sorted(os.listdir(self._local / relative))
            except (FileNotFoundError, NotADirectoryError):
                return []
        path = f"{self._base}/{relative}".rstrip("/")
        try:
            entries = self._fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)
