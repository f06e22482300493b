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
import fcntl
import logging
import multiprocessing
import os
import pickle
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
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
    """The server's side: queue mirrors, count what comes back, stop cleanly.

    Create it on the server's event loop. Mirrors go to the child through a pipe that the
    loop writes without blocking, outcomes come back through one the loop reads when they
    arrive: no helper threads, whose pickling and wake-ups would take the interpreter lock
    from the answers (``multiprocessing.Queue`` has a feeder thread; with it, a shadow that
    did nothing at all still cost the primary 16 % of its throughput).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        log_predictions: bool,
        log_fsync: str,
        observe: Callable[[Outcome], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        mirrors_in, mirrors_out = context.Pipe(duplex=False)
        outcomes_in, outcomes_out = context.Pipe(duplex=False)
        self._observe = observe
        self._pending = 0
        self._outbox: list[Mirror] = []
        self._unsent = bytearray()
        self._received = bytearray()
        self._checked, self._running = time.monotonic(), True
        self.process = context.Process(
            target=_work,
            args=(mirrors_in, outcomes_out, settings, log_predictions, log_fsync),
            name="mloop-shadows",
            daemon=True,
        )
        self.process.start()
        mirrors_in.close()  # the child's ends: the child holds its own copies now
        outcomes_out.close()
        self._to_child, self._from_child = mirrors_out, outcomes_in
        _widen_pipe(self._to_child.fileno())
        os.set_blocking(self._to_child.fileno(), False)
        os.set_blocking(self._from_child.fileno(), False)
        self._loop.add_reader(self._from_child.fileno(), self._read)

    @property
    def pending(self) -> int:
        """Mirrors queued or being answered."""
        return self._pending

    def mirror(self, mirror: Mirror, capacity: int) -> bool:
        """Queue ``mirror``; False (skipped) when ``capacity`` mirrors are still pending.

        The mirrors of one loop iteration are sent together (one message to pickle and
        write instead of one per request)."""
        if self._pending >= capacity or not self._alive():
            return False
        self._pending += 1
        self._outbox.append(mirror)
        if len(self._outbox) == 1:
            self._loop.call_soon(self._send)
        return True

    def _send(self) -> None:
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        self._unsent += _frame(pickle.dumps(outbox, protocol=pickle.HIGHEST_PROTOCOL))
        self._flush()

    def _flush(self) -> None:
        """Write what the pipe takes now; the loop calls again when it can take more."""
        fd = self._to_child.fileno()
        try:
            while self._unsent:
                del self._unsent[: os.write(fd, self._unsent)]
        except BlockingIOError:
            self._loop.add_writer(fd, self._flush)
            return
        except OSError:  # the child is gone: _alive() reports it and mirrors are skipped
            self._unsent.clear()
        self._loop.remove_writer(fd)

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
        try:
            while chunk := os.read(self._from_child.fileno(), 1 << 16):
                self._received += chunk
        except BlockingIOError:
            pass
        else:  # end of file: the child exited
            self._loop.remove_reader(self._from_child.fileno())
        self._count(_unframe(self._received))

    def _count(self, messages: list[bytes]) -> None:
        for message in messages:
            outcomes: list[Outcome] = pickle.loads(message)
            self._pending -= len(outcomes)
            for outcome in outcomes:
                try:
                    self._observe(outcome)
                except Exception:  # metrics must never stop the server
                    log.warning("could not count a shadow answer", exc_info=True)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Let the child answer and log what is queued, then stop it."""
        self._send()
        self._loop.remove_writer(self._to_child.fileno())
        self._loop.remove_reader(self._from_child.fileno())
        unsent, self._unsent = bytes(self._unsent) + _frame(pickle.dumps(None)), bytearray()
        rest = await self._loop.run_in_executor(None, self._finish, unsent, timeout)
        self._received += rest
        self._count(_unframe(self._received))
        self._to_child.close()
        self._from_child.close()

    def _finish(self, unsent: bytes, timeout: float) -> bytes:
        """Off the loop: hand over the last mirrors and the sentinel, wait for the child,
        and return the outcomes it sent meanwhile."""
        os.set_blocking(self._to_child.fileno(), True)
        os.set_blocking(self._from_child.fileno(), True)
        received = bytearray()
        drain = threading.Thread(target=_read_all, args=(self._from_child.fileno(), received))
        drain.start()  # the child may block writing outcomes until they are read
        with contextlib.suppress(OSError):  # a child that died takes nothing more
            _write_all(self._to_child.fileno(), unsent)
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("the shadow process did not stop in %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)
        drain.join(5)
        return bytes(received)


def _frame(payload: bytes) -> bytes:
    """``multiprocessing.Connection``'s framing, which the child reads with ``recv_bytes``."""
    return struct.pack("!i", len(payload)) + payload


def _unframe(buffer: bytearray) -> list[bytes]:
    """The whole messages at the start of ``buffer``, removed from it."""
    messages, pos = [], 0
    while len(buffer) - pos >= 4:
        (size,) = struct.unpack_from("!i", buffer, pos)
        if len(buffer) - pos - 4 < size:
            break
        messages.append(bytes(buffer[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    del buffer[:pos]
    return messages


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, into: bytearray) -> None:
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 1 << 16):
            into += chunk


def _widen_pipe(fd: int) -> None:
    """Let the pipe to the child hold a full backlog of mirrors (Linux; 64 KiB otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)


def _work(
    mirrors: Connection,
    outcomes: Connection,
    settings: Settings,
    log_predictions: bool,
    log_fsync: str,
) -> None:
    """The child: answer mirrors in batches until the sentinel arrives."""
    from mloop.serving._priority import lowest_priority

    lowest_priority()
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
            if not mirrors.poll(1.0):
                if parent is not None and not parent.is_alive():
                    return  # the server was killed: nobody will send the sentinel
                continue
            work: list[Mirror] = []
            done = False
            while mirrors.poll(0):
                message: list[Mirror] | None = pickle.loads(mirrors.recv_bytes())
                if message is None:
                    done = True
                    break
                work.extend(message)
                if len(work) >= BATCH_LIMIT:
                    break
            if work:
                outcomes.send_bytes(pickle.dumps(_answer(work, models, prediction_log)))
            if done:
                return
    except (EOFError, OSError):
        return  # the server's end closed
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
