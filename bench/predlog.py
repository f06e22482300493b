"""Prediction-log benchmark: mloop's durable append beside what users would otherwise
write by hand, on the same records, in one run.

    python bench/predlog.py             # ~1 minute on 2 cores

The record is one iris request (4 floats in, one label and 3 probabilities out, guards,
trace id). Compared, each durable on return unless noted:

* mloop ``PredictionLog.append``, fsync "always" (one fsync per request) and "off"
  (kernel only: survives kill -9, not a power cut), one thread;
* mloop ``append_async`` with 16 concurrent requests on one event loop (group commit: the
  appends waiting on one fsync share it) — the shape of an ASGI server under load;
* SQLite (stdlib) in WAL mode with ``synchronous=FULL``, one INSERT of the JSON record
  and a COMMIT per request — the durable table most people would reach for;
* a JSON-lines file through ``logging.FileHandler`` (flushes, never fsyncs: not durable
  against a power cut, comparable to mloop's "off").

Also: the cost of compacting the log to Parquet and of reading it back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mloop.config import get_settings
from mloop.serving._predlog import PredictionLog, PredictionRecord, read_predictions

N_SYNC = 2000
N_FAST = 20000


def record(n: int) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{n}",
        time_ms=int(time.time() * 1000),
        deployment="iris",
        model="iris",
        version=3,
        role="primary",
        inputs={"x": [[5.1, 3.5, 1.4, 0.2]]},
        outputs={"label": ["setosa"], "probabilities": [[0.97, 0.02, 0.01]]},
        latency_ms=0.8,
        guards={"atypical": 0.12, "rate_limit": "ok"},
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )


def per_second(n: int, fn: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def mloop_sync(folder: Path, fsync: str, n: int) -> float:
    settings = get_settings(home=folder / "home")
    with PredictionLog(str(folder / "log"), fsync=fsync, settings=settings) as log:
        return per_second(n, lambda i: log.append(record(i)))


def mloop_async(folder: Path, n: int, concurrency: int = 16) -> float:
    settings = get_settings(home=folder / "home")
    log = PredictionLog(str(folder / "log"), settings=settings)

    async def worker(w: int) -> None:
        for i in range(w, n, concurrency):
            await log.append_async(record(i))

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return n / (time.perf_counter() - start)

    try:
        return asyncio.run(main())
    finally:
        log.close()


def sqlite_full(folder: Path, n: int) -> float:
    db = sqlite3.connect(folder / "log.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE predictions (request_id TEXT, time_ms INTEGER, record TEXT)")

    def insert(i: int) -> None:
        r = record(i)
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO predictions VALUES (?, ?, ?)",
            (r.request_id, r.time_ms, json.dumps(_as_dict(r))),
        )
        db.execute("COMMIT")

    try:
        return per_second(n, insert)
    finally:
        db.close()


def _as_dict(r: PredictionRecord) -> dict[str, object]:
    return {name: getattr(r, name) for name in r.__slots__}


def logging_jsonl(folder: Path, n: int) -> float:
    logger = logging.getLogger("bench.predictions")
    logger.propagate = False
    handler = logging.FileHandler(folder / "log.jsonl")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return per_second(n, lambda i: logger.info(json.dumps(_as_dict(record(i)))))
    finally:
        logger.removeHandler(handler)
        handler.close()


def main() -> None:
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        base = Path(tmp)
        results: dict[str, float] = {}
        runs: list[tuple[str, Callable[[Path], float]]] = [
            ("mloop append, fsync always", lambda f: mloop_sync(f, "always", N_SYNC)),
            ("mloop append_async x16, group commit", lambda f: mloop_async(f, N_SYNC * 4)),
            ("SQLite WAL synchronous=FULL", lambda f: sqlite_full(f, N_SYNC)),
            ("mloop append, fsync off", lambda f: mloop_sync(f, "off", N_FAST)),
            ("logging.FileHandler JSON lines", lambda f: logging_jsonl(f, N_FAST)),
        ]
        for name, run in runs:
            rates = []
            for attempt in range(3):
                folder = base / f"{len(results)}-{attempt}"
                folder.mkdir()
                rates.append(run(folder))
            results[name] = statistics.median(rates)
            print(
                f"{name:40s} {results[name]:10,.0f} records/s  ({1e6 / results[name]:7.1f} µs each)"
            )

        print()
        durable = results["SQLite WAL synchronous=FULL"]
        print(
            f"durable, one request at a time:  mloop/SQLite = {results['mloop append, fsync always'] / durable:.2f}x"
        )
        print(
            f"durable, 16 concurrent requests: mloop/SQLite = {results['mloop append_async x16, group commit'] / durable:.2f}x"
        )
        print(
            f"not fsynced:                     mloop/logging = {results['mloop append, fsync off'] / results['logging.FileHandler JSON lines']:.2f}x"
        )

        folder = base / "compact"
        folder.mkdir()
        settings = get_settings(home=folder / "home")
        log = PredictionLog(
            str(folder / "log"), fsync="off", compact_interval=None, settings=settings
        )
        for i in range(50_000):
            log.append(record(i))
        start = time.perf_counter()
        moved = log.compact_now()
        compact_s = time.perf_counter() - start
        log.close()
        start = time.perf_counter()
        table = read_predictions(str(folder / "log"), "iris", settings=settings)
        read_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (folder / "log").rglob("*.parquet"))
        print(
            f"\ncompaction: {moved:,} records to Parquet in {compact_s:.2f} s "
            f"({moved / compact_s:,.0f}/s, {size / moved:.0f} bytes/record); "
            f"read back {table.num_rows:,} in {read_s:.2f} s"
        )


if __name__ == "__main__":
    main()
