"""Streaming readers: a source becomes partitions, a partition becomes Arrow batches.

Memory stays bounded by a batch, never by the data: Parquet is read by row group
(``ParquetFile.iter_batches``), CSV and JSON-lines by block (``open_csv`` / ``open_json``).
Partitions (a Parquet row-group range, one CSV or JSON-lines file, a slice of an in-memory
table) are small picklable descriptions, so the same plan runs in this process, in local
worker processes or as Ray tasks; each worker opens its own file.

Every failure becomes one line naming the file and the next thing to do.
"""

from __future__ import annotations

import csv
import glob as globlib
import io
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from mloop.errors import InvalidInput

BATCH_BYTES = 16 << 20  # target size of one decoded Parquet batch: bounds memory per worker
PARQUET_BUFFER = 1 << 20  # read column chunks through a 1 MB buffer, not whole (measured:
# 10M rows x 25 columns peak at 300 MB instead of 650 MB, at the same speed)
MAX_BATCH_ROWS = 1 << 20  # large batches amortize per-call overhead; no more is needed
PARTITION_ROWS = 1_000_000  # Parquet row groups are grouped up to about this many rows
TABLE_PARTITION_ROWS = 262_144  # smallest slice of an in-memory table worth shipping
CSV_BLOCK_SIZE = 16 << 20  # bytes per CSV / JSON-lines block; types are inferred from the first
PARQUET_MAGIC = b"PAR1"
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
_GLOB_CHARS = re.compile(r"[*?\[]")


class DataSourceError(InvalidInput):
    """Data cannot be read as given (missing, corrupt, ragged, …); the message names the file."""

    code = "DATA_SOURCE_ERROR"


class EmptyDataError(DataSourceError):
    """The source holds no bytes or no rows."""

    code = "EMPTY_DATA"


class CorruptDataError(DataSourceError):
    """A file does not parse: corrupt Parquet, ragged CSV, a type that changes mid-file."""

    code = "CORRUPT_DATA"


class UnknownFormatError(DataSourceError):
    """Neither the file name nor its first bytes say which format it is."""

    code = "UNKNOWN_FORMAT"


class Partition(Protocol):
    """A unit of work: small, picklable, and able to stream its own rows."""

    @property
    def label(self) -> str: ...

    @property
    def weight(self) -> int: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ParquetPartition:
    path: str
    row_groups: tuple[int, ...]
    weight: int  # bytes, a share of the file size
    batch_rows: int = MAX_BATCH_ROWS

    @property
    def label(self) -> str:
        if not self.row_groups:
            return self.path
        return f"{self.path} (row groups {self.row_groups[0]}-{self.row_groups[-1]})"

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            reader = pq.ParquetFile(self.path, buffer_size=PARQUET_BUFFER, pre_buffer=False)
            if not self.row_groups:  # no rows, but the columns still count
                yield pa.RecordBatch.from_pylist([], schema=reader.schema_arrow)
                return
            yield from reader.iter_batches(
                batch_size=self.batch_rows, row_groups=list(self.row_groups)
            )
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt_parquet(self.path, exc) from None


def _corrupt_parquet(path: str, exc: BaseException) -> CorruptDataError:
    return CorruptDataError(
        f"{path} is not a readable Parquet file ({_first_line(exc)}); re-export it or "
        "remove it from the source"
    )


@dataclass(frozen=True)
class CsvPartition:
    path: str
    weight: int  # bytes

    @property
    def label(self) -> str:
        return self.path

    def batches(self) -> Iterator[pa.RecordBatch]:
        delimiter = "\t" if _strip_compression(self.path).lower().endswith(".tsv") else ","
        rows = 0
        reader = None
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
            )
            for batch in reader:
                rows += batch.num_rows
                yield batch
        except pa.ArrowInvalid as exc:
            schema = reader.schema if reader is not None else None
            raise _csv_error(self.path, exc, rows, schema, delimiter) from None
        except (pa.ArrowException, OSError) as exc:
            raise CorruptDataError(
                f"{self.path}: cannot read as CSV ({_first_line(exc)})"
            ) from None


def _csv_rows(path: str, delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    """(data row number from 1, line number, fields), for locating a bad row after a failure."""
    with pa.input_stream(path, compression="detect") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        next(reader, None)  # header
        for number, fields in enumerate(reader, start=1):
            yield number, reader.line_num, fields


def _csv_error(
    path: str, exc: pa.ArrowInvalid, rows_before: int, schema: pa.Schema | None, delimiter: str
) -> CorruptDataError:
    message = _first_line(exc)
    ragged = re.search(r"Expected (\d+) columns, got (\d+)", message)
    if ragged:
        expected = int(ragged.group(1))
        for number, line, fields in _csv_rows(path, delimiter):
            if len(fields) != expected:
                return CorruptDataError(
                    f"{path}: row {number} (line {line}) has {len(fields)} fields, expected "
                    f"{expected}; fix or remove that row"
                )
        return CorruptDataError(f"{path}: a row has {ragged.group(2)} fields, expected {expected}")
    converted = re.search(
        r"CSV column #(\d+): CSV conversion error to (\S+): invalid value '(.*)'", message
    )
    if converted and schema is not None:
        index, target, value = int(converted.group(1)), converted.group(2), converted.group(3)
        name = schema.names[index] if index < len(schema.names) else f"#{index}"
        where = ""
        for number, line, fields in _csv_rows(path, delimiter):
            if number > rows_before and index < len(fields) and fields[index] == value:
                where = f" at row {number} (line {line})"
                break
        return CorruptDataError(
            f"{path}: column {name!r} was read as {target} from the first rows, but holds "
            f"{value!r}{where}; give the column one type throughout or convert the file to Parquet"
        )
    return CorruptDataError(f"{path}: cannot read as CSV ({message})")


@dataclass(frozen=True)
class JsonLinesPartition:
    path: str
    weight: int  # bytes

    @property
    def label(self) -> str:
        return self.path

    def batches(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            reader = pajson.open_json(
                self.path, read_options=pajson.ReadOptions(block_size=CSV_BLOCK_SIZE)
            )
            for batch in reader:
                rows += batch.num_rows
                yield batch
        except (pa.ArrowException, OSError) as exc:
            raise _json_error(self.path, exc, rows) from None


def _json_error(path: str, exc: BaseException, rows_before: int) -> CorruptDataError:
    message = _first_line(exc).removeprefix("JSON parse error: ")
    at_row = re.search(r"\s*in row (\d+)$", message)
    if at_row:
        message = message[: at_row.start()]
        row = rows_before + int(at_row.group(1)) + 1
        return CorruptDataError(
            f"{path}: line {row}: {message}; fix that line or convert the file to Parquet"
        )
    if "unexpected field" in message:
        return CorruptDataError(
            f"{path}: a field first appears after row {rows_before} (the first rows decide the "
            "columns); start the file with a row holding every field or convert it to Parquet"
        )
    return CorruptDataError(f"{path}: cannot read as JSON lines ({message})")


class TablePartition:
    """A slice of an in-memory table; pickles as Arrow IPC so only the slice travels."""

    __slots__ = ("table",)

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    @property
    def label(self) -> str:
        return f"in-memory table ({self.table.num_rows} rows)"

    @property
    def weight(self) -> int:
        return int(self.table.num_rows)

    def batches(self) -> Iterator[pa.RecordBatch]:
        batches = self.table.to_batches()
        yield from batches or [pa.RecordBatch.from_pylist([], schema=self.table.schema)]

    def __reduce__(self) -> tuple[Any, ...]:
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return (_table_partition_from_ipc, (sink.getvalue().to_pybytes(),))


def _table_partition_from_ipc(data: bytes) -> TablePartition:
    return TablePartition(ipc.open_stream(data).read_all())


# -- Arrow values as statistics need them --------------------------------------------------


def numeric_values(arr: pa.Array) -> npt.NDArray[np.float64]:
    """Non-null values of a numeric column as float64 (temporal types as epoch numbers)."""
    dtype = arr.type
    if pa.types.is_temporal(dtype):
        arr = arr.view(pa.int32() if dtype.bit_width == 32 else pa.int64())
    elif pa.types.is_decimal(dtype):
        arr = pc.cast(arr, pa.float64())
    values: npt.NDArray[np.float64] = as_numpy(arr).astype(np.float64, copy=False)
    return values


def as_numpy(arr: pa.Array) -> npt.NDArray[Any]:
    """Values of an integer, float or boolean array without nulls as a (read-only) numpy
    array, zero-copy where Arrow's layout allows.

    pyarrow's ``to_numpy`` imports pandas on first use (about 0.2 s per process, measured),
    so fixed-width values are wrapped straight from their buffer; other types fall back.
    """
    dtype = arr.type
    if arr.null_count == 0:
        if pa.types.is_boolean(dtype):
            return as_numpy(pc.cast(arr, pa.uint8())).view(np.bool_)
        kind = (
            "i"
            if pa.types.is_signed_integer(dtype)
            else "u"
            if pa.types.is_unsigned_integer(dtype)
            else "f"
            if pa.types.is_floating(dtype)
            else None
        )
        if kind is not None:
            width = dtype.bit_width // 8
            data = arr.buffers()[1]
            if data is None:  # a zero-length array may carry no data buffer
                return np.empty(0, dtype=f"<{kind}{width}")
            return np.frombuffer(
                data, dtype=f"<{kind}{width}", count=len(arr), offset=arr.offset * width
            )
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def category_keys(values: pa.Array) -> list[str]:
    """Category values as strings: the keys of frequencies, top-k and the stored file."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    dtype = values.type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return values.to_pylist()  # type: ignore[no-any-return]
    if (
        pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    ):
        return [b.decode("utf-8", "backslashreplace") for b in values.to_pylist()]
    try:
        return pc.cast(values, pa.string()).to_pylist()  # type: ignore[no-any-return]
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [str(v) for v in values.to_pylist()]


def string_lengths(arr: pa.Array) -> pa.Array | None:
    """Lengths of string values (characters) or binary values (bytes); None for others."""
    dtype = arr.type
    if pa.types.is_dictionary(dtype):
        lengths = string_lengths(arr.dictionary)
        return None if lengths is None else lengths.take(arr.indices)
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    ):
        return pc.utf8_length(arr)
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return pc.binary_length(arr)
    return None


@dataclass
class Plan:
    """What ``compute_statistics`` runs: the partitions and how to describe the source."""

    partitions: list[Partition]
    from_files: bool
    description: str


def as_table(source: Any) -> pa.Table | None:
    """An Arrow table for in-memory sources (Arrow, pandas, Polars), else None."""
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    module = type(source).__module__
    try:
        if module.startswith("polars"):
            if hasattr(source, "collect"):  # LazyFrame
                source = source.collect()
            table: pa.Table = source.to_arrow()
            return table
        if module.startswith("pandas"):
            return pa.Table.from_pandas(source, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"cannot convert the DataFrame to Arrow ({_first_line(exc)}); give every column "
            "a single type"
        ) from None
    return None


def plan(source: Any, *, parallelism: int = 1) -> Plan:
    """Partitions of a source: a path, glob, list of paths, or an in-memory table."""
    table = as_table(source)
    if table is not None:
        return Plan(_table_partitions(table, parallelism), False, "the table")
    if isinstance(source, (str, os.PathLike)):
        paths = resolve_paths(source)
        description = str(source)
    elif (
        isinstance(source, Sequence)
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        paths = [p for s in source for p in resolve_paths(s)]
        description = ", ".join(str(s) for s in source)
    else:
        raise InvalidInput(
            f"cannot compute statistics of a {type(source).__name__}; give a file, folder or "
            "glob of Parquet/CSV/JSON-lines, an Arrow table, or a pandas or Polars DataFrame"
        )
    partitions: list[Partition] = []
    for path in paths:
        partitions.extend(file_partitions(path))
    return Plan(partitions, True, description)


def _table_partitions(table: pa.Table, parallelism: int) -> list[Partition]:
    pieces = max(1, min(parallelism, table.num_rows // TABLE_PARTITION_ROWS))
    step = math.ceil(table.num_rows / pieces) if table.num_rows else 1
    if pieces == 1:
        return [TablePartition(table)]
    return [TablePartition(table.slice(start, step)) for start in range(0, table.num_rows, step)]


def resolve_paths(source: str | os.PathLike[str]) -> list[Path]:
    """Data files of a file, folder (recursively) or glob, sorted; errors name the source."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p, path))
        if not found:
            raise EmptyDataError(
                f"{text} holds no data files ({', '.join(sorted(set(FORMATS)))}); point at a "
                "folder with data or at the files themselves"
            )
        return found
    if _GLOB_CHARS.search(text):
        matches = sorted(Path(m) for m in globlib.glob(os.path.expanduser(text), recursive=True))
        files: list[Path] = []
        for match in matches:
            files.extend(resolve_paths(match) if match.is_dir() else [match])
        if not files:
            raise DataSourceError(f"{text} matches no files; check the pattern")
        return files
    raise DataSourceError(f"{text} does not exist; give an existing file, folder or glob")


def _is_data_file(path: Path, root: Path) -> bool:
    if any(part.startswith((".", "_")) for part in path.relative_to(root).parts):
        return False  # hidden files, _SUCCESS markers, _delta_log, …
    return _format_by_name(path) is not None or _has_parquet_magic(path)


def _strip_compression(name: str) -> str:
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _format_by_name(path: Path) -> str | None:
    return FORMATS.get(Path(_strip_compression(path.name)).suffix.lower())


def _has_parquet_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def detect_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl``: by extension, else by Parquet's magic bytes."""
    by_name = _format_by_name(path)
    if by_name is not None:
        return by_name
    if _has_parquet_magic(path):
        return "parquet"
    raise UnknownFormatError(
        f"{path}: unknown data format; name it .parquet, .csv, .tsv or .jsonl (optionally "
        ".gz/.bz2/.zst compressed)"
    )


def file_partitions(path: Path) -> list[Partition]:
    """Partitions of one file: Parquet row-group ranges, or the whole text file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read ({_first_line(exc)})") from None
    if size == 0:
        raise EmptyDataError(f"{path} is empty (0 bytes); remove it or write data to it")
    fmt = detect_format(path)
    where = str(path.absolute())  # workers do not share this process's working directory
    if fmt == "csv":
        return [CsvPartition(where, size)]
    if fmt == "jsonl":
        return [JsonLinesPartition(where, size)]
    try:
        metadata = pq.ParquetFile(where).metadata
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt_parquet(str(path), exc) from None
    total_rows = max(metadata.num_rows, 1)
    decoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    batch_rows = max(8192, min(MAX_BATCH_ROWS, BATCH_BYTES * total_rows // max(decoded, 1)))
    partitions: list[Partition] = []
    group: list[int] = []
    rows = 0
    for index in range(metadata.num_row_groups):
        group.append(index)
        rows += metadata.row_group(index).num_rows
        if rows >= PARTITION_ROWS or index == metadata.num_row_groups - 1:
            partitions.append(
                ParquetPartition(where, tuple(group), size * rows // total_rows, batch_rows)
            )
            group, rows = [], 0
    if not partitions:  # a valid file without row groups: zero rows, still a partition
        partitions.append(ParquetPartition(where, (), size))
    return partitions


__all__ = [
    "BATCH_BYTES",
    "CSV_BLOCK_SIZE",
    "FORMATS",
    "CorruptDataError",
    "CsvPartition",
    "DataSourceError",
    "EmptyDataError",
    "JsonLinesPartition",
    "ParquetPartition",
    "Partition",
    "Plan",
    "TablePartition",
    "UnknownFormatError",
    "as_table",
    "category_keys",
    "detect_format",
    "file_partitions",
    "numeric_values",
    "plan",
    "resolve_paths",
    "string_lengths",
]
