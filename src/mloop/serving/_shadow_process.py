"""Shadow models answer in a child process at the lowest CPU priority.

A shadow's answer is logged and never returned, so it must not cost the primary anything
it could notice. In the server's own process it does: the shadow's validation, prediction
and log record take the same interpreter lock as the answers, and at full load the
primary's p99 doubled (bench/serving.py: 6.5 → 14.6 ms at 16 connections). Here the
server only queues a copy of the request's features; a child process, ``nice 19``, loads
the shadow versions (digests verified, like every load), predicts queued mirrors in
batches (one ``predict`` per model for everything that queued meanwhile) and writes their
records to the prediction log with one append. The operating system then gives it only the
CPU the answers leave idle.

The backlog is bounded: past ``capacity`` mirrors not yet answered, a mirror is skipped
and counted (``role="shadow", status="503"`` in ``/metrics``) instead of queueing without
end. Outcomes come back to the server, which counts them in ``/metrics`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.config import Settings

log = logging.getLogger("mloop.serving")
BATCH_LIMIT = 256
"""Mirrors answered together at most (one predict per model, one log append)."""


@dataclass
class Mirror:
    """One request's features for one shadow version, and what its record needs."""

    deployment: str
    model: str
    version: int
    uri: str
    arrays: dict[str, np.ndarray[Any, Any]]
    probabilities: bool
    request_id: str
    time_ms: int
    decisions: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None


Outcome = tuple[str, str, int, float, int]
"""(deployment, model, version, seconds, HTTP-like status) of one mirror."""


class ShadowProcess:
    """The server's side: queue mirrors, count what comes back, stop cleanly."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_predictions: bool,
        log_fsync: str,
        observe: Callable[[Outcome], None],
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._mirrors: Any = context.Queue()
        self._outcomes: Any = context.Queue()
        self._observe = observe
        self._pending = 0
        self._lock = threading.Lock()
        self._outbox: list[Mirror] = []
        self._checked, self._running = time.monotonic(), True
        self.process = context.Process(
            target=_work,
            args=(self._mirrors, self._outcomes, settings, log_predictions, log_fsync),
            name="mloop-shadows",
            daemon=True,
        )
        self.process.start()
        self._reader = threading.Thread(target=self._read, name="mloop-shadow-outcomes")
        self._reader.daemon = True
        self._reader.start()

    @property
    def pending(self) -> int:
        """Mirrors queued or being answered."""
        return self._pending

    def mirror(self, mirror: Mirror, capacity: int) -> bool:
        """Queue ``mirror``; False (skipped) when ``capacity`` mirrors are still pending.

        On an event loop the mirrors of one loop iteration are sent together (one message
        to pickle and write instead of one per request)."""
        with self._lock:
            if self._pending >= capacity or not self._alive():
                return False
            self._pending += 1
        self._outbox.append(mirror)
        if len(self._outbox) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._send)
            except RuntimeError:  # no loop here: send now
                self._send()
        return True

    def _send(self) -> None:
        if self._outbox:
            outbox, self._outbox = self._outbox, []
            self._mirrors.put(outbox)

    def _alive(self) -> bool:
        """Whether the child runs, asked of the OS at most once a second (a system call)."""
        now = time.monotonic()
        if now - self._checked > 1.0:
            running = self.process.is_alive()
            if self._running and not running:
                log.warning(
                    "the shadow process exited (code %s); mirrors are skipped and counted "
                    "(role=shadow, status=503) until the server restarts",
                    self.process.exitcode,
                )
            self._checked, self._running = now, running
        return self._running

    def _read(self) -> None:
        while True:
            outcomes: list[Outcome] | None = self._outcomes.get()
            if outcomes is None:
                return
            with self._lock:
                self._pending -= len(outcomes)
            for outcome in outcomes:
                try:
                    self._observe(outcome)
                except Exception:  # metrics must never stop the reader
                    log.warning("could not count a shadow answer", exc_info=True)

    def close(self, timeout: float = 10.0) -> None:
        """Let the child answer and log what is queued, then stop it."""
        self._send()
        self._mirrors.put(None)
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("the shadow process did not stop in %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)
        self._outcomes.put(None)
        self._reader.join(5)
        self._mirrors.close()
        self._outcomes.close()


def _work(
    mirrors: Any, outcomes: Any, settings: Settings, log_predictions: bool, log_fsync: str
) -> None:
    """The child: answer mirrors in batches until the sentinel arrives."""
    with contextlib.suppress(OSError):  # a platform without nice: run at normal priority
        os.nice(19)
    from mloop.serving._predlog import PredictionLog

    prediction_log = (
        PredictionLog(settings=settings, fsync=log_fsync, compact_interval=None)
        if log_predictions
        else None
    )
    models = _Models()
    parent = multiprocessing.parent_process()
    try:
        while True:
            try:
                message: list[Mirror] | None = mirrors.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # the server was killed: nobody will send the sentinel
                continue
            work: list[Mirror] = []
            done = message is None
            while message is not None:
                work.extend(message)
                if len(work) >= BATCH_LIMIT:
                    break
                try:
                    message = mirrors.get_nowait()
                except queue.Empty:
                    break
                done = message is None
            if work:
                outcomes.put(_answer(work, models, prediction_log))
            if done:
                return
    finally:
        if prediction_log is not None:
            prediction_log.close()


class _Models:
    """The shadow versions loaded so far, by URI (a few: old ones are dropped)."""

    def __init__(self, keep: int = 4) -> None:
        self._loaded: dict[str, Any] = {}
        self._keep = keep

    def get(self, mirror: Mirror) -> Any:
        from mloop.serving._served import ServedModel

        served = self._loaded.pop(mirror.uri, None)
        if served is None:
            from mloop.models import load_model

            served = ServedModel(
                mirror.model, mirror.version, "shadow", mirror.uri, load_model(mirror.uri)
            )
        self._loaded[mirror.uri] = served  # most recently used last
        while len(self._loaded) > self._keep:
            del self._loaded[next(iter(self._loaded))]
        return served


def _answer(work: list[Mirror], models: _Models, prediction_log: Any) -> list[Outcome]:
    """Predict every mirror (one call per model and input shape), log them in one append."""
    from mloop.serving._predlog import PredictionRecord, jsonable_arrays

    groups: dict[tuple[str, bool], list[Mirror]] = {}
    for mirror in work:
        groups.setdefault((mirror.uri, mirror.probabilities), []).append(mirror)
    records: list[PredictionRecord] = []
    results: list[Outcome] = []
    for (_uri, probabilities), mirrors in groups.items():
        try:
            served = models.get(mirrors[0])  # loading (once) is not the shadow's latency
            started = time.perf_counter()
            answers = _predict(served, mirrors, probabilities)
        except Exception as exc:
            started = time.perf_counter()
            answers = [exc] * len(mirrors)
        seconds = time.perf_counter() - started  # the batched predict these mirrors shared
        for mirror, answer in zip(mirrors, answers, strict=True):
            status, outputs, error = _status(answer)
            results.append((mirror.deployment, mirror.model, mirror.version, seconds, status))
            records.append(
                PredictionRecord(
                    request_id=mirror.request_id, time_ms=mirror.time_ms,
                    deployment=mirror.deployment, model=mirror.model, version=mirror.version,
                    role="shadow", inputs=jsonable_arrays(mirror.arrays),
                    outputs=None if outputs is None else jsonable_arrays(outputs),
                    latency_ms=seconds * 1000, guards=mirror.decisions,
                    trace_id=mirror.trace_id, status=status, error=error,
                )
            )  # fmt: skip
    if prediction_log is not None:
        try:
            prediction_log.append_many(records)
        except Exception:
            log.warning("could not log %d shadow answers", len(records), exc_info=True)
    return results


def _predict(
    served: Any, mirrors: list[Mirror], probabilities: bool
) -> list[Mapping[str, np.ndarray[Any, Any]] | Exception]:
    """Each mirror's outputs: one ``predict`` for all of them when they are tensors of one
    width, else one per mirror (an error stays with its own mirror)."""
    from mloop.serving._validation import ModelInput, validate

    inputs: list[ModelInput | Exception] = []
    for mirror in mirrors:
        try:
            inputs.append(validate(served.signature, mirror.arrays))
        except Exception as exc:
            inputs.append(exc)
    valid = [x for x in inputs if isinstance(x, ModelInput)]
    tensors = [x.tensor for x in valid if x.tensor is not None]
    if len(valid) > 1 and len(tensors) == len(valid) and len({t.shape[1:] for t in tensors}) == 1:
        joined = served.run(
            ModelInput(sum(x.rows for x in valid), np.concatenate(tensors)), probabilities
        )
        answers: list[Mapping[str, np.ndarray[Any, Any]] | Exception] = []
        start = 0
        for item in inputs:
            if isinstance(item, Exception):
                answers.append(item)
                continue
            answers.append({k: v[start : start + item.rows] for k, v in joined.items()})
            start += item.rows
        return answers
    out: list[Mapping[str, np.ndarray[Any, Any]] | Exception] = []
    for item in inputs:
        if isinstance(item, Exception):
            out.append(item)
            continue
        try:
            out.append(served.run(item, probabilities))
        except Exception as exc:
            out.append(exc)
    return out


def _status(answer: Any) -> tuple[int, Any, str | None]:
    from mloop.errors import MloopError

    if not isinstance(answer, Exception):
        return 200, answer, None
    if isinstance(answer, MloopError):
        return answer.http_status, None, answer.code
    return 500, None, "INTERNAL"
