"""The prediction log's compaction in a child process at the lowest CPU priority.

Compaction reads closed write-ahead segments, decodes every record's JSON and writes
Parquet: for 1,000-row requests that is tens of megabytes a second of parsing, and in a
thread of the server it held the interpreter lock long enough to stall answers (p99 of
0.6 s at 16 connections in bench/serving.py). Segments are claimed by renaming, so any
process may compact them; here a ``nice 19`` child does, and the server's own thread only
closes segments as they age.
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from mloop.config import Settings

log = logging.getLogger("mloop.serving")


class CompactorProcess:
    """Start the child; :meth:`close` lets it finish its round and stop."""

    def __init__(self, settings: Settings, root_uri: str, wal_dir: str, interval: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop: Any = context.Event()
        self.process = context.Process(
            target=_work,
            args=(settings, root_uri, wal_dir, interval, self._stop),
            name="mloop-predictions-compactor",
            daemon=True,
        )
        self.process.start()

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("the compactor process did not stop in %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)


def _work(settings: Settings, root_uri: str, wal_dir: str, interval: float, stop: Any) -> None:
    from mloop.serving._priority import lowest_priority

    lowest_priority()
    from mloop.serving._predlog import PredictionLog

    parent = multiprocessing.parent_process()
    compactor = PredictionLog(root_uri, wal_dir=wal_dir, compact_interval=None, settings=settings)
    try:
        while True:
            try:
                compactor.compact_closed()
            except Exception:  # the segments stay on disk; the next round retries
                log.exception("prediction log compaction failed; will retry")
            if stop.wait(interval) or (parent is not None and not parent.is_alive()):
                return
    finally:
        compactor.close(compact=False)
