"""Micro-batching: batch sizes under concurrency, without timing anything."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from mloop.serving._batching import MicroBatcher, concat
from mloop.serving._validation import ModelInput


class GatedModel:
    """Doubles its input; the first call blocks until released, so callers queue."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, batch: ModelInput, probabilities: bool) -> dict[str, Any]:
        assert batch.tensor is not None
        self.batches.append(batch.rows)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_on is not None and (batch.tensor == self.fail_on).any():
            raise ValueError("the model refuses this value")
        out = {"predictions": batch.tensor[:, 0] * 2}
        if probabilities:
            out["probabilities"] = np.ones((batch.rows, 2))
        return out


def rows(*values: float) -> ModelInput:
    return ModelInput(len(values), tensor=np.array([[v] for v in values]))


async def _wait_entered(model: GatedModel) -> None:
    while not model.entered.is_set():
        await asyncio.sleep(0.001)


async def _queued(batcher: MicroBatcher, count: int) -> None:
    while len(batcher._queue) < count:
        await asyncio.sleep(0)


@pytest.mark.parametrize(("max_batch_size", "expected"), [(32, [1, 4]), (3, [1, 3, 1])])
def test_requests_queued_behind_a_running_batch_share_the_next_call(
    max_batch_size: int, expected: list[int]
) -> None:
    async def scenario() -> list[Any]:
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch_size=max_batch_size, max_batch_wait_ms=0)
        first = asyncio.ensure_future(batcher.predict(rows(0.0)))
        await _wait_entered(model)
        rest = [asyncio.ensure_future(batcher.predict(rows(float(i)))) for i in range(1, 5)]
        await _queued(batcher, 4)
        model.release.set()
        results = await asyncio.gather(first, *rest)
        assert model.batches == expected
        return results

    results = asyncio.run(scenario())
    assert [r["predictions"].tolist() for r in results] == [[0.0], [2.0], [4.0], [6.0], [8.0]]


def test_a_lone_request_is_not_delayed_by_the_wait_bound() -> None:
    """With nothing arriving, a long wait bound is never waited: the call returns at once
    (a 10-minute bound would hang this test otherwise)."""

    async def scenario() -> None:
        model = GatedModel()
        model.release.set()
        batcher = MicroBatcher(model, max_batch_wait_ms=600_000, arriving=lambda: 0)
        for value in (1.0, 2.0, 3.0):
            out = await batcher.predict(rows(value))
            assert out["predictions"].tolist() == [value * 2]
        assert model.batches == [1, 1, 1]

    asyncio.run(scenario())


def test_the_drain_waits_for_requests_still_arriving() -> None:
    async def scenario() -> None:
        model = GatedModel()
        model.release.set()
        arriving = [2]
        batcher = MicroBatcher(
            model, max_batch_size=3, max_batch_wait_ms=600_000, arriving=lambda: arriving[0]
        )
        first = asyncio.ensure_future(batcher.predict(rows(1.0)))
        while batcher._arrived is None:  # the drain took the first request and waits
            await asyncio.sleep(0)
        arriving[0] = 1
        second = asyncio.ensure_future(batcher.predict(rows(2.0)))
        await _queued_then_taken(batcher, second)
        assert not first.done()  # still waiting: one more is arriving
        arriving[0] = 0
        third = asyncio.ensure_future(batcher.predict(rows(3.0)))
        await asyncio.gather(first, second, third)
        assert model.batches == [3]  # full: the wait ended without the bound

    asyncio.run(scenario())


async def _queued_then_taken(batcher: MicroBatcher, job: asyncio.Future[Any]) -> None:
    while not batcher._queue:
        await asyncio.sleep(0)
    while batcher._queue:
        await asyncio.sleep(0)


def test_a_drain_stops_waiting_when_an_arriving_request_leaves() -> None:
    async def scenario() -> None:
        model = GatedModel()
        model.release.set()
        arriving = [1]
        batcher = MicroBatcher(model, max_batch_wait_ms=600_000, arriving=lambda: arriving[0])
        first = asyncio.ensure_future(batcher.predict(rows(1.0)))
        while batcher._arrived is None:
            await asyncio.sleep(0)
        arriving[0] = 0  # refused by validation: it will never be queued
        batcher.nudge()
        assert (await first)["predictions"].tolist() == [2.0]
        assert model.batches == [1]

    asyncio.run(scenario())


def test_an_oversized_request_runs_alone_and_whole() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch_size=2, max_batch_wait_ms=0)
        first = asyncio.ensure_future(batcher.predict(rows(0.0)))
        await _wait_entered(model)
        big = asyncio.ensure_future(batcher.predict(rows(1.0, 2.0, 3.0)))
        small = asyncio.ensure_future(batcher.predict(rows(4.0)))
        await _queued(batcher, 2)
        model.release.set()
        await asyncio.gather(first, big, small)
        assert model.batches == [1, 3, 1]
        assert big.result()["predictions"].tolist() == [2.0, 4.0, 6.0]

    asyncio.run(scenario())


def test_probabilities_are_computed_when_one_caller_wants_them() -> None:
    async def scenario() -> None:
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch_wait_ms=0)
        first = asyncio.ensure_future(batcher.predict(rows(0.0)))
        await _wait_entered(model)
        plain = asyncio.ensure_future(batcher.predict(rows(1.0)))
        wants = asyncio.ensure_future(batcher.predict(rows(2.0), probabilities=True))
        await _queued(batcher, 2)
        model.release.set()
        await asyncio.gather(first, plain, wants)
        assert wants.result()["probabilities"].shape == (1, 2)
        assert model.batches == [1, 2]

    asyncio.run(scenario())


def test_a_failing_row_fails_only_its_own_request() -> None:
    async def scenario() -> None:
        model = GatedModel(fail_on=13.0)
        batcher = MicroBatcher(model, max_batch_wait_ms=0)
        first = asyncio.ensure_future(batcher.predict(rows(0.0)))
        await _wait_entered(model)
        good = asyncio.ensure_future(batcher.predict(rows(1.0)))
        bad = asyncio.ensure_future(batcher.predict(rows(13.0)))
        await _queued(batcher, 2)
        model.release.set()
        await first
        assert (await good)["predictions"].tolist() == [2.0]
        with pytest.raises(ValueError, match="refuses"):
            await bad
        assert model.batches == [1, 2, 1, 1]

    asyncio.run(scenario())


def test_concat_columns_keeps_row_order() -> None:
    a = ModelInput(1, columns={"x": np.array([1]), "y": np.array(["a"], dtype=object)})
    b = ModelInput(2, columns={"x": np.array([2, 3]), "y": np.array(["b", "c"], dtype=object)})
    merged = concat([a, b])
    assert merged.rows == 3
    assert merged.columns is not None
    assert merged.columns["x"].tolist() == [1, 2, 3]
    assert merged.columns["y"].tolist() == ["a", "b", "c"]


def test_small_batches_run_on_the_loop_thread_large_ones_in_a_worker() -> None:
    threads: list[int] = []

    def model(batch: ModelInput, probabilities: bool) -> dict[str, Any]:
        threads.append(threading.get_ident())
        assert batch.tensor is not None
        return {"predictions": batch.tensor[:, 0]}

    async def scenario() -> int:
        batcher = MicroBatcher(model, inline_rows=2)
        await batcher.predict(rows(1.0))
        await batcher.predict(rows(1.0, 2.0, 3.0))
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert threads[0] == loop_thread
    assert threads[1] != loop_thread


def test_a_request_filling_a_batch_alone_runs_inline_even_under_load() -> None:
    threads: list[int] = []

    def model(batch: ModelInput, probabilities: bool) -> dict[str, Any]:
        threads.append(threading.get_ident())
        assert batch.tensor is not None
        return {"predictions": batch.tensor[:, 0]}

    async def scenario() -> int:
        batcher = MicroBatcher(model, max_batch_size=2, inline_rows=8, alone=lambda: False)
        await batcher.predict(rows(1.0, 2.0))  # fills a batch: nothing to wait for
        await batcher.predict(rows(1.0))  # others in flight: queued for a batch
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert threads[0] == loop_thread
    assert threads[1] != loop_thread


def test_a_request_is_alone_only_when_the_loop_shows_nothing_else_ready() -> None:
    """The server's ``alone()``: under asyncio's loop it reads the ready queue; a loop that
    hides it (uvloop) must never report alone, or nothing would ever be batched."""
    import types

    import uvloop

    from mloop.serving._state import ServingState

    one_request = types.SimpleNamespace(in_flight=1, arriving=0)

    async def alone() -> bool:
        return ServingState.alone(one_request)  # type: ignore[arg-type]

    async def with_other_work_ready() -> bool:
        asyncio.get_running_loop().call_soon(lambda: None)
        return ServingState.alone(one_request)  # type: ignore[arg-type]

    assert asyncio.run(alone()) is True
    assert asyncio.run(with_other_work_ready()) is False
    assert uvloop.run(alone()) is False
    busy = types.SimpleNamespace(in_flight=2, arriving=0)
    assert ServingState.alone(busy) is False  # type: ignore[arg-type]
