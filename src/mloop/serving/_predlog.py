"""The prediction log: every answered request, durable before the answer leaves.

``PredictionLog.append`` writes the record to a local write-ahead file (see
:mod:`._predlog_wal`) and returns once it is safe, so the server can acknowledge the
request; a background thread compacts closed segments into time-partitioned Parquet under
the log root (a folder or ``s3://``), which DuckDB, Polars or Spark read directly.
``read_predictions`` merges both, so a record is readable the moment it is acknowledged.

Guarantee: after ``kill -9``, every record whose ``append`` returned is read back exactly
once when the log is opened again; with ``fsync="always"`` or ``"group"`` also after a
power cut. A record ``append`` did not return for may be missing; it was never answered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from mloop.config import Settings, get_settings
from mloop.errors import ConfigError, InvalidInput
from mloop.serving._predlog_codec import encode
from mloop.serving._predlog_store import LogRoot
from mloop.serving._predlog_table import (
    Row,
    TableLog,
    TableSpec,
    json_text,
    read_table,
    with_deployment,
)
from mloop.serving._predlog_wal import SYNC_POLICIES, SyncPolicy

if TYPE_CHECKING:
    from mloop.serving._compactor_process import CompactorProcess

logger = logging.getLogger("mloop.serving")

FORMAT = "predictions/2"
"""``predictions/2`` added ``status`` and ``error``; ``predictions/1`` parts read as status 200."""

SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("request_id", pa.string()),
        ("time", pa.timestamp("ms", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("role", pa.string()),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
        ("latency_ms", pa.float64()),
        ("guards", pa.string()),
        ("trace_id", pa.string()),
        ("needs_review", pa.bool_()),
        ("status", pa.int32()),
        ("error", pa.string()),
    ],
    metadata={"mloop.format": FORMAT},
)

ADDED_COLUMNS: dict[str, object] = {"status": 200, "error": None}
"""Columns newer than ``predictions/1``, with the value older parts read as: every record
logged before failures were logged was an answer."""


@dataclass(slots=True)
class PredictionRecord:
    """One answer of one model version to one request. A request answered by a primary and
    a shadow gives two records with the same ``request_id`` (and clients may reuse ids), so
    the log's own key is the ``record_id`` it assigns.

    ``inputs``/``outputs`` are JSON-able (numpy arrays are accepted); they are stored as
    JSON text. ``guards`` holds the guard decisions (``{"atypical": 0.97, …}``).
    ``status`` is the HTTP status of the answer (200) or of the failure after routing, when
    ``error`` holds the error code (``INVALID_INPUT``, ``INTERNAL``) and ``outputs`` is None:
    monitoring counts error rates per model version from it.
    """

    request_id: str
    time_ms: int
    deployment: str
    model: str
    version: int
    role: str
    inputs: Any
    outputs: Any
    latency_ms: float
    guards: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    needs_review: bool = False
    status: int = 200
    error: str | None = None


def _to_arrow(rows: Sequence[Row]) -> pa.Table:
    records = [record for _, record in rows]
    return pa.table(
        {
            "record_id": [record_id for record_id, _ in rows],
            "request_id": [str(r.get("request_id", "")) for r in records],
            "time": pa.array([r["time_ms"] for r in records], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "model": [r.get("model") for r in records],
            "version": pa.array([r.get("version") for r in records], pa.int64()),
            "role": [r.get("role") for r in records],
            "inputs": json_text(r.get("inputs") for r in records),
            "outputs": json_text(r.get("outputs") for r in records),
            "latency_ms": pa.array([r.get("latency_ms") for r in records], pa.float64()),
            "guards": json_text(r.get("guards") or {} for r in records),
            "trace_id": [r.get("trace_id") for r in records],
            "needs_review": pa.array([bool(r.get("needs_review")) for r in records], pa.bool_()),
            "status": pa.array([r.get("status", 200) for r in records], pa.int32()),
            "error": [r.get("error") for r in records],
        },
        schema=SCHEMA,
    )


PREDICTIONS = TableSpec("predictions", SCHEMA, _to_arrow, ADDED_COLUMNS)


def sync_policy(fsync: bool | str) -> SyncPolicy:
    """``True`` means ``"always"`` and ``False`` means ``"off"``; strings pass checked."""
    if fsync is True:
        return "always"
    if fsync is False:
        return "off"
    if fsync not in SYNC_POLICIES:
        raise ConfigError(f"unknown fsync policy {fsync!r}; use one of {', '.join(SYNC_POLICIES)}")
    return fsync  # type: ignore[return-value]


def wal_root(settings: Settings, wal_dir: str | Path | None) -> Path:
    """The local folder of write-ahead files: ``<home>/wal`` — a local disk even when the
    log root is on object storage."""
    return Path(wal_dir) if wal_dir is not None else (settings.home / "wal").absolute()


def jsonable_arrays(arrays: Mapping[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Tensors as a record keeps them: numeric arrays as they are (the write-ahead file
    keeps their bytes, see :mod:`._predlog_codec`), text and objects as lists of strings."""
    return {
        name: (
            [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                for v in a.reshape(-1).tolist()
            ]
            if a.dtype.kind in "OSU"
            else a
        )
        for name, a in arrays.items()
    }


class PredictionLog:
    """Durable prediction records for a server process (thread-safe).

    ``fsync``: ``"always"`` (default; one fsync per append), ``"group"`` (threads appending
    at once share one fsync; each returns once its bytes are on disk), ``"off"`` (survives a
    killed process, not a power cut). ``compact_interval=None`` turns the background thread
    off (compact with :meth:`compact_now`); ``compact_in="process"`` leaves the compaction to
    a low-priority child process and this process's thread only closes aging segments (what
    an inference server does). Use as a context manager or call :meth:`close` at shutdown:
    it closes the open segment and compacts it.
    """

    def __init__(
        self,
        root_uri: str | None = None,
        *,
        fsync: bool | str = "always",
        wal_dir: str | Path | None = None,
        roll_interval: float = 60.0,
        roll_bytes: int = 64 << 20,
        compact_interval: float | None = 5.0,
        compact_in: Literal["thread", "process"] = "thread",
        settings: Settings | None = None,
    ) -> None:
        settings = settings or get_settings()
        self.root_uri = root_uri or settings.resolved_prediction_log_uri
        self._log = TableLog(
            LogRoot(self.root_uri, s3_endpoint_url=settings.s3_endpoint_url),
            PREDICTIONS,
            wal_root(settings, wal_dir),
            sync=sync_policy(fsync),
            roll_interval=roll_interval,
            roll_bytes=roll_bytes,
            compact_interval=compact_interval,
            roll_only=compact_in == "process" and compact_interval is not None,
        )
        self._compactor: CompactorProcess | None = None
        self._compactor_lock = threading.Lock()
        self._compactor_timer: threading.Timer | None = None
        if compact_in == "process" and compact_interval is not None:
            # Started one interval from now, not while the server itself is starting: two
            # interpreters importing at once on a small machine slow the start of both.
            interval = compact_interval
            self._compactor_timer = threading.Timer(
                interval, self._start_compactor, args=(settings, interval)
            )
            self._compactor_timer.daemon = True
            self._compactor_timer.start()

    @property
    def wal_root(self) -> Path:
        return self._log.wal_root

    def append(self, record: PredictionRecord) -> None:
        """Log one record; returns once it is durable (per the fsync policy)."""
        payload = encode(record)
        self._log.writer(record.deployment).append([payload])

    def append_many(self, records: Sequence[PredictionRecord]) -> None:
        """Log a micro-batch with one write (and one fsync) per deployment."""
        by_deployment: dict[str, list[bytes]] = {}
        for record in records:
            by_deployment.setdefault(record.deployment, []).append(encode(record))
        for deployment, payloads in by_deployment.items():
            self._log.writer(deployment).append(payloads)

    async def append_async(self, record: PredictionRecord) -> None:
        """:meth:`append` for an event loop: returns once the record is durable, without
        blocking the loop on the disk; concurrent requests share one fsync."""
        payload = encode(record)
        await self._log.writer(record.deployment).append_async([payload])

    async def append_many_async(self, records: Sequence[PredictionRecord]) -> None:
        by_deployment: dict[str, list[bytes]] = {}
        for record in records:
            by_deployment.setdefault(record.deployment, []).append(encode(record))
        for deployment, payloads in by_deployment.items():
            await self._log.writer(deployment).append_async(payloads)

    def compact_now(self) -> int:
        """Close the open segments and move every closed one to Parquet; returns the number
        of records moved."""
        return self._log.compact(roll=True)

    async def compact(self) -> int:
        """:meth:`compact_now` off the event loop."""
        return await asyncio.to_thread(self.compact_now)

    def compact_closed(self) -> int:
        """Move every closed segment (of any process) to Parquet; open ones stay."""
        return self._log.compact()

    def _start_compactor(self, settings: Settings, interval: float) -> None:
        from mloop.serving._compactor_process import CompactorProcess

        with self._compactor_lock:
            if self._compactor_timer is None:  # closed meanwhile
                return
            if self._compactor is None or not self._compactor.process.is_alive():
                if self._compactor is not None:
                    logger.warning(
                        "the prediction log's compactor process exited (code %s); starting "
                        "another (closed segments wait on disk meanwhile)",
                        self._compactor.process.exitcode,
                    )
                self._compactor = CompactorProcess(
                    settings, self.root_uri, str(self._log.wal_root), interval
                )
            # look again later: a compactor that died is replaced, not silently missed
            self._compactor_timer = threading.Timer(
                max(interval, 5.0), self._start_compactor, args=(settings, interval)
            )
            self._compactor_timer.daemon = True
            self._compactor_timer.start()

    def close(self, *, compact: bool = True) -> None:
        """Flush and compact everything; appends after this raise ``ConfigError``."""
        with self._compactor_lock:
            if self._compactor_timer is not None:
                self._compactor_timer.cancel()
                self._compactor_timer = None
            if self._compactor is not None:
                self._compactor.close()
        self._log.close(compact=compact)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def to_ms(value: datetime | int | float | None, *, name: str = "time") -> int | None:
    """Milliseconds since the epoch from a datetime (naive = UTC) or a number of ms."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a datetime or milliseconds since the epoch")
    return int(value)


def read_predictions(
    root: str | None,
    deployment: str,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    *,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> pa.Table:
    """Every logged prediction of ``deployment`` with ``since <= time < until``, ordered by
    time: the Parquet parts plus what is still in this machine's write-ahead files, each
    record once. ``inputs``, ``outputs`` and ``guards`` are JSON text."""
    settings = settings or get_settings()
    log_root = LogRoot(
        root or settings.resolved_prediction_log_uri, s3_endpoint_url=settings.s3_endpoint_url
    )
    table = read_table(
        log_root,
        PREDICTIONS,
        deployment,
        wal_root(settings, wal_dir),
        to_ms(since, name="since"),
        to_ms(until, name="until"),
    )
    return with_deployment(table, deployment)
