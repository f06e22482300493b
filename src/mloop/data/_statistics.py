"""Mergeable dataset statistics, computed one Arrow batch at a time.

Everything here is a *partial result that merges*: a partition (a Parquet row-group range,
a CSV file, a slice of a table) is summarized on its own — in this process, a local worker
process or a Ray task — and the summaries are merged. Exact quantities (counts, min/max,
moments, category counts while few) merge exactly, so ``stats(A ∪ B)`` equals
``stats(A).merge(stats(B))`` for them; sketched ones (quantiles, frequent items once a
column has many categories, distinct counts) merge within the sketch's stated error.

Batches are summarized with vectorized numpy / pyarrow.compute calls: never a Python loop
per row, only per distinct category value. One column's summary is
:class:`~mloop.data._feature_stats.FeatureStats`; this module holds the data-set level:
the statistics file, the batch builder and the partitioned computation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from mloop.data import _executors, _readers
from mloop.data._feature_stats import SUMMARY_QUANTILES, FeatureStats, adapt_feature
from mloop.data._model import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Lengths,
    Moments,
    StatisticsFile,
)
from mloop.errors import InvalidInput


@dataclass(eq=False)
class DatasetStatistics:
    """Statistics of every column of a data set; merges, stores, and loads safely."""

    num_rows: int = 0
    features: dict[str, FeatureStats] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def merge(self, other: DatasetStatistics) -> DatasetStatistics:
        """The union of both row sets; a column on one side only is missing on the other."""
        features: dict[str, FeatureStats] = {}
        for name in [*self.features, *(n for n in other.features if n not in self.features)]:
            mine, theirs = self.features.get(name), other.features.get(name)
            if mine is None:
                assert theirs is not None
                mine = theirs._empty_like(self.num_rows, self.num_rows)
            if theirs is None:
                theirs = mine._empty_like(other.num_rows, other.num_rows)
            features[name] = mine.merge(theirs)
        return DatasetStatistics(self.num_rows + other.num_rows, features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "num_rows": self.num_rows,
            "features": {name: f.to_dict() for name, f in self.features.items()},
        }

    def to_bytes(self) -> bytes:
        """UTF-8 JSON naming its format and version; sketches as base64 blobs. No pickle."""
        document = StatisticsFile(
            format="mloop.statistics",
            format_version=FORMAT_VERSION,
            num_rows=self.num_rows,
            features=[f.to_state() for f in self.features.values()],
        )
        return document.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> DatasetStatistics:
        """Check the whole document before building anything; anything odd is InvalidInput."""
        try:
            header = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(
                "these bytes are not mloop statistics (not JSON); compute the statistics again"
            ) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise InvalidInput(
                "these bytes are not mloop statistics (no 'mloop.statistics' format marker)"
            )
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise InvalidInput(
                f"statistics format version {version!r} is not supported (this mloop reads "
                f"version {FORMAT_VERSION}); upgrade mloop or compute the statistics again"
            )
        try:
            document = StatisticsFile.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"statistics file is malformed at {where}: {first['msg']}") from None
        features = [FeatureStats.from_state(s) for s in document.features]
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise InvalidInput("statistics file lists a feature twice; the file is corrupt")
        if any(f.count != document.num_rows for f in features):
            raise InvalidInput(
                "statistics file has a feature whose row count differs from num_rows"
            )
        return cls(document.num_rows, {f.name: f for f in features}, document.format_version)


class StatisticsBuilder:
    """Accumulates statistics batch by batch: the streaming half of every partition task."""

    def __init__(self) -> None:
        self.num_rows = 0
        self.features: dict[str, FeatureStats] = {}

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = _flatten(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
        seen = set()
        work: list[tuple[FeatureStats, pa.ChunkedArray]] = []
        for name, column in zip(table.column_names, table.columns, strict=True):
            if name in seen:
                raise InvalidInput(
                    f"column {name!r} appears twice; give every column a unique name"
                )
            seen.add(name)
            stats = adapt_feature(self.features.get(name), name, column.type, self.num_rows)
            self.features[name] = stats
            work.append((stats, column))
        if len(work) > 1 and table.num_rows >= _executors.THREADED_ROWS:
            list(_executors.column_threads().map(_update_column, work))
        else:
            for item in work:
                _update_column(item)
        for name, stats in self.features.items():
            if name not in seen:
                stats.count += table.num_rows
                stats.missing += table.num_rows
        self.num_rows += table.num_rows

    def result(self) -> DatasetStatistics:
        return DatasetStatistics(self.num_rows, dict(self.features))


def _update_column(item: tuple[FeatureStats, pa.ChunkedArray]) -> None:
    item[0].update(item[1])


def _flatten(table: pa.Table) -> pa.Table:
    """Struct columns become ``parent.child`` columns, recursively."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    return table


def statistics_of_table(table: pa.Table | pa.RecordBatch) -> DatasetStatistics:
    """Statistics of an in-memory Arrow table or batch, in this process."""
    builder = StatisticsBuilder()
    builder.add(table)
    return builder.result()


def partition_statistics(partition: _readers.Partition) -> bytes:
    """Summarize one partition; runs in workers, so it returns portable bytes."""
    builder = StatisticsBuilder()
    for batch in _prefetched(partition.batches()):
        builder.add(batch)
    return builder.result().to_bytes()


def _prefetched(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The same batches, the next one decoded in a reader thread while this one is
    summarized (decoding releases the GIL): reading and sketching overlap. Errors raised
    while reading surface here, in order."""
    reader = _executors.reader_thread()
    done = object()
    pending = reader.submit(next, batches, done)
    while True:
        batch = pending.result()
        if batch is done:
            return
        pending = reader.submit(next, batches, done)
        yield batch


def compute_statistics(
    source: Any,
    *,
    executor: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetStatistics:
    """Statistics of a file, folder, glob, Arrow table, pandas or Polars DataFrame.

    The source is cut into partitions (Parquet row-group ranges, files, table slices)
    that are summarized in parallel by the chosen executor (``None``: the
    ``MLOOP_EXECUTOR`` setting, else ``local``) and merged here. ``progress(done, total)``
    is called as partitions finish, in work units (rows or bytes).
    """
    runner = _executors.get_executor(executor)
    # In-memory tables are split only for executors that gain from it: copying a table to
    # local workers costs about as much as sketching it (measured), a cluster does not.
    splits = getattr(runner, "splits_tables", True)
    plan = _readers.plan(source, parallelism=runner.parallelism if splits else 1)
    total = sum(p.weight for p in plan.partitions)
    done = 0

    def finished(index: int) -> None:
        nonlocal done
        done += plan.partitions[index].weight
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    blobs = runner.run(partition_statistics, plan.partitions, finished)
    result = DatasetStatistics()
    for partition, blob in zip(plan.partitions, blobs, strict=True):
        try:
            result = result.merge(DatasetStatistics.from_bytes(blob))
        except InvalidInput as exc:
            raise _readers.DataSourceError(f"{partition.label}: {exc.message}") from None
    if plan.from_files and result.num_rows == 0:
        raise _readers.EmptyDataError(
            f"{plan.description} contains no rows; point at data with at least one row"
        )
    return result


__all__ = [
    "SUMMARY_QUANTILES",
    "DatasetStatistics",
    "FeatureStats",
    "Lengths",
    "Moments",
    "StatisticsBuilder",
    "compute_statistics",
    "statistics_of_table",
]
