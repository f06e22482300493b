"""Executors: where partition tasks run (this process, local processes, a Ray cluster).

A task is a picklable function applied to a picklable partition and returning bytes, so
one plan runs unchanged everywhere. Built-ins register through :func:`register_executor`
exactly as a third party would; the setting is a name (``inline``, ``local``, ``ray``) or a
URI whose scheme names the executor (``ray://head:10001``). ``MLOOP_EXECUTOR`` is read when
an executor is asked for, never at import time.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from mloop.errors import ConfigError, MloopError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_EXECUTOR = "local"
_PRELOAD = ["mloop.data._statistics"]  # imported once by the fork server, not per task


class Executor(Protocol):
    """Runs ``fn`` over ``items``; results come back in input order."""

    @property
    def parallelism(self) -> int:
        """How many tasks can run at once: planners cut about this many partitions."""
        ...

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        """Apply ``fn`` to every item; call ``on_done(index)`` as each one finishes."""
        ...


ExecutorFactory = Callable[[str], Executor]
"""Builds an executor from the full setting (``"ray"``, ``"ray://head:10001"``, …)."""

_REGISTRY: dict[str, ExecutorFactory] = {}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make ``name`` (and URIs ``name://…``) a valid executor setting."""
    if not name or "://" in name:
        raise ConfigError(f"executor name {name!r} must be a plain word like 'local' or 'ray'")
    _REGISTRY[name] = factory


def available_executors() -> list[str]:
    return sorted(_REGISTRY)


def get_executor(setting: str | None = None) -> Executor:
    """The executor for ``setting``, else ``MLOOP_EXECUTOR``, else ``local``."""
    chosen = setting or os.environ.get("MLOOP_EXECUTOR") or DEFAULT_EXECUTOR
    name = chosen.split("://", 1)[0] if "://" in chosen else chosen
    factory = _REGISTRY.get(name.strip().lower())
    if factory is None:
        raise ConfigError(
            f"unknown executor {chosen!r}; use one of {', '.join(available_executors())} "
            "(or ray://HOST:PORT)"
        )
    return factory(chosen)


class InlineExecutor:
    """Everything in this process, one task after another: debugging and small data."""

    parallelism = 1
    splits_tables = False

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        results = []
        for index, item in enumerate(items):
            results.append(fn(item))
            if on_done is not None:
                on_done(index)
        return results


_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    """One pool per process, kept warm: a second scan must not pay worker start-up again.

    Workers come from a fork server that has preloaded mloop's statistics code, which is
    both fast to fork from and safe (forking a process that runs Arrow's thread pools is
    not).
    """
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context: multiprocessing.context.BaseContext
            if "forkserver" in multiprocessing.get_all_start_methods():
                forkserver = multiprocessing.get_context("forkserver")
                forkserver.set_forkserver_preload(_PRELOAD)
                context = forkserver
            else:
                context = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            _pool_workers = workers
        return _pool


def _discard_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None


atexit.register(_discard_pool)


class LocalExecutor:
    """A process pool of ``workers`` (default: every CPU); one partition runs in-process.

    Workers start from a fork server, so a script using it must guard its entry point
    with ``if __name__ == "__main__":`` (as for any ``multiprocessing`` pool).
    In-memory tables stay in this process: copying them to workers costs about what the
    sketching saves.
    """

    splits_tables = False

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    @property
    def parallelism(self) -> int:
        return self.workers

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        if len(items) <= 1 or self.workers == 1:
            return InlineExecutor().run(fn, items, on_done)
        pool = _shared_pool(self.workers)
        futures: dict[Future[R], int] = {pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        try:
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                if on_done is not None:
                    on_done(index)
        except BrokenProcessPool:
            _discard_pool()
            raise MloopError(
                "a local worker process failed (out of memory, or a script without an "
                "`if __name__ == '__main__':` guard); fix that or set MLOOP_EXECUTOR=inline"
            ) from None
        finally:
            for future in futures:
                future.cancel()
        return results


class RayExecutor:
    """Partitions become Ray tasks on the cluster at ``address`` (or a local Ray)."""

    splits_tables = True

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._ray = _import_ray()

    def _connect(self) -> Any:
        ray = self._ray
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        return ray

    @property
    def parallelism(self) -> int:
        cpus = self._connect().cluster_resources().get("CPU", 1)
        return max(1, int(cpus))

    def run(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        ray = self._connect()
        remote = ray.remote(fn)
        refs = [remote.remote(item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(items)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    results[index[ref]] = ray.get(ref)
                    if on_done is not None:
                        on_done(index[ref])
        except ray.exceptions.RayTaskError as exc:
            for ref in pending:
                ray.cancel(ref)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, MloopError):
                raise cause from None
            raise
        return results


THREADED_ROWS = 32_768  # below this, handing columns to threads costs more than it saves
_threads_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None


def column_threads() -> ThreadPoolExecutor:
    """Threads for columns of one batch: sorting, numpy and Arrow kernels release the GIL.

    Created on first use, never at import: the fork server that starts local workers
    imports this module and must not hold threads when it forks.
    """
    global _threads
    with _threads_lock:
        if _threads is None:
            workers = min(os.cpu_count() or 1, 8)
            _threads = ThreadPoolExecutor(workers, thread_name_prefix="mloop-stats")
        return _threads


_reader_lock = threading.Lock()
_reader: ThreadPoolExecutor | None = None


def reader_thread() -> ThreadPoolExecutor:
    """One thread that decodes the next batch while the current one is summarized.

    Separate from :func:`column_threads` so reading never takes a column worker; created on
    first use for the same fork-server reason.
    """
    global _reader
    with _reader_lock:
        if _reader is None:
            _reader = ThreadPoolExecutor(1, thread_name_prefix="mloop-read")
        return _reader


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray executor needs Ray, which is not installed; run "
            "`pip install 'mloop[ray]'` or set MLOOP_EXECUTOR=local"
        ) from None
    return ray


def _ray_factory(setting: str) -> Executor:
    return RayExecutor(None if setting.strip().lower() == "ray" else setting)


register_executor("inline", lambda _setting: InlineExecutor())
register_executor("local", lambda _setting: LocalExecutor())
register_executor("ray", _ray_factory)


__all__ = [
    "DEFAULT_EXECUTOR",
    "THREADED_ROWS",
    "Executor",
    "ExecutorFactory",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "available_executors",
    "column_threads",
    "get_executor",
    "reader_thread",
    "register_executor",
]
