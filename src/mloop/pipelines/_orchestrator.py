"""The orchestrator of one execution: schedules ready steps, consults the cache, records.

It runs in the caller's process and is the only writer of the pipeline tables. When a step
reports success it records, in one transaction, the step's outputs, its cache entry and
its lineage edges. Retries wait ``backoff_s * 2**(attempt-1)`` seconds (through an
injectable ``sleep``). A step that fails for good or raises :class:`StopPipeline` halts
the pipeline: running steps finish, nothing new starts, the rest are skipped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from mloop._ids import now_ms
from mloop.errors import MloopError
from mloop.pipelines import _store
from mloop.pipelines._digest import code_digest, loaded_fingerprint
from mloop.pipelines._execution import PipelineExecution
from mloop.pipelines._executors import StepExecutor, open_step_executor, task_error
from mloop.pipelines._graph import Graph, Node, Pipeline
from mloop.pipelines._values import STORED_KINDS, canonical_json, digest_of, wants_dataset
from mloop.pipelines._worker import StepResult, StepTask, worker_context

EventHandler = Callable[[str, str], None]
"""Called with ``(step name, status)`` whenever a step's status changes."""


def cache_key(digest: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    document = {"format": 1, "code": digest, "params": params, "inputs": inputs}
    return hashlib.sha256(canonical_json(document)).hexdigest()


@dataclass
class _Done:
    outputs: list[dict[str, Any]]
    memory: list[Any]


class Orchestrator:
    def __init__(
        self,
        pipe: Pipeline[Any],
        graph: Graph,
        params: dict[str, Any],
        executor: str | None,
        no_cache: bool,
        sleep: Callable[[float], None],
        on_event: EventHandler | None,
        execution_id: str,
        *,
        reuse: dict[str, dict[str, Any]],
        previous: PipelineExecution | None = None,
    ) -> None:
        self.pipe = pipe
        self.graph = graph
        self.params = params
        self.executor_setting = executor
        self.no_cache = no_cache
        self.sleep = sleep
        self.on_event = on_event or (lambda _name, _status: None)
        self.id = execution_id
        self.reuse = reuse
        self.previous = previous
        self.digests = {name: code_digest(node.step.fn) for name, node in graph.nodes.items()}
        self.done: dict[str, _Done] = {}
        self.resolved: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
        self.context: dict[str, Any] | None = None
        self.attempts: dict[str, int] = {}
        self.status: dict[str, str] = dict.fromkeys(graph.nodes, "pending")
        self.halt: tuple[str, str] | None = None  # (execution status, reason)

    # -- the whole run ------------------------------------------------------------------------

    def execute(self, *, new: bool) -> PipelineExecution:
        import mloop
        from mloop.artifacts import artifact_store_for

        self.artifacts = artifact_store_for()
        executor = open_step_executor(self.executor_setting)
        with _store.opened() as db:
            self.db = db
            run = self._start_pipeline_run(mloop)
            self.run_id = run.info.run_id
            self._record_start(new, executor.name)
            try:
                self._loop(executor)
            except BaseException as exc:
                self.halt = self.halt or ("failed", f"interrupted: {type(exc).__name__}: {exc}")
                self._finish(mloop)
                raise
            finally:
                executor.close()
            self._finish(mloop)
            return _store.load_execution(db, self.id)

    def _start_pipeline_run(self, mloop: Any) -> Any:
        if self.previous is not None and self.previous.run_id is not None:
            return mloop.start_run(run_id=self.previous.run_id, nested=True)
        return mloop.start_run(
            run_name=f"pipeline {self.pipe.name}",
            nested=mloop.active_run() is not None,
            tags={"mloop.pipeline": self.pipe.name, "mloop.pipeline.execution": self.id},
        )

    def _record_start(self, new: bool, executor_name: str) -> None:
        now = now_ms()
        steps = [
            {
                "execution_id": self.id,
                "name": name,
                "position": i,
                "step": node.step.ref,
                "upstream": node.upstream,
                "status": "pending",
                "cached": False,
                "run_id": None,
                "code_digest": self.digests[name],
                "cache_key": None,
                "params": node.params,
                "inputs": {k: o.to_json() for k, o in node.inputs.items()},
                "outputs": None,
                "error": None,
                "attempts": 0,
                "start_time": None,
                "end_time": None,
            }
            for i, (name, node) in enumerate(self.graph.nodes.items())
            if name not in self.reuse
        ]
        execution = {
            "status": "running",
            "reason": None,
            "executor": self.executor_setting or executor_name,
            "run_id": self.run_id,
            "outputs": None,
            "end_time": None,
        }
        if new:
            from mloop.config import get_settings

            _store.create_execution(
                self.db,
                {
                    **execution,
                    "id": self.id,
                    "pipeline": self.pipe.ref,
                    "name": self.pipe.name,
                    "params": self.params,
                    "created_by": get_settings().user or _user(),
                    "attempts": 1,
                    "start_time": now,
                },
                steps,
            )
        else:
            assert self.previous is not None
            execution["attempts"] = self.previous.attempts + 1
            _store.restart_execution(self.db, self.id, execution, steps)
        for name in self.graph.nodes:
            self.on_event(name, "pending")

    def _finish(self, mloop: Any) -> None:
        status, reason = self.halt or ("succeeded", None)
        if status != "succeeded":
            for name, state in self.status.items():
                if state in ("pending", "running", "waiting"):
                    self._set(name, "skipped")
                    _store.update_step(self.db, self.id, name, status="skipped")
        outputs = {
            key: {**out.to_json(), "ref": self._ref(out.node, out.index)}
            for key, out in self.graph.outputs.items()
        }
        _store.update_execution(
            self.db, self.id, status=status, reason=reason, outputs=outputs, end_time=now_ms()
        )
        mloop.set_tag("mloop.pipeline.status", status)
        mloop.end_run("FAILED" if status == "failed" else "FINISHED")

    def _ref(self, node: str, index: int | None) -> dict[str, Any] | None:
        done = self.done.get(node)
        return None if done is None else done.outputs[index or 0]

    def _set(self, name: str, status: str) -> None:
        self.status[name] = status
        self.on_event(name, status)

    # -- scheduling -------------------------------------------------------------------------

    def _loop(self, executor: StepExecutor) -> None:
        running: dict[Future[StepResult], str] = {}
        retry_at: dict[str, float] = {}
        while True:
            if self.halt is None:
                for name in self._ready(running, retry_at):
                    try:
                        if self._reused(name) or self._cached(name):
                            continue
                        running[self._submit(executor, name)] = name
                    except MloopError as exc:  # e.g. a dataset reference that does not resolve
                        failed = StepResult(
                            name, "failed", None, error=exc.message, retryable=False
                        )
                        self._handle(name, failed, retry_at)
                        break
                    if not executor.concurrent:
                        break  # in-process: finish this one first
            if not running and (not retry_at or self.halt is not None):
                if self.halt is None and self._ready(running, retry_at):
                    continue
                return
            if running:
                timeout = None
                if retry_at:
                    timeout = max(0.0, min(retry_at.values()) - time.monotonic())
                finished, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        result = future.result()
                    except BaseException as exc:  # the worker died
                        result = task_error(exc, name)
                        executor.reset()
                    self._handle(name, result, retry_at)
            else:
                name = min(retry_at, key=retry_at.__getitem__)
                delay = retry_at[name] - time.monotonic()
                if delay > 0:
                    self.sleep(delay)
                retry_at[name] = time.monotonic() - 1  # due: sleep may be a stand-in
            now = time.monotonic()
            for name in [n for n, due in retry_at.items() if due <= now]:
                del retry_at[name]
                self.status[name] = "pending"

    def _ready(
        self, running: dict[Future[StepResult], str], retry_at: dict[str, float]
    ) -> list[str]:
        busy = set(running.values()) | set(retry_at)
        return [
            name
            for name, node in self.graph.nodes.items()
            if self.status[name] == "pending"
            and name not in busy
            and all(up in self.done for up in node.upstream)
        ]

    def _params(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The node's constant arguments with dataset references pinned to a version
        (``churn@latest`` becomes ``churn@7``), and those versions' digests: a new version
        of a dataset a step reads by name is a new input."""
        if name not in self.resolved:
            node = self.graph.nodes[name]
            params = dict(node.params)
            digests: dict[str, str] = {}
            for key, value in node.params.items():
                if isinstance(value, str) and wants_dataset(node.step.hints.get(key)):
                    from mloop.data import get_dataset_version

                    version = get_dataset_version(value)
                    params[key] = version.ref
                    digests[key] = f"dataset:{version.ref}:{version.digest}"
            self.resolved[name] = (params, digests)
        return self.resolved[name]

    def _input_digests(self, node: Node) -> dict[str, str] | None:
        found: dict[str, str] = dict(self._params(node.name)[1])
        for key, out in node.inputs.items():
            ref = self._ref(out.node, out.index)
            digest = None if ref is None else digest_of(ref)
            if digest is None:
                return None  # an in-memory value: no stable identity, no caching
            found[key] = digest + "".join(f"[{k!r}]" for k in out.keys)
        return found

    def _key(self, name: str) -> str | None:
        node = self.graph.nodes[name]
        inputs = self._input_digests(node)
        params = self._params(name)[0]
        return None if inputs is None else cache_key(self.digests[name], params, inputs)

    def _reused(self, name: str) -> bool:
        """On resume: the step's recorded result, if its cache key is unchanged."""
        previous = self.reuse.get(name)
        if previous is None:
            return False
        key = self._key(name)
        if key is None or key != previous["cache_key"] or not self._stored(previous["outputs"]):
            _store.update_step(self.db, self.id, name, status="pending", outputs=None)
            self.reuse.pop(name)
            return False
        self.done[name] = _Done(previous["outputs"], [None] * len(previous["outputs"]))
        self._set(name, previous["status"])
        return True

    def _cached(self, name: str) -> bool:
        node = self.graph.nodes[name]
        if self.no_cache or not node.step.cache:
            return False
        key = self._key(name)
        if key is None:
            return False
        entry = _store.cached_outputs(self.db, key)
        if entry is None:
            return False
        if not self._stored(entry["outputs"]):
            _store.forget_cache_entry(self.db, key)  # a blob was deleted: compute it again
            return False
        now = now_ms()
        _store.update_step(
            self.db,
            self.id,
            name,
            status="cached",
            cached=True,
            params=self._params(name)[0],
            run_id=entry["run_id"],
            cache_key=key,
            outputs=entry["outputs"],
            start_time=now,
            end_time=now,
        )
        self.done[name] = _Done(entry["outputs"], [None] * len(entry["outputs"]))
        self._set(name, "cached")
        return True

    def _stored(self, outputs: list[dict[str, Any]]) -> bool:
        return all(
            o["kind"] not in STORED_KINDS or self.artifacts.exists(o["digest"]) for o in outputs
        ) and not any(o["kind"] == "memory" for o in outputs)

    def _submit(self, executor: StepExecutor, name: str) -> Future[StepResult]:
        node = self.graph.nodes[name]
        attempt = self.attempts[name] = self.attempts.get(name, 0) + 1
        key = self._key(name)
        inputs: dict[str, dict[str, Any]] = {}
        for param, out in node.inputs.items():
            done = self.done[out.node]
            index = out.index or 0
            inputs[param] = {
                "ref": done.outputs[index],
                "keys": list(out.keys),
                "value": done.memory[index],
            }
        tags = {
            "mloop.pipeline": self.pipe.name,
            "mloop.pipeline.execution": self.id,
            "mloop.pipeline.step": name,
            "mloop.step.code_digest": self.digests[name],
            "mloop.step.attempt": str(attempt),
        }
        if key is not None:
            tags["mloop.step.cache_key"] = key
        task = StepTask(
            execution_id=self.id,
            node=name,
            step_ref=node.step.ref,
            params=self._params(name)[0],
            inputs=inputs,
            parent_run_id=self.run_id,
            tags=tags,
            context=None if executor.in_process else self._worker_context(),
            fingerprint=None if executor.in_process else loaded_fingerprint(node.step.fn),
            step=node.step if executor.in_process else None,
            artifacts=self.artifacts if executor.in_process else None,
        )
        _store.update_step(
            self.db,
            self.id,
            name,
            status="running",
            params=task.params,
            attempts=attempt,
            cache_key=key,
            start_time=now_ms(),
            error=None,
        )
        self._set(name, "running")
        return executor.submit(task, node.step.resources)

    def _worker_context(self) -> dict[str, Any]:
        if self.context is None:
            self.context = worker_context()
        return self.context

    def _handle(self, name: str, result: StepResult, retry_at: dict[str, float]) -> None:
        node = self.graph.nodes[name]
        now = now_ms()
        if result.status == "succeeded":
            self._record_success(name, result, now)
            return
        if result.status == "stopped":
            _store.update_step(
                self.db, self.id, name, status="stopped", run_id=result.run_id,
                error=result.error, end_time=now,
            )  # fmt: skip
            self._set(name, "stopped")
            self.halt = ("stopped", result.error or f"step {name!r} stopped the pipeline")
            return
        attempt = self.attempts.setdefault(name, 1)
        if result.retryable and attempt <= node.step.retries and self.halt is None:
            _store.update_step(
                self.db, self.id, name, status="pending", run_id=result.run_id,
                error=result.error,
            )  # fmt: skip
            self._set(name, "retrying")
            self.status[name] = "waiting"
            retry_at[name] = time.monotonic() + node.step.backoff_s * 2 ** (attempt - 1)
            return
        _store.update_step(
            self.db, self.id, name, status="failed", run_id=result.run_id,
            error=result.error, end_time=now,
        )  # fmt: skip
        self._set(name, "failed")
        first_line = (result.error or "unknown error").splitlines()[0]
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        self.halt = self.halt or ("failed", f"step {name!r} failed{tries}: {first_line}")

    def _record_success(self, name: str, result: StepResult, now: int) -> None:
        node = self.graph.nodes[name]
        key = self._key(name)
        memory_only = any(o["kind"] == "memory" for o in result.outputs)
        entry = None
        if node.step.cache and key is not None and not memory_only:
            entry = {
                "cache_key": key,
                "step": node.step.ref,
                "execution_id": self.id,
                "step_name": name,
                "run_id": result.run_id,
                "outputs": result.outputs,
                "created_time": now,
            }
        lineage: list[tuple[str, str, tuple[str, str, str]]] = []
        if result.run_id is not None:
            lineage.append(("run", result.run_id, ("pipeline_execution", self.id, "ran")))
            params, datasets = self._params(name)
            for key in datasets:
                lineage.append(("run", result.run_id, ("dataset", params[key], "input")))
            for out in node.inputs.values():
                ref = self._ref(out.node, out.index)
                target = None if ref is None else _lineage_node(ref)
                if target is not None:
                    lineage.append(("run", result.run_id, (*target, "input")))
            for ref in result.outputs:
                target = _lineage_node(ref)
                if target is not None:
                    lineage.append((*target, ("run", result.run_id, "produced")))
        _store.record_success(
            self.db,
            self.id,
            name,
            {
                "status": "succeeded",
                "cached": False,
                "run_id": result.run_id,
                "outputs": result.outputs,
                "end_time": now,
                "error": None,
            },
            cache_entry=entry,
            lineage=lineage,
            now=now,
        )
        self.done[name] = _Done(result.outputs, result.memory)
        self._set(name, "succeeded")


def _lineage_node(ref: dict[str, Any]) -> tuple[str, str] | None:
    if ref["kind"] == "dataset":
        return ("dataset", ref["ref"])
    if ref["kind"] == "model":
        return ("model", ref["uri"])
    if ref["kind"] in STORED_KINDS:
        return ("artifact", f"sha256:{ref['digest']}")
    return None


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
