"""Where dataset bytes come from, and what a command-line argument names.

A source is one of: a local file, folder or glob of Parquet / CSV / JSON-lines files; an
in-memory table (Arrow, pandas, Polars); or an external URI (``file://…``, ``s3://…``)
whose objects are referenced rather than copied. For references this module records
what tells a later read that an object changed — size, and the ETag (object stores) or
modification time (files) — and re-checks it on demand.

The CLI's "source or reference" arguments resolve here too: an existing path is data, a
``NAME@VERSION`` (``NAME@latest``) is a dataset version, and a file written by
``mloop data stats --save`` is stored statistics.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from mloop.config import Settings, get_settings
from mloop.errors import ConfigError, InvalidInput, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

    from mloop.data._statistics import DatasetStatistics

_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,255})@(?P<version>[0-9]+|latest)$")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB = re.compile(r"[*?\[]")
_CHUNK = 1 << 20
_KINDS = "a file, folder or glob of Parquet/CSV/JSON-lines, a pandas or Polars DataFrame, an Arrow table, or a file:// or s3:// URI"


@dataclass(frozen=True)
class _Scheme:
    protocol: str
    needs: str | None = None
    install_hint: str | None = None


_SCHEMES: dict[str, _Scheme] = {
    "file": _Scheme("file"),
    "s3": _Scheme("s3", needs="s3fs", install_hint="pip install 'mloop[s3]'"),
}


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: a local file to read or copy, or an external object.

    ``path`` is the file's name inside the dataset (relative, ``/``-separated).
    """

    path: str
    format: str
    size: int
    local: Path | None = None
    uri: str | None = None
    etag: str | None = None
    mtime_ns: int | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Source:
    """A resolved source: files (``kind`` "files" or "external") or one in-memory table."""

    kind: Literal["files", "table", "external"]
    label: str
    files: tuple[SourceFile, ...] = ()
    table: pa.Table | None = None


# -- names and references ---------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"dataset name {name!r} is not valid; use 1-256 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_ref(ref: str | tuple[str, int | str]) -> tuple[str, int | None]:
    """``"name@3"`` → ``("name", 3)``; ``"name@latest"`` or ``"name"`` → ``("name", None)``."""
    if isinstance(ref, tuple):
        name, version = ref
        if version == "latest":
            return check_name(name), None
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInput(f"dataset version {version!r} is not valid; use 1, 2, … or 'latest'")
        return check_name(name), version
    if not isinstance(ref, str):
        raise InvalidInput(f"{ref!r} is not a dataset reference; use 'NAME@VERSION'")
    match = _REF.match(ref)
    if match:
        version = match.group("version")
        return match.group("name"), None if version == "latest" else int(version)
    if NAME.match(ref):
        return ref, None
    raise InvalidInput(
        f"{ref!r} is not a dataset reference; use NAME@VERSION (sales@3) or NAME@latest"
    )


def is_ref(text: str) -> bool:
    """Whether ``text`` reads as ``NAME@VERSION`` and is not also an existing path."""
    return bool(_REF.match(text)) and not Path(text).exists()


def is_uri(text: str) -> bool:
    return bool(_URI.match(text))


# -- resolving a source -----------------------------------------------------------------------


def resolve(
    source: Any,
    *,
    reference: bool | None = None,
    compute_digest: bool = False,
    settings: Settings | None = None,
) -> Source:
    """What ``source`` holds, ready to be copied or referenced.

    ``reference`` None copies local and in-memory data and references URIs; True
    references local files too (as ``file://`` URIs); False copies URIs' objects.
    """
    table = as_arrow(source)
    if table is not None:
        if reference:
            raise InvalidInput(
                "an in-memory table cannot be referenced, only stored; drop reference=True "
                "or write the table to a file first"
            )
        return Source(
            "table", f"<{type(source).__module__}.{type(source).__qualname__}>", (), table
        )
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise InvalidInput(f"cannot register {type(source).__name__!r} as a dataset; give {_KINDS}")
    if is_uri(source):
        files = external_files(source, compute_digest=compute_digest, settings=settings)
        return Source("external", source, tuple(files))
    files = local_files(source)
    if reference:
        files = [_as_reference(f, compute_digest) for f in files]
        return Source("external", source, tuple(files))
    return Source("files", source, tuple(files))


def as_arrow(obj: Any) -> pa.Table | None:
    """An Arrow table for in-memory data (Arrow, pandas, Polars), or None for anything else."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    polars = sys.modules.get("polars")
    if polars is not None:
        if isinstance(obj, polars.LazyFrame):
            obj = obj.collect()
        if isinstance(obj, polars.DataFrame):
            table: pa.Table = obj.to_arrow()
            return table
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(obj, pandas.DataFrame):
        try:
            return pa.Table.from_pandas(obj)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(
                f"the pandas DataFrame cannot be stored as Parquet: {exc}; give mixed-type "
                "columns one type (df[col].astype(str))"
            ) from exc
    return None


def local_files(spec: str) -> list[SourceFile]:
    """The data files a local path, folder or glob names, sorted by their dataset path.

    Which files count is decided by the statistics readers (:mod:`mloop.data._readers`),
    so a version holds exactly the files its statistics summarize.
    """
    from mloop.data import _readers

    path = Path(spec).expanduser()
    if path.is_dir():
        base = path
    elif path.is_file():
        base = path.parent
    else:
        base = _glob_base(spec)
    files = []
    for file in _readers.resolve_paths(spec):
        stat = file.stat()
        files.append(
            SourceFile(
                path=file.relative_to(base).as_posix(),
                format=_readers.detect_format(file),
                size=stat.st_size,
                local=file.absolute(),
                mtime_ns=stat.st_mtime_ns,
            )
        )
    return sorted(files, key=lambda f: f.path)


def _glob_base(spec: str) -> Path:
    parts = Path(os.path.expanduser(spec)).parts
    fixed = []
    for part in parts:
        if _GLOB.search(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _hidden(relative: Path) -> bool:
    """Marker and hidden files (``_SUCCESS``, ``.crc``, ``.DS_Store``) are not data."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def format_of(name: str) -> str:
    """The format of an object by its name (remote objects are not sniffed)."""
    from mloop.data import _readers

    found = _readers.FORMATS.get(os.path.splitext(_strip_compression(name).lower())[1])
    if found is None:
        raise InvalidInput(
            f"{name} is not a Parquet, CSV or JSON-lines file (by its ending); rename it to "
            f"one of {', '.join(sorted(_readers.FORMATS))} or move it out of the dataset"
        )
    return found


def _strip_compression(name: str) -> str:
    lower = name.lower()
    for ending in _COMPRESSION:
        if lower.endswith(ending):
            return name[: -len(ending)]
    return name


def _as_reference(file: SourceFile, compute_digest: bool) -> SourceFile:
    assert file.local is not None
    digest = _hash_stream(file.local.open("rb")) if compute_digest else None
    return replace(file, uri=file.local.resolve().as_uri(), local=None, digest=digest)


# -- external objects -------------------------------------------------------------------------


def filesystem(uri: str, settings: Settings | None = None) -> tuple[Any, str, str]:
    """``(fsspec filesystem, path inside it, scheme)`` for an external URI."""
    match = _URI.match(uri)
    scheme = match.group(1).lower() if match else "file"
    entry = _SCHEMES.get(scheme)
    if entry is None:
        valid = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
        raise InvalidInput(
            f"dataset URI {uri!r} has an unknown scheme {scheme!r}; use a local path or one "
            f"of: {valid}"
        )
    if entry.needs is not None:
        try:
            importlib.import_module(entry.needs)
        except ImportError as exc:
            raise ConfigError(
                f"{scheme}:// datasets need the {entry.needs} package, which is not installed; "
                f"run `{entry.install_hint}`"
            ) from exc
    import fsspec

    if scheme == "file":
        from mloop.artifacts._backends import local_path

        try:
            return fsspec.filesystem("file"), local_path(uri), scheme
        except ConfigError as exc:
            raise InvalidInput(str(exc).replace("artifact store", "dataset")) from exc
    settings = settings or get_settings()
    options: dict[str, Any] = {"use_listings_cache": False}
    if settings.s3_endpoint_url:
        options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
    path = uri.split("://", 1)[1]
    if not path.strip("/"):
        raise InvalidInput(f"dataset URI {uri!r} names no bucket; use s3://bucket/prefix")
    return fsspec.filesystem(entry.protocol, skip_instance_cache=True, **options), path, scheme


def external_files(
    uri: str, *, compute_digest: bool = False, settings: Settings | None = None
) -> list[SourceFile]:
    """The objects ``uri`` names (one object, a prefix/folder, or a glob), with their
    size and ETag or modification time, sorted by path."""
    fs, path, scheme = filesystem(uri, settings)
    try:
        if _GLOB.search(path):
            base = _glob_base(path).as_posix()
            found: dict[str, dict[str, Any]] = fs.glob(path, detail=True)
        else:
            info = fs.info(path)
            if info.get("type") == "directory":
                base = path.rstrip("/")
                found = fs.find(path, detail=True)
            else:
                base = os.path.dirname(path.rstrip("/"))
                found = {info["name"]: info}
    except FileNotFoundError:
        raise InvalidInput(f"{uri} does not exist; check the URI") from None
    except OSError as exc:
        raise InvalidInput(f"cannot list {uri}: {exc}; check the URI and credentials") from exc
    files = []
    for name, info in sorted(found.items()):
        if info.get("type") == "directory":
            continue
        relative = _relative(name, base, fs)
        if _hidden(Path(relative)):
            continue
        object_uri = _object_uri(scheme, name, fs)
        size, etag, mtime_ns = object_state(info, scheme)
        file = SourceFile(
            path=relative,
            format=format_of(name),
            size=size,
            uri=object_uri,
            etag=etag,
            mtime_ns=mtime_ns,
        )
        if compute_digest:
            file = replace(file, digest=_hash_stream(fs.open(name, "rb")))
        files.append(file)
    if not files:
        raise InvalidInput(f"{uri} holds no Parquet, CSV or JSON-lines objects; check the URI")
    return files


def _relative(name: str, base: str, fs: Any) -> str:
    name = fs._strip_protocol(name)
    base = fs._strip_protocol(base).rstrip("/") if base not in ("", ".") else ""
    if base and name.startswith(base + "/"):
        return name[len(base) + 1 :]
    return name.rsplit("/", 1)[-1]


def _object_uri(scheme: str, name: str, fs: Any) -> str:
    if scheme == "file":
        return Path(fs._strip_protocol(name)).as_uri()
    return f"{scheme}://{fs._strip_protocol(name)}"


def object_state(info: dict[str, Any], scheme: str) -> tuple[int, str | None, int | None]:
    """``(size, etag, mtime_ns)`` from an fsspec ``info`` record."""
    size = int(info.get("size") or 0)
    if scheme == "file":
        return size, None, int(Path(info["name"]).stat().st_mtime_ns)
    etag = info.get("ETag") or info.get("etag")
    return size, str(etag).strip('"') if etag else None, None


def stat_external(uri: str, settings: Settings | None = None) -> tuple[int, str | None, int | None]:
    """The current ``(size, etag, mtime_ns)`` of one object; FileNotFoundError if gone."""
    fs, path, scheme = filesystem(uri, settings)
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()
    info = fs.info(path)
    if info.get("type") == "directory":
        raise FileNotFoundError(uri)
    return object_state(info, scheme)


def open_external(uri: str, settings: Settings | None = None) -> BinaryIO:
    fs, path, _ = filesystem(uri, settings)
    stream: BinaryIO = fs.open(path, "rb")
    return stream


def hash_external(uri: str, settings: Settings | None = None) -> str:
    return _hash_stream(open_external(uri, settings))


def _hash_stream(stream: BinaryIO) -> str:
    hasher = hashlib.sha256()
    with stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


# -- reading ----------------------------------------------------------------------------------


def read_table(
    parts: Iterable[tuple[str, str, Callable[[], bytes]]], columns: Sequence[str] | None = None
) -> pa.Table:
    """One table from ``(path, format, read bytes)`` parts, schemas unified across files."""
    import pyarrow as pa

    tables = [read_one(path, fmt, read(), columns) for path, fmt, read in parts]
    if not tables:
        raise InvalidInput("the dataset has no files to read")
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(
            f"the dataset's files do not share one schema: {exc}; give every file the same "
            "columns and types"
        ) from exc


def read_one(path: str, fmt: str, data: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """A table from one file's bytes; a file that does not parse is an InvalidInput."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    buffer = pa.BufferReader(data)
    try:
        if fmt == "parquet":
            return pq.read_table(buffer, columns=list(columns) if columns else None)
        ending = os.path.splitext(path.lower())[1]
        stream: Any = buffer
        if ending in _COMPRESSION:
            stream = pa.CompressedInputStream(buffer, _COMPRESSION[ending])
        if fmt == "csv":
            tab = _strip_compression(path).lower().endswith(".tsv")
            options = pacsv.ParseOptions(delimiter="\t" if tab else ",")
            table = pacsv.read_csv(stream, parse_options=options)
        else:
            table = pajson.read_json(stream)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InvalidInput(
            f"{path} is not valid {fmt}: {_first_line(exc)}; fix or replace the file"
        ) from exc
    if columns:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InvalidInput(
                f"{path} has no column {missing[0]!r}; pick from {table.column_names}"
            )
        table = table.select(list(columns))
    return table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as Parquet with fixed writer options, so equal tables give equal bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    try:
        pq.write_table(
            table,
            sink,
            compression="zstd",
            compression_level=3,
            use_dictionary=True,
            write_statistics=True,
            row_group_size=1 << 20,
            version="2.6",
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"the table cannot be stored as Parquet: {_first_line(exc)}") from exc
    return sink.getvalue()


# -- statistics of a source -------------------------------------------------------------------


def statistics_of(
    source: Source,
    *,
    settings: Settings | None = None,
    progress: Any = None,
) -> DatasetStatistics:
    """Statistics of a resolved source, read once: local files in place, remote objects
    one at a time (each read, summarized and merged, so memory stays bounded per object)."""
    from mloop.data._statistics import compute_statistics

    if source.table is not None:
        return compute_statistics(source.table, progress=progress)
    local = [f.local or _local_of(f.uri) for f in source.files]
    if all(p is not None for p in local):
        paths = [str(p) for p in local if p is not None]
        return compute_statistics(paths if len(paths) > 1 else paths[0], progress=progress)
    merged: DatasetStatistics | None = None
    for file in source.files:
        assert file.uri is not None
        with open_external(file.uri, settings) as stream:
            table = read_one(file.uri, file.format, stream.read())
        part = compute_statistics(table)
        merged = part if merged is None else merged.merge(part)
    assert merged is not None
    return merged


def _local_of(uri: str | None) -> Path | None:
    if uri is None or not uri.startswith("file://"):
        return None
    from mloop.artifacts._backends import local_path

    return Path(local_path(uri))


# -- "source or reference" arguments ----------------------------------------------------------


def load_statistics(source_or_ref: str, *, progress: Any = None) -> DatasetStatistics:
    """Statistics for a CLI argument: stored ones for ``NAME@VERSION`` and ``--save`` files,
    computed for data files, folders and globs."""
    from mloop.data._statistics import DatasetStatistics, compute_statistics

    if is_ref(source_or_ref):
        from mloop.data._versions import get_dataset_version

        return get_dataset_version(source_or_ref).statistics()
    path = Path(source_or_ref)
    if path.is_file() and is_statistics_file(path):
        try:
            return DatasetStatistics.from_bytes(path.read_bytes())
        except InvalidInput as exc:
            raise InvalidInput(
                f"{source_or_ref} is not a readable statistics file ({exc.message}); write one "
                "with `mloop data stats SOURCE --save FILE`, or give data files a data ending "
                "(.parquet, .csv, .jsonl)"
            ) from exc
    if is_uri(source_or_ref):
        return statistics_of(resolve(source_or_ref), progress=progress)
    if not path.exists() and not _GLOB.search(source_or_ref):
        raise _not_data(source_or_ref)
    return compute_statistics(source_or_ref, progress=progress)


def load_table(source_or_ref: str) -> pa.Table:
    """The rows a CLI argument names: a dataset version's, or those of files / a folder."""
    if is_ref(source_or_ref):
        from mloop.data._versions import get_dataset_version

        return get_dataset_version(source_or_ref).to_arrow()
    if (
        not is_uri(source_or_ref)
        and not Path(source_or_ref).exists()
        and not _GLOB.search(source_or_ref)
    ):
        raise _not_data(source_or_ref)
    source = resolve(source_or_ref)
    parts = []
    for file in source.files:
        if file.local is not None:
            parts.append((file.path, file.format, file.local.read_bytes))
        else:
            uri = file.uri
            assert uri is not None

            def read(uri: str = uri) -> bytes:
                with open_external(uri) as stream:
                    return stream.read()

            parts.append((file.path, file.format, read))
    return read_table(parts)


def is_statistics_file(path: Path) -> bool:
    """Statistics files are JSON naming their format; data files never start that way."""
    from mloop.data import _readers

    if os.path.splitext(_strip_compression(path.name).lower())[1] in _readers.FORMATS:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return not head.startswith(_readers.PARQUET_MAGIC)


def _not_data(text: str) -> NotFound | InvalidInput:
    if "@" in text:
        return InvalidInput(
            f"{text!r} is neither an existing path nor a dataset reference; use NAME@VERSION "
            "(sales@3, sales@latest) or a file, folder or glob"
        )
    return InvalidInput(f"{text} does not exist; give a file, folder, glob or NAME@VERSION")


__all__ = [
    "Source",
    "SourceFile",
    "as_arrow",
    "check_name",
    "external_files",
    "filesystem",
    "format_of",
    "hash_external",
    "is_ref",
    "is_uri",
    "load_statistics",
    "load_table",
    "local_files",
    "open_external",
    "parquet_bytes",
    "parse_ref",
    "read_one",
    "read_table",
    "resolve",
    "stat_external",
    "statistics_of",
]
