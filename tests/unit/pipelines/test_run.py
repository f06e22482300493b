"""Running pipelines in-process on SQLite and a real PostgreSQL: results by reference,
tracked runs with lineage, caching on code, parameters and inputs, retries with backoff,
StopPipeline, failures that leave nothing half-written, and resume."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

import mloop
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.pipelines import get_execution, list_executions, resume, run
from mloop.pipelines._store import CACHE
from mloop.store import open_store
from mloop.store import schema as s
from tests.unit.pipelines import pipes


def statuses(execution: mloop.pipelines.PipelineExecution) -> dict[str, str]:
    return {step.name: step.status for step in execution.steps}


def test_a_run_stores_outputs_tracks_each_step_and_links_lineage(db: str) -> None:
    events: list[tuple[str, str]] = []
    execution = run(pipes.simple, {"rows": 4}, on_event=lambda n, st: events.append((n, st)))
    assert execution.status == "succeeded"
    assert execution.reason is None
    assert statuses(execution) == {
        "make_frame": "succeeded",
        "total": "succeeded",
        "double": "succeeded",
    }
    assert execution.params == {"rows": 4, "column": "y"}
    assert execution.output("totals") == {"sum": 12.0, "rows": 4.0}
    doubled = execution.output("doubled")
    assert isinstance(doubled, pd.DataFrame)
    assert doubled["y"].tolist() == [0.0, 4.0, 8.0, 12.0]
    assert ("total", "running") in events
    assert events.index(("make_frame", "succeeded")) < events.index(("total", "running"))
    # every step is a run nested under the pipeline's run, with its metrics
    parent = mloop.get_run(execution.run_id or "")
    assert parent.data.tags["mloop.pipeline.status"] == "succeeded"
    step_run = mloop.get_run(execution.step("total").run_id or "")
    assert step_run.info.parent_run_id == execution.run_id
    assert step_run.data.tags["mloop.pipeline.step"] == "total"
    assert step_run.data.metrics == {"sum": 12.0, "rows": 4.0} | {
        k: v for k, v in step_run.data.metrics.items() if k not in ("sum", "rows")
    }
    assert step_run.data.params["column"] == "y"
    # lineage: make_frame's Parquet output feeds total's run, which produced its JSON output
    frame_digest = execution.step("make_frame").outputs[0]["digest"]  # type: ignore[index]
    store = open_store(db)
    try:
        with store.read() as conn:
            edges = {
                (e.src_kind, e.src_id, e.dst_kind, e.dst_id, e.relation)
                for e in conn.execute(select(s.LineageEdge.__table__)).all()
            }
    finally:
        store.close()
    total_run = execution.step("total").run_id
    assert ("artifact", f"sha256:{frame_digest}", "run", total_run, "input") in edges
    total_digest = execution.step("total").outputs[0]["digest"]  # type: ignore[index]
    assert ("run", total_run, "artifact", f"sha256:{total_digest}", "produced") in edges
    assert ("pipeline_execution", execution.id, "run", total_run, "ran") in edges


def test_cache_hits_and_misses_on_parameters_and_inputs(db: str) -> None:
    first = run(pipes.simple, {"rows": 3})
    assert pipes.calls() == ["make_frame", "total", "double"]
    again = run(pipes.simple, {"rows": 3})
    assert statuses(again) == dict.fromkeys(["make_frame", "total", "double"], "cached")
    assert all(step.cached for step in again.steps)
    assert again.output("totals") == first.output("totals")
    assert again.step("total").run_id == first.step("total").run_id  # the run that made it
    assert pipes.calls() == ["make_frame", "total", "double"]
    # a parameter of one step: only that step runs again
    other = run(pipes.simple, {"rows": 3, "column": "x"})
    assert statuses(other) == {"make_frame": "cached", "total": "succeeded", "double": "cached"}
    assert other.output("totals") == {"sum": 3.0, "rows": 3.0}
    # an upstream parameter changes the input of everything downstream
    bigger = run(pipes.simple, {"rows": 5})
    assert statuses(bigger) == dict.fromkeys(["make_frame", "total", "double"], "succeeded")
    # no_cache forces every step, and its results refresh the cache
    forced = run(pipes.simple, {"rows": 3}, no_cache=True)
    assert statuses(forced) == dict.fromkeys(["make_frame", "total", "double"], "succeeded")
    assert pipes.calls().count("make_frame") == 3


def test_a_step_whose_code_changes_runs_again_and_its_consumers_only_if_its_output_did(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    # versions of equal size written within a second would otherwise load a stale .pyc
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = folder / "changing_pipe.py"

    def write(body: str, helper: str = "return value", constant: int = 1) -> object:
        module.write_text(
            textwrap.dedent(
                f"""
                import mloop
                from tests.unit.pipelines.pipes import note

                FACTOR = {constant}

                def helper(value):
                    {helper}

                @mloop.step
                def produce(n: int) -> int:
                    note("produce")
                    {body}

                @mloop.step
                def consume(value: int) -> int:
                    note("consume")
                    return value + 1

                @mloop.pipeline
                def changing(n: int = 2):
                    return consume(produce(n))
                """
            )
        )
        sys.modules.pop("changing_pipe", None)
        importlib.invalidate_caches()
        return importlib.import_module("changing_pipe").changing

    run(write("return helper(n * FACTOR)"))
    same = run(write("# a comment changes nothing\n                    return helper(n * FACTOR)"))
    assert statuses(same) == {"produce": "cached", "consume": "cached"}
    # a body change with the same result: the consumer's input digest is unchanged
    reworded = run(write("return helper(n * FACTOR + 0)"))
    assert statuses(reworded) == {"produce": "succeeded", "consume": "cached"}
    # the helper and the module constant are part of the digest too
    assert statuses(run(write("return helper(n * FACTOR + 0)", helper="return value * 10"))) == {
        "produce": "succeeded", "consume": "succeeded"
    }  # fmt: skip
    changed = run(write("return helper(n * FACTOR + 0)", helper="return value * 10", constant=3))
    assert statuses(changed) == {"produce": "succeeded", "consume": "succeeded"}
    assert changed.output() == 61


def test_retries_back_off_exponentially_then_succeed_or_give_up(sqlite_db: str) -> None:
    slept: list[float] = []
    done = run(pipes.retrying, {"failures": 2}, sleep=slept.append)
    assert done.status == "succeeded"
    assert done.output() == 3
    assert slept == pytest.approx([0.5, 1.0], abs=0.05)
    assert done.step("flaky").attempts == 3
    # each attempt is its own tracked run; the failed ones stay FAILED
    attempts = mloop.search_runs(
        filter_string="tags.`mloop.pipeline.step` = 'flaky'", output_format="list"
    )
    assert sorted(r.info.status for r in attempts) == ["FAILED", "FAILED", "FINISHED"]
    slept.clear()
    failed = run(pipes.retrying, {"failures": 10}, sleep=slept.append)
    assert failed.status == "failed"
    assert failed.reason == "step 'flaky' failed after 3 attempts: RuntimeError: flaky failure 6"
    assert failed.step("flaky").status == "failed"
    assert "flaky failure 6" in (failed.step("flaky").error or "")
    assert len(slept) == 2


def test_stop_pipeline_ends_the_execution_stopped_with_the_reason(db: str) -> None:
    slept: list[float] = []
    stopped = run(pipes.gated, {"rows": 3, "minimum": 100.0}, sleep=slept.append)
    assert stopped.status == "stopped"
    assert stopped.reason == "sum 6.0 is below the minimum 100.0"
    assert stopped.step("gate").status == "stopped"
    assert stopped.step("gate").attempts == 1
    assert slept == []
    assert pipes.calls().count("gate") == 1
    assert stopped.step("double").status in ("succeeded", "skipped")
    assert mloop.get_run(stopped.run_id or "").data.tags["mloop.pipeline.status"] == "stopped"
    passed = run(pipes.gated, {"rows": 3, "minimum": 1.0})
    assert passed.status == "succeeded"
    assert passed.output("checked")["sum"] == 6.0


def test_a_value_of_the_wrong_type_fails_at_once_without_retries(sqlite_db: str) -> None:
    slept: list[float] = []
    failed = run(pipes.lying, sleep=slept.append)
    assert failed.status == "failed"
    assert slept == []
    assert "the return value of step 'liar' expects int, got str" in (failed.reason or "")


def test_a_failed_step_leaves_no_half_written_result_and_resume_continues_from_it(
    db: str,
) -> None:
    pipes.broken_flag().touch()
    failed = run(pipes.split, {"rows": 3})
    assert failed.status == "failed"
    assert "two_outputs" in (failed.reason or "")
    step = failed.step("two_outputs")
    assert step.status == "failed"
    assert step.outputs is None
    assert statuses(failed)["rows_of"] == "skipped"
    with pytest.raises(NotFound, match="was not produced"):
        failed.output("first")
    store = open_store(db)
    try:
        with store.read() as conn:
            assert conn.execute(select(CACHE)).all() == []
    finally:
        store.close()
    assert mloop.get_run(step.run_id or "").info.status == "FAILED"
    pipes.broken_flag().unlink()
    resumed = resume(failed.id)
    assert resumed.id == failed.id
    assert resumed.status == "succeeded"
    assert resumed.attempts == 2
    assert resumed.output("first") == 3
    assert resumed.output("second") == 3


def test_resume_reuses_completed_steps_and_runs_the_failed_one(db: str) -> None:
    pipes.broken_flag().touch()
    failed = run(pipes.breakable, {"rows": 4}, no_cache=True)
    assert statuses(failed) == {"make_frame": "succeeded", "fragile": "failed", "total": "skipped"}
    with pytest.raises(Conflict, match="nothing to resume"):
        resume(run(pipes.simple).id)
    pipes.broken_flag().unlink()
    before = pipes.calls()
    resumed = resume(failed.id)
    assert resumed.status == "succeeded"
    assert pipes.calls()[len(before) :] == ["fragile", "total"]  # make_frame reused
    assert statuses(resumed) == {
        "make_frame": "succeeded",
        "fragile": "succeeded",
        "total": "succeeded",
    }
    assert resumed.step("make_frame").run_id == failed.step("make_frame").run_id
    assert resumed.output() == {"sum": 2.0, "rows": 2.0}
    assert mloop.get_run(resumed.run_id or "").data.tags["mloop.pipeline.status"] == "succeeded"


def test_values_mloop_cannot_store_travel_in_memory_and_are_never_cached(sqlite_db: str) -> None:
    first = run(pipes.in_memory, {"value": 7})
    assert first.status == "succeeded"
    assert first.output() == 7
    assert first.step("boxed").outputs == [{"kind": "memory"}]
    again = run(pipes.in_memory, {"value": 7})
    assert statuses(again) == {"boxed": "succeeded", "unbox": "succeeded"}
    assert pipes.calls() == ["boxed", "unbox", "boxed", "unbox"]


def test_models_go_through_log_model_and_arrive_in_the_form_the_hint_asks_for(
    sqlite_db: str,
) -> None:
    execution = run(pipes.modelled, {"rows": 20})
    assert execution.status == "succeeded", execution.reason
    assert execution.output("score") == {"accuracy": 1.0}
    ref = execution.step("fit").outputs[0]  # type: ignore[index]
    assert ref["kind"] == "model"
    assert ref["uri"] == f"runs:/{execution.step('fit').run_id}/output"
    assert execution.output("described") == {"flavor": ref["manifest"]["flavor"], "uri": ref["uri"]}
    again = run(pipes.modelled, {"rows": 20})
    assert statuses(again)["fit"] == "cached"
    assert statuses(again)["score"] == "cached"


def test_dataset_references_are_pinned_and_a_new_version_is_a_new_input(sqlite_db: str) -> None:
    mloop.data.register("numbers", pd.DataFrame({"a": [1, 2, 3]}))
    first = run(pipes.from_dataset)
    assert first.output() == 3
    assert first.step("count_rows").params == {"data": "numbers@1"}
    assert statuses(run(pipes.from_dataset)) == {"count_rows": "cached"}
    mloop.data.register("numbers", pd.DataFrame({"a": [1, 2, 3, 4]}))
    newer = run(pipes.from_dataset)
    assert statuses(newer) == {"count_rows": "succeeded"}
    assert newer.output() == 4
    assert newer.step("count_rows").params == {"data": "numbers@2"}


def test_executions_are_listed_newest_first_and_found_by_id(db: str) -> None:
    a = run(pipes.simple, {"rows": 2})
    b = run(pipes.retrying, {"failures": 0})
    assert [e.id for e in list_executions()] == [b.id, a.id]
    assert [e.id for e in list_executions("simple")] == [a.id]
    assert [e.id for e in list_executions("tests.unit.pipelines.pipes:retrying")] == [b.id]
    assert get_execution(a.id) == a
    with pytest.raises(NotFound, match="`mloop pipeline list`"):
        get_execution("0" * 32)


def test_a_pipeline_can_be_named_by_reference_and_called_directly(sqlite_db: str) -> None:
    by_ref = run("tests.unit.pipelines.pipes:simple", {"rows": 2})
    assert by_ref.pipeline == "tests.unit.pipelines.pipes:simple"
    assert by_ref.name == "simple"
    called = pipes.simple(rows=2)
    assert statuses(called) == dict.fromkeys(["make_frame", "total", "double"], "cached")
    with pytest.raises(InvalidInput, match="has no parameter nope"):
        run(pipes.simple, {"nope": 1})
    with pytest.raises(InvalidInput, match="not a Pipeline"):
        run("tests.unit.pipelines.pipes:make_frame")


def test_a_dataset_reference_that_does_not_resolve_fails_the_step_with_the_reason(
    sqlite_db: str,
) -> None:
    failed = run(pipes.from_dataset, {"data": "missing@3"})
    assert failed.status == "failed"
    assert failed.step("count_rows").status == "failed"
    assert "missing" in (failed.reason or "")
    assert pipes.calls() == []


def test_a_cached_result_whose_blob_was_deleted_is_computed_again(sqlite_db: str) -> None:
    from mloop.artifacts import artifact_store_for

    first = run(pipes.simple, {"rows": 3})
    frame = first.step("make_frame").outputs[0]  # type: ignore[index]
    artifact_store_for().delete(frame["digest"])
    again = run(pipes.simple, {"rows": 3})
    assert statuses(again) == {"make_frame": "succeeded", "total": "cached", "double": "cached"}
    assert again.output("doubled").equals(first.output("doubled"))
