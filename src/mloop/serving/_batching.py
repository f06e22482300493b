"""Adaptive micro-batching: concurrent requests to one model share one vectorized call.

Requests queue per model. One drain task takes what is queued — up to ``max_batch_size``
rows — concatenates it, runs the model once in a worker thread and hands each request its
own rows of the answer. While that call runs, new requests queue up, so under load
batches form by themselves; when the queue is empty a lone request goes straight to the
model, never delayed. The one wait is adaptive: after taking a batch that is not full,
the drain waits (at most ``max_batch_wait_ms``) only while the server reports requests
still *arriving* for this deployment (read and decoded but not yet queued), since those
are about to join.

A request larger than ``max_batch_size`` rows runs alone, unsplit. A lone request of at
most ``inline_rows`` rows that cannot share a batch (nothing queued, no batch running, and
either ``alone()`` — the server has no other request in flight — or the request fills a
batch by itself) is predicted
on the event loop itself: for a small model call the hop to a worker thread and back costs
more than the call. Under load the batches go to the worker thread, so the model runs
while the loop parses the next requests.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.serving._validation import ModelInput

Outputs = dict[str, np.ndarray[Any, Any]]
PredictFn = Callable[[ModelInput, bool], Outputs]
"""``(batch, want_probabilities) -> {output name: array with one entry per row}``."""


@dataclass(slots=True)
class _Job:
    model_input: ModelInput
    probabilities: bool
    future: asyncio.Future[Outputs] = field(repr=False)


class MicroBatcher:
    """Batches the calls to one model. Use from one event loop."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 32,
        max_batch_wait_ms: float = 2.0,
        arriving: Callable[[], int] | None = None,
        executor: Executor | None = None,
        on_batch: Callable[[int], None] | None = None,
        after_batch: Callable[[ModelInput, Outputs], None] | None = None,
        inline_rows: int = 0,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_batch_wait = max(0.0, max_batch_wait_ms) / 1000.0
        self._arriving = arriving or (lambda: 0)
        self._executor = executor
        self._on_batch = on_batch
        self._after_batch = after_batch
        self.inline_rows = inline_rows
        self._alone = alone or (lambda: self._arriving() == 0)
        self._queue: collections.deque[_Job] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def predict(self, model_input: ModelInput, probabilities: bool = False) -> Outputs:
        """This request's rows of the batched answer."""
        if (
            model_input.rows <= self.inline_rows
            and not self._queue
            and (self._drainer is None or self._drainer.done())
            and (model_input.rows >= self.max_batch_size or self._alone())
        ):
            # Nothing to batch with (alone, or too big to share a batch): no queue, no
            # task, no thread.
            return self._call(model_input, probabilities)
        loop = asyncio.get_running_loop()
        job = _Job(model_input, probabilities, loop.create_future())
        self._queue.append(job)
        if self._arrived is not None:
            self._arrived.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await job.future

    def nudge(self) -> None:
        """Tell a waiting drain that the arriving count changed (a request left without
        being queued, e.g. refused by validation), so it stops waiting for it."""
        if self._arrived is not None:
            self._arrived.set()

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            if (
                self.max_batch_wait
                and self._rows(batch) < self.max_batch_size
                and self._arriving() > 0
            ):
                await self._gather_arrivals(batch)
            await self._run(batch)

    def _take(self, batch: list[_Job] | None = None) -> list[_Job]:
        batch = [] if batch is None else batch
        rows = self._rows(batch)
        while self._queue:
            size = self._queue[0].model_input.rows
            if batch and rows + size > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            rows += size
        return batch

    async def _gather_arrivals(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_batch_wait
        self._arrived = asyncio.Event()
        try:
            while self._rows(batch) < self.max_batch_size and self._arriving() > 0:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    return
                self._take(batch)
        finally:
            self._arrived = None

    @staticmethod
    def _rows(batch: list[_Job]) -> int:
        return sum(job.model_input.rows for job in batch)

    async def _run(self, batch: list[_Job]) -> None:
        jobs = [job for job in batch if not job.future.done()]  # a cancelled caller is gone
        if not jobs:
            return
        merged = jobs[0].model_input if len(jobs) == 1 else concat([j.model_input for j in jobs])
        want = any(job.probabilities for job in jobs)
        if self._on_batch is not None:
            self._on_batch(merged.rows)
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._predict, merged, want)
            if self._after_batch is not None:
                self._after_batch(merged, outputs)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            # One request's rows may be what the model refused: retry each alone, so only
            # that caller gets the error.
            for job in jobs:
                await self._run([job])
            return
        start = 0
        for job in jobs:
            end = start + job.model_input.rows
            if not job.future.done():
                job.future.set_result(
                    outputs if len(jobs) == 1 else {k: v[start:end] for k, v in outputs.items()}
                )
            start = end

    def _call(self, batch: ModelInput, probabilities: bool) -> Outputs:
        """Predict on the event loop's thread (small batches)."""
        if self._on_batch is not None:
            self._on_batch(batch.rows)
        outputs = self._predict(batch, probabilities)
        if self._after_batch is not None:
            self._after_batch(batch, outputs)
        return outputs


def concat(inputs: list[ModelInput]) -> ModelInput:
    """Several validated inputs (same signature) as one, rows in order."""
    rows = sum(i.rows for i in inputs)
    first = inputs[0]
    if first.tensor is not None:
        return ModelInput(rows, tensor=np.concatenate([i.tensor for i in inputs]))
    assert first.columns is not None
    return ModelInput(
        rows,
        columns={
            name: np.concatenate([i.columns[name] for i in inputs])  # type: ignore[index]
            for name in first.columns
        },
    )


__all__ = ["MicroBatcher", "Outputs", "PredictFn", "concat"]
