"""One append-only log table (predictions, feedback): WAL writers, compaction, reads.

Each deployment's records go to ``<wal_root>/<deployment>/<table>/``; a background thread
rolls segments older than ``roll_interval`` and compacts every closed segment — including
those a crashed process left behind — into Parquet under the root, deleting a segment
only once its Parquet parts are durable. Readers merge Parquet with the segments not yet
compacted and drop the copies a crash between the two steps can leave, by ``record_id``
(``<segment>:<byte offset>``: stable, and free to compute at append time).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mloop.errors import ConfigError
from mloop.serving._predlog_codec import decode
from mloop.serving._predlog_store import LogRoot, check_deployment, partition_of
from mloop.serving._predlog_wal import (
    SyncPolicy,
    WalWriter,
    claimed,
    fsync_dir,
    read_segment,
    remove_stale_temporaries,
    segment_id,
    segments,
)

logger = logging.getLogger("mloop.serving.log")

Row = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class TableSpec:
    """How one table's WAL payloads (JSON objects with ``time_ms``) become Arrow rows.

    ``added`` names the columns later formats added, with the value a part written before
    them reads as (so old parts stay readable without rewriting them)."""

    name: str
    schema: pa.Schema
    to_arrow: Callable[[Sequence[Row]], pa.Table]
    added: Mapping[str, object] = field(default_factory=dict)

    def conform(self, part: pa.Table) -> pa.Table:
        """A stored part in this table's current schema, added columns filled in."""
        for name, value in self.added.items():
            if name not in part.column_names:
                kind = self.schema.field(name).type
                part = part.append_column(name, pa.array([value] * part.num_rows, kind))
        return part.select(self.schema.names).cast(self.schema)


def decode_rows(path: Path) -> list[Row]:
    """The records of one segment with their record ids; damage is logged, never raised."""
    try:
        scan = read_segment(path)
    except FileNotFoundError:
        return []
    sid = segment_id(path)
    rows: list[Row] = []
    for offset, payload in scan.frames:
        try:
            record = decode(payload)
        except ValueError:  # orjson's decode error is one
            scan.damaged += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("time_ms"), int):
            rows.append((f"{sid}:{offset}", record))
        else:
            scan.damaged += 1
    if scan.damaged:
        logger.warning(
            "log segment %s: skipped %d damaged record(s); the records around them are kept",
            path,
            scan.damaged,
        )
    return rows


class TableLog:
    """Durable appends for one table under one root, with background compaction."""

    def __init__(
        self,
        root: LogRoot,
        spec: TableSpec,
        wal_root: Path,
        *,
        sync: SyncPolicy,
        roll_interval: float,
        roll_bytes: int,
        compact_interval: float | None,
        roll_only: bool = False,
    ) -> None:
        self.root = root
        self.roll_only = roll_only
        self.spec = spec
        self.wal_root = wal_root
        self.sync: SyncPolicy = sync
        self.roll_interval = roll_interval
        self.roll_bytes = roll_bytes
        self._writers: dict[str, WalWriter] = {}
        self._lock = threading.Lock()
        self._compact_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if compact_interval is not None:
            self._thread = threading.Thread(
                target=self._run, args=(compact_interval,), name=f"mloop-{spec.name}-compactor"
            )
            self._thread.daemon = True
            self._thread.start()

    def wal_dir(self, deployment: str) -> Path:
        return self.wal_root / check_deployment(deployment) / self.spec.name

    def writer(self, deployment: str) -> WalWriter:
        found = self._writers.get(deployment)
        if found is not None:
            return found
        with self._lock:
            if self._stop.is_set():
                raise ConfigError(f"the {self.spec.name} log is closed; open a new one")
            found = self._writers.get(deployment)
            if found is None:
                found = WalWriter(
                    self.wal_dir(deployment), sync=self.sync, roll_bytes=self.roll_bytes
                )
                self._writers[deployment] = found
            return found

    def compact(self, *, roll: bool = False) -> int:
        """Compact every closed segment of this table (all deployments); with ``roll``, close
        the open segments first. Returns the number of records moved to Parquet."""
        with self._compact_lock:
            if roll:
                for writer in list(self._writers.values()):
                    writer.roll()
            moved = 0
            for deployment in self._wal_deployments():
                directory = self.wal_dir(deployment)
                remove_stale_temporaries(directory)
                for path in segments(directory):
                    moved += self._compact_segment(deployment, path)
            return moved

    def _wal_deployments(self) -> list[str]:
        if not self.wal_root.is_dir():
            return []
        return sorted(
            entry.name for entry in self.wal_root.iterdir() if (entry / self.spec.name).is_dir()
        )

    def _compact_segment(self, deployment: str, path: Path) -> int:
        with claimed(path) as ours:
            if not ours:
                return 0
            rows = decode_rows(path)
            groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
            for row in rows:
                groups[partition_of(row[1]["time_ms"])].append(row)
            base = self.root.table_dir(self.spec.name, deployment)
            sid = segment_id(path)
            for n, ((date, hour), group) in enumerate(sorted(groups.items())):
                relative = f"{base}/date={date}/hour={hour}/part-{sid}-{n}.parquet"
                self.root.write_part(relative, self.spec.to_arrow(group))
            path.unlink()
            fsync_dir(path.parent)
            return len(rows)

    def _run(self, interval: float) -> None:
        while True:
            try:
                for writer in list(self._writers.values()):
                    writer.roll(older_than=self.roll_interval)
                if not self.roll_only:  # else another process compacts what was closed
                    self.compact()
            except Exception:
                # The WAL keeps every record; the next round retries (e.g. S3 was down).
                logger.exception("prediction log compaction failed; will retry")
            if self._stop.wait(interval):
                return

    def close(self, *, compact: bool = True) -> None:
        """Stop the compactor, close every segment and (by default) compact them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for writer in self._writers.values():
                writer.close()
        if compact:
            try:
                self.compact()
            except Exception:
                # Shutdown must not fail on a storage outage: the segments stay on disk
                # and the next process to open the log compacts them.
                logger.exception("compaction at close failed; the write-ahead files are kept")


def read_table(
    root: LogRoot,
    spec: TableSpec,
    deployment: str,
    wal_root: Path | None,
    since_ms: int | None,
    until_ms: int | None,
) -> pa.Table:
    """Parquet parts plus not-yet-compacted WAL records in [since, until), de-duplicated by
    record id, ordered by time. WAL first: a segment compacted meanwhile is then found in
    Parquet, and one read twice is de-duplicated."""
    check_deployment(deployment)
    pieces: list[pa.Table] = []
    if wal_root is not None:
        rows: list[Row] = []
        for path in segments(wal_root / deployment / spec.name):
            rows.extend(decode_rows(path))
        if rows:
            pieces.append(spec.to_arrow(rows))
    for relative in root.parts(spec.name, deployment, since_ms, until_ms):
        part = root.read_part(relative)
        if part is not None:
            pieces.append(spec.conform(part))
    table = pa.concat_tables(pieces) if pieces else spec.schema.empty_table()
    table = _between(table, since_ms, until_ms)
    import polars as pl  # only readers need it: a server starts without it

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.unique(subset="record_id", keep="first", maintain_order=True)
    result = frame.sort("time", maintain_order=True).to_arrow()
    return result.cast(spec.schema)


def _between(table: pa.Table, since_ms: int | None, until_ms: int | None) -> pa.Table:
    millis = pc.cast(table["time"], pa.int64())
    mask = None
    if since_ms is not None:
        mask = pc.greater_equal(millis, since_ms)
    if until_ms is not None:
        upper = pc.less(millis, until_ms)
        mask = upper if mask is None else pc.and_(mask, upper)
    return table if mask is None else table.filter(mask)


def with_deployment(table: pa.Table, deployment: str, after: str = "time") -> pa.Table:
    """Add the partition column back, as a Hive-aware reader would."""
    column = pa.array([deployment] * table.num_rows, pa.string())
    return table.add_column(table.schema.get_field_index(after) + 1, "deployment", column)


def json_text(values: Iterable[Any]) -> list[str | None]:
    return [
        None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        for value in values
    ]
