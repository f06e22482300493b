"""The process-pool executor (real spawned workers), executor settings, and the tables
matching their migration."""

from __future__ import annotations

import os
from typing import Any

import pytest

import mloop
from mloop.errors import ConfigError
from mloop.pipelines import resume, run
from mloop.pipelines._executors import (
    InProcessExecutor,
    ProcessExecutor,
    executor_setting,
    open_step_executor,
)
from tests.unit.pipelines import pipes


def test_the_process_pool_runs_steps_in_other_processes_with_the_same_results(
    sqlite_db: str,
) -> None:
    inprocess = run(pipes.simple, {"rows": 6}, no_cache=True)
    pooled = run(pipes.simple, {"rows": 6}, executor="process", no_cache=True)
    assert pooled.status == "succeeded", pooled.reason
    assert pooled.executor == "process"
    assert pooled.output("totals") == inprocess.output("totals")
    assert pooled.output("doubled").equals(inprocess.output("doubled"))
    ran_in = {line.split()[0]: line.split()[1] for line in _calls()[3:]}
    assert str(os.getpid()) not in ran_in.values()
    # the worker's step runs landed in this store, under the pipeline's run
    step_run = mloop.get_run(pooled.step("total").run_id or "")
    assert step_run.info.parent_run_id == pooled.run_id
    assert step_run.data.metrics["sum"] == 30.0


def test_in_memory_values_fail_and_resume_through_the_pool(sqlite_db: str) -> None:
    memory = run(pipes.in_memory, {"value": 5}, executor="process")
    assert memory.status == "succeeded", memory.reason
    assert memory.output() == 5
    pipes.broken_flag().touch()
    failed = run(pipes.breakable, {"rows": 4}, executor="process")
    assert failed.status == "failed"
    assert "the fragile step is broken" in (failed.reason or "")
    pipes.broken_flag().unlink()
    resumed = resume(failed.id)  # the stored executor setting is used again
    assert resumed.status == "succeeded", resumed.reason
    assert resumed.executor == "process"
    assert resumed.output() == {"sum": 2.0, "rows": 2.0}


def test_a_step_another_process_cannot_import_fails_with_the_reason(sqlite_db: str) -> None:
    @mloop.step
    def local_step() -> int:
        return 1

    @mloop.pipeline
    def local_pipeline() -> Any:
        return local_step()

    failed = run(local_pipeline, executor="process")
    assert failed.status == "failed"
    assert "has no 'test_a_step_another_process" in (failed.reason or "")
    assert failed.step("local_step").attempts == 1
    assert run(local_pipeline).status == "succeeded"  # in-process needs no import


def test_executor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executor_setting(None) == "inprocess"
    monkeypatch.setenv("MLOOP_EXECUTOR", "local")
    assert executor_setting(None) == "process"
    assert executor_setting("inline") == "inprocess"
    assert executor_setting("ray://head:10001") == "ray://head:10001"
    assert isinstance(open_step_executor("inprocess"), InProcessExecutor)
    pool = open_step_executor(None)
    assert isinstance(pool, ProcessExecutor)
    pool.close()
    with pytest.raises(ConfigError, match="unknown pipeline executor 'dask'; use one of"):
        open_step_executor("dask")


def test_the_tables_match_their_migration(sqlite_db: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData, create_engine

    from mloop.pipelines import _tables

    ours = MetaData()
    for table in (_tables.PipelineExecutionRow, _tables.PipelineStepRow, _tables.PipelineCacheRow):
        table.__table__.to_metadata(ours)  # type: ignore[attr-defined]
    engine = create_engine(sqlite_db)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or name in ours.tables
                    )
                },
            )
            assert compare_metadata(context, ours) == []
    finally:
        engine.dispose()


def _calls() -> list[str]:
    from pathlib import Path

    return (Path(os.environ["MLOOP_HOME"]) / "calls.log").read_text().splitlines()


def test_a_warm_worker_reloads_a_module_edited_since_it_imported_it(
    sqlite_db: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys
    import textwrap

    monkeypatch.syspath_prepend(str(tmp_path))

    def load(factor: int) -> Any:
        (tmp_path / "edited_pipe.py").write_text(
            textwrap.dedent(
                f"""
                import mloop

                @mloop.step
                def scaled(n: int) -> int:
                    return n * {factor}

                @mloop.pipeline
                def edited(n: int = 2):
                    return scaled(n)
                """
            )
        )
        sys.modules.pop("edited_pipe", None)
        importlib.invalidate_caches()
        return importlib.import_module("edited_pipe").edited

    first = run(load(10), executor="process")
    assert first.output() == 20
    second = run(load(100), executor="process")  # the same warm pool, which imported factor 10
    assert second.status == "succeeded", second.reason
    assert second.output() == 200


def test_a_worker_with_an_older_module_reloads_it_and_refuses_code_it_cannot_match(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    from mloop.errors import InvalidInput
    from mloop.pipelines._digest import loaded_fingerprint
    from mloop.pipelines._worker import StepTask, _current_step

    monkeypatch.syspath_prepend(str(tmp_path))
    source = "import mloop\n\n@mloop.step\ndef scaled(n: int) -> int:\n    return n * {}\n"
    (tmp_path / "stale_mod.py").write_text(source.format(10))
    sys.modules.pop("stale_mod", None)
    importlib.invalidate_caches()
    importlib.import_module("stale_mod")  # this "worker" holds the old version
    namespace: dict[str, Any] = {"__name__": "stale_mod"}
    exec(compile(source.format(100), "stale_mod.py", "exec"), namespace)
    newer = loaded_fingerprint(namespace["scaled"].fn)
    (tmp_path / "stale_mod.py").write_text(source.format(100))

    def task(fingerprint: str) -> StepTask:
        return StepTask(
            "e", "scaled", "stale_mod:scaled", {}, {}, None, {}, fingerprint=fingerprint
        )

    assert _current_step(task(newer)).fn(2) == 200  # reloaded
    with pytest.raises(InvalidInput, match="even after reloading it"):
        _current_step(task("0" * 64))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two workers")
def test_independent_steps_run_at_the_same_time_in_the_pool(sqlite_db: str) -> None:
    both = run(pipes.siblings, executor="process")  # each waits for the other's mark
    assert both.status == "succeeded", both.reason
    assert both.output("left") == "left"
    assert both.output("right") == "right"
