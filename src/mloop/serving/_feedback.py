"""Feedback: ground-truth labels and outcome events attached to logged predictions.

Labels often arrive long after the answer, and in bulk (a nightly export from a labelling
tool), so feedback is its own append-only table — the same write-ahead file and Parquet
machinery as the prediction log, under ``<root>/feedback/`` — joined to predictions by
request id when read. Nothing is updated in place: when several labels name one request
id, the one with the latest ``time`` wins (an item without ``time`` gets its arrival
time), and the same holds for outcomes, separately.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from mloop.config import Settings, get_settings
from mloop.errors import InvalidInput
from mloop.serving._predlog import read_predictions, sync_policy, to_ms, wal_root
from mloop.serving._predlog_store import LogRoot
from mloop.serving._predlog_table import Row, TableLog, TableSpec, json_text, read_table

FORMAT = "feedback/1"
FIELDS = ("request_id", "label", "outcome", "time")

SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("request_id", pa.string()),
        ("time", pa.timestamp("ms", tz="UTC")),
        ("label", pa.string()),
        ("outcome", pa.string()),
        ("actor", pa.string()),
        ("source", pa.string()),
    ],
    metadata={"mloop.format": FORMAT},
)


def _to_arrow(rows: Sequence[Row]) -> pa.Table:
    records = [record for _, record in rows]
    return pa.table(
        {
            "record_id": [record_id for record_id, _ in rows],
            "request_id": [r["request_id"] for r in records],
            "time": pa.array([r["time_ms"] for r in records], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "label": json_text(r.get("label") for r in records),
            "outcome": [r.get("outcome") for r in records],
            "actor": [r.get("actor") for r in records],
            "source": [r.get("source") for r in records],
        },
        schema=SCHEMA,
    )


FEEDBACK = TableSpec("feedback", SCHEMA, _to_arrow)


def _item_time(value: Any, where: str) -> int:
    if value is None:
        return int(time.time() * 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{where}: time {value!r} is not ISO 8601; use e.g. 2026-03-01T10:30:00Z "
                "or milliseconds since the epoch"
            ) from None
        return to_ms(parsed) or 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: time must be ISO 8601 text or milliseconds since the epoch")
    return int(value)


def check_items(
    items: Iterable[Mapping[str, Any]], *, actor: str | None = None, source: str = "api"
) -> list[dict[str, Any]]:
    """Validated feedback records; the error names the item (0-based) and the field."""
    checked = []
    for index, item in enumerate(items):
        where = f"feedback item {index}"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} is not an object with request_id and label or outcome")
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise InvalidInput(
                f"{where} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}"
            )
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            raise InvalidInput(f"{where}: request_id must be a non-empty string (≤ 256 chars)")
        label, outcome = item.get("label"), item.get("outcome")
        if label is None and outcome is None:
            raise InvalidInput(f"{where} ({request_id}) has neither a label nor an outcome")
        if label is not None and (
            (isinstance(label, float) and label != label)
            or not isinstance(label, str | int | float)
        ):
            raise InvalidInput(f"{where} ({request_id}): label must be a string or a number")
        if outcome is not None and not isinstance(outcome, str):
            raise InvalidInput(f"{where} ({request_id}): outcome must be a string")
        checked.append(
            {
                "request_id": request_id,
                "time_ms": _item_time(item.get("time"), where),
                "label": label,
                "outcome": outcome,
                "actor": actor,
                "source": source,
            }
        )
    return checked


class FeedbackLog:
    """Durable feedback appends for a long-running process (the server's ``/v1/feedback``);
    one-off writers call :func:`record_feedback`, which opens and closes one."""

    def __init__(
        self,
        root_uri: str | None = None,
        *,
        fsync: bool | str = "always",
        wal_dir: str | Path | None = None,
        roll_interval: float = 60.0,
        compact_interval: float | None = 5.0,
        settings: Settings | None = None,
    ) -> None:
        settings = settings or get_settings()
        self.root_uri = root_uri or settings.resolved_prediction_log_uri
        self._log = TableLog(
            LogRoot(self.root_uri, s3_endpoint_url=settings.s3_endpoint_url),
            FEEDBACK,
            wal_root(settings, wal_dir),
            sync=sync_policy(fsync),
            roll_interval=roll_interval,
            roll_bytes=64 << 20,
            compact_interval=compact_interval,
        )

    def append(
        self,
        deployment: str,
        items: Iterable[Mapping[str, Any]],
        *,
        actor: str | None = None,
        source: str = "api",
    ) -> int:
        """Validate every item first (all or nothing), then log them in one write."""
        records = check_items(items, actor=actor, source=source)
        if records:
            self._log.writer(deployment).append([orjson.dumps(r) for r in records])
        return len(records)

    async def append_async(
        self,
        deployment: str,
        items: Iterable[Mapping[str, Any]],
        *,
        actor: str | None = None,
        source: str = "api",
    ) -> int:
        """:meth:`append` for an event loop (the fsync does not block it)."""
        records = check_items(items, actor=actor, source=source)
        if records:
            await self._log.writer(deployment).append_async([orjson.dumps(r) for r in records])
        return len(records)

    def compact_now(self) -> int:
        return self._log.compact(roll=True)

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def record_feedback(
    root: str | None,
    deployment: str,
    items: Iterable[Mapping[str, Any]],
    *,
    actor: str | None = None,
    source: str = "api",
    log: FeedbackLog | None = None,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> int:
    """Store feedback items ``{request_id, label?, outcome?, time?}`` for ``deployment``;
    returns how many. With ``log`` (a server's open :class:`FeedbackLog`) they go to its
    write-ahead file; otherwise straight to Parquet through a short-lived one."""
    if log is not None:
        return log.append(deployment, items, actor=actor, source=source)
    with FeedbackLog(root, wal_dir=wal_dir, compact_interval=None, settings=settings) as own:
        return own.append(deployment, items, actor=actor, source=source)


def read_feedback(
    root: str | None,
    deployment: str,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    *,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> pa.Table:
    """Every feedback event of ``deployment`` (``label`` is JSON text), oldest first."""
    settings = settings or get_settings()
    log_root = LogRoot(
        root or settings.resolved_prediction_log_uri, s3_endpoint_url=settings.s3_endpoint_url
    )
    return read_table(
        log_root,
        FEEDBACK,
        deployment,
        wal_root(settings, wal_dir),
        to_ms(since, name="since"),
        to_ms(until, name="until"),
    )


def latest_feedback(feedback: pa.Table) -> pa.Table:
    """One row per request id: the latest label, the latest outcome, who gave the label
    (``labeled_by``) and when the last event came (``feedback_time``)."""
    import polars as pl  # readers only: a server starts without it (0.15 s)

    frame = pl.from_arrow(feedback)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort("time", maintain_order=True)
    labels = (
        frame.filter(pl.col("label").is_not_null())
        .group_by("request_id", maintain_order=True)
        .agg(pl.col("label").last(), pl.col("actor").last().alias("labeled_by"))
    )
    outcomes = (
        frame.filter(pl.col("outcome").is_not_null())
        .group_by("request_id", maintain_order=True)
        .agg(pl.col("outcome").last())
    )
    times = frame.group_by("request_id", maintain_order=True).agg(
        pl.col("time").max().alias("feedback_time")
    )
    merged = times.join(labels, on="request_id", how="left").join(
        outcomes, on="request_id", how="left"
    )
    return merged.select("request_id", "label", "outcome", "labeled_by", "feedback_time").to_arrow()


def join_feedback(
    root: str | None,
    deployment: str,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    *,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> pa.Table:
    """Predictions in [since, until) with their latest feedback (null where none came).
    Feedback is read whatever its time: labels may come long after the answer."""
    predictions = read_predictions(
        root, deployment, since, until, wal_dir=wal_dir, settings=settings
    )
    latest = latest_feedback(read_feedback(root, deployment, wal_dir=wal_dir, settings=settings))
    import polars as pl

    left = pl.from_arrow(predictions)
    right = pl.from_arrow(latest)
    assert isinstance(left, pl.DataFrame)
    assert isinstance(right, pl.DataFrame)
    return left.join(right, on="request_id", how="left", maintain_order="left").to_arrow()
