"""Where steps run, behind one small interface: submit a task, get a future.

``inprocess`` (the default) runs each step in the calling thread, one at a time: the
simplest to debug, and steps see the caller's state. ``process`` runs steps in a pool of
fresh (spawned) Python processes, so independent steps run at the same time. ``ray`` (or
``ray://host:port``) makes each step a Ray task with the step's CPU, GPU and memory
request. The setting comes from the caller, else ``MLOOP_EXECUTOR``, else ``inprocess``;
the data package's names ``inline`` and ``local`` mean ``inprocess`` and ``process``.
Third parties add executors with :func:`register_step_executor`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from mloop.errors import ConfigError, MloopError
from mloop.pipelines._graph import Resources
from mloop.pipelines._worker import StepResult, StepTask, execute_step


class StepExecutor(Protocol):
    """Runs step tasks. ``concurrent`` executors get every ready step at once."""

    name: str
    concurrent: bool
    in_process: bool

    def submit(self, task: StepTask, resources: Resources) -> Future[StepResult]: ...

    def reset(self) -> None:
        """A worker died: make sure the next submit does not go to a broken pool."""

    def close(self) -> None:
        """The pipeline is done with the executor (it may keep workers warm for the next)."""


ExecutorFactory = Callable[[str], StepExecutor]
_FACTORIES: dict[str, ExecutorFactory] = {}
_ALIASES = {"inline": "inprocess", "local": "process"}


def register_step_executor(name: str, factory: ExecutorFactory) -> None:
    """Make ``name`` (and URIs ``name://…``) a valid executor setting; ``factory`` gets
    the whole setting."""
    if not name.isidentifier() or not name.islower():
        raise ConfigError(f"executor name {name!r} must be a plain lowercase word like 'ray'")
    _FACTORIES[name] = factory


def executor_setting(setting: str | None) -> str:
    """The setting to use: the argument, else ``MLOOP_EXECUTOR``, else ``inprocess``."""
    chosen = (setting or os.environ.get("MLOOP_EXECUTOR") or "inprocess").strip()
    return _ALIASES.get(chosen.lower(), chosen)


def open_step_executor(setting: str | None = None) -> StepExecutor:
    chosen = executor_setting(setting)
    scheme = chosen.split("://", 1)[0].lower()
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise ConfigError(
            f"unknown pipeline executor {chosen!r}; use one of "
            f"{', '.join(sorted(_FACTORIES))} (or ray://host:port)"
        )
    return factory(chosen)


class InProcessExecutor:
    name = "inprocess"
    concurrent = False
    in_process = True

    def submit(self, task: StepTask, resources: Resources) -> Future[StepResult]:
        del resources
        future: Future[StepResult] = Future()
        future.set_result(execute_step(task))
        return future

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A spawned process pool: no forked locks or connections, steps imported by name.

    The pool stays up for the next pipeline of this process (starting workers that import
    pandas and mloop takes seconds); a worker whose copy of a step's module is older than
    this process's reloads it first (see :func:`~mloop.pipelines._digest.loaded_fingerprint`).
    Values that mloop cannot store (see :mod:`mloop.pipelines._values`) travel between
    processes by the pool's own pickling, in memory only.
    """

    name = "process"
    concurrent = True
    in_process = False

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, min(os.cpu_count() or 1, 8))

    def submit(self, task: StepTask, resources: Resources) -> Future[StepResult]:
        del resources
        return _shared_pool(self.workers).submit(execute_step, task)

    def reset(self) -> None:
        _discard_pool()

    def close(self) -> None:
        pass


_pool_lock = threading.Lock()
_pool: tuple[int, int, ProcessPoolExecutor] | None = None  # (pid, workers, pool)


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    """This process's pool (a forked child makes its own: pools do not survive a fork)."""
    global _pool
    import multiprocessing

    with _pool_lock:
        if _pool is not None and _pool[:2] == (os.getpid(), workers):
            return _pool[2]
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False, cancel_futures=True)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        _pool = (os.getpid(), workers, pool)
        return pool


def _discard_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False, cancel_futures=True)
        _pool = None


class RayExecutor:
    """Each step a Ray task reserving the step's resources (``memory_mb`` as bytes)."""

    name = "ray"
    concurrent = True
    in_process = False

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray executor needs Ray, which is not installed; run "
                "`pip install 'mloop[ray]'` or use --executor process"
            ) from None
        self._ray: Any = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            except Exception as exc:
                raise ConfigError(f"cannot connect to Ray at {address or 'local'}: {exc}") from None
        self._remote = ray.remote(execute_step)

    def submit(self, task: StepTask, resources: Resources) -> Future[StepResult]:
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus}
        if resources.memory_mb is not None:
            options["memory"] = resources.memory_mb * 1024 * 1024
        missing = self._infeasible(options)
        if missing:
            future: Future[StepResult] = Future()
            future.set_result(
                StepResult(
                    task.node,
                    "failed",
                    None,
                    error=f"step {task.node!r} asks for {missing}, more than the Ray cluster "
                    "has in total; lower its Resources or add nodes",
                    retryable=False,
                )
            )
            return future
        options["max_retries"] = 0  # mloop retries, with backoff and a new tracked run
        ref = self._remote.options(**options).remote(task)
        started: Future[StepResult] = ref.future()
        return started

    def reset(self) -> None:
        pass  # Ray replaces dead workers itself

    def _infeasible(self, options: dict[str, Any]) -> str:
        """What the request asks beyond the whole cluster: such a task would wait forever
        (a cluster that autoscales reports its current size, so this refuses early there;
        start it with the nodes the largest step needs)."""
        total = self._ray.cluster_resources()
        wanted = {"CPU": options["num_cpus"], "GPU": options["num_gpus"]}
        wanted["memory"] = options.get("memory", 0)
        over = [
            f"{amount:g} {name}"
            for name, amount in wanted.items()
            if amount and amount > total.get(name, 0)
        ]
        return " and ".join(over)

    def close(self) -> None:
        pass  # the Ray session belongs to the caller (or lives until the process exits)


def _ray(setting: str) -> StepExecutor:
    return RayExecutor(None if setting.lower() == "ray" else setting)


register_step_executor("inprocess", lambda _s: InProcessExecutor())
register_step_executor("process", lambda _s: ProcessExecutor())
register_step_executor("ray", _ray)


def task_error(exc: BaseException, node: str) -> StepResult:
    """A result for a task whose worker itself died (killed process, lost Ray node)."""
    message = str(exc) if isinstance(exc, MloopError) else f"{type(exc).__name__}: {exc}"
    return StepResult(node, "failed", None, error=f"the worker running {node!r} failed: {message}")
