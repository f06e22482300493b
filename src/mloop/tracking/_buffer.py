"""Buffered writes: the reason ``log_metric`` costs microseconds, not milliseconds.

Points, params and tags are kept in memory per run and written in one batch per run by a
background thread every ``interval`` seconds, when a run ends, when the buffer grows large,
on an exception leaving ``start_run``, and at interpreter exit. A ``kill -9`` can therefore
lose at most the points logged since the last flush — one interval, 1 s by default.

A failed background flush keeps its batch and is raised by the next ``flush()`` (and so by
``end_run``), so an error is never silently dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.tracking._backend import TrackingBackend
from mloop.tracking._entities import Metric, Param, RunStatus, RunTag

MAX_PENDING_POINTS = 50_000


@dataclass
class _Pending:
    metrics: list[Metric] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class WriteBuffer:
    """Per-run pending writes with a background flusher thread."""

    def __init__(self, backend: TrackingBackend, interval: float) -> None:
        self._backend = backend
        self._interval = interval
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._logged_params: dict[str, dict[str, str]] = {}
        self._points = 0
        self._error: BaseException | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add_metric(self, run_id: str, metric: Metric) -> None:
        with self._lock:
            pending = self._pending.get(run_id)
            if pending is None:
                pending = self._pending[run_id] = _Pending()
            pending.metrics.append(metric)
            self._points += 1
            full = self._points >= MAX_PENDING_POINTS
        self._ensure_thread()
        if full:
            self._wake.set()

    def add_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        with self._lock:
            self._pending.setdefault(run_id, _Pending()).metrics.extend(metrics)
            self._points += len(metrics)
            full = self._points >= MAX_PENDING_POINTS
        self._ensure_thread()
        if full:
            self._wake.set()

    def add_params(self, run_id: str, params: dict[str, str]) -> None:
        """Queue params, refusing at once a value that contradicts one logged before."""
        with self._lock:
            logged = self._logged_params.setdefault(run_id, {})
            for key, value in params.items():
                old = logged.get(key)
                if old is not None and old != value:
                    raise Conflict(
                        f"param {key!r} of run {run_id} is already {old!r} and cannot change to "
                        f"{value!r}; params are immutable — use a metric or a tag for values "
                        "that change"
                    )
            logged.update(params)
            self._pending.setdefault(run_id, _Pending()).params.update(params)
        self._ensure_thread()

    def add_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._pending.setdefault(run_id, _Pending()).tags.update(tags)
        self._ensure_thread()

    def flush(self, run_id: str | None = None) -> None:
        """Write what is pending (for one run, or all) now; raise an earlier flush's error."""
        with self._flush_lock:
            with self._lock:
                if run_id is None:
                    batches, self._pending = self._pending, {}
                else:
                    one = self._pending.pop(run_id, None)
                    batches = {run_id: one} if one is not None else {}
                self._points -= sum(len(b.metrics) for b in batches.values())
                error, self._error = self._error, None
            for index, (rid, batch) in enumerate(batches.items()):
                try:
                    self._backend.log_batch(
                        rid,
                        batch.metrics,
                        [Param(k, v) for k, v in batch.params.items()],
                        [RunTag(k, v) for k, v in batch.tags.items()],
                    )
                except BaseException as exc:
                    # A refused batch (bad input, unknown run) is dropped and reported; one
                    # that failed for the store's sake is kept to be tried again.
                    keep_from = (
                        index + 1 if isinstance(exc, InvalidInput | NotFound | Conflict) else index
                    )
                    self._requeue(list(batches.items())[keep_from:])
                    raise
            if error is not None:
                raise error

    def finish(self, run_id: str, status: RunStatus, end_time: int) -> None:
        """Write a run's pending batch and end the run in one store transaction."""
        with self._flush_lock:
            with self._lock:
                batch = self._pending.pop(run_id, None) or _Pending()
                self._points -= len(batch.metrics)
                self._logged_params.pop(run_id, None)
                error, self._error = self._error, None
            self._backend.finish_run(
                run_id,
                status,
                end_time,
                batch.metrics,
                [Param(k, v) for k, v in batch.params.items()],
                [RunTag(k, v) for k, v in batch.tags.items()],
            )
            if error is not None:
                raise error

    def _requeue(self, batches: list[tuple[str, _Pending]]) -> None:
        with self._lock:
            for rid, batch in batches:
                pending = self._pending.setdefault(rid, _Pending())
                pending.metrics[:0] = batch.metrics
                pending.params = {**batch.params, **pending.params}
                pending.tags = {**batch.tags, **pending.tags}
                self._points += len(batch.metrics)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopped:
                    self._thread = threading.Thread(
                        target=self._run, name="mloop-flush", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # kept and raised by the next flush in user code
                with self._lock:
                    self._error = exc

    def close(self) -> None:
        """Stop the flusher thread and write everything still pending."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
