"""The metadata store suite, run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.artifacts import open_artifact_store
from mloop.errors import ConfigError, Conflict, InvalidInput, NotFound, StoreError, UnsafePath
from mloop.store import current_revision, head_revision, open_store
from mloop.store._engine import _migrated
from mloop.tracking import Metric, Param, RunInput, RunStatus, RunTag
from mloop.tracking._sql_backend import SqlBackend


@pytest.fixture
def backend(db_uri: str, tmp_path: Path) -> Iterator[SqlBackend]:
    sql = SqlBackend(open_store(db_uri), open_artifact_store(str(tmp_path / "blobs")))
    yield sql
    sql.close()


def _run(backend: SqlBackend, exp: str, name: str = "r", start: int = 1, **kw: object) -> str:
    return backend.create_run(
        exp,
        run_name=name,
        user_id="ada",
        start_time=start,
        tags=dict(kw.pop("tags", {})),  # type: ignore[call-overload]
        parent_run_id=kw.pop("parent", None),  # type: ignore[arg-type]
    ).info.run_id


def test_opening_migrates_to_head_once(db_uri: str) -> None:
    store = open_store(db_uri)
    assert current_revision(store.engine) == head_revision()
    again = open_store(db_uri)
    assert current_revision(again.engine) == head_revision()
    store.close()
    again.close()


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    from mloop.store._engine import _scripts

    assert head_revision() == _scripts().get_current_head()


def test_a_store_newer_than_this_mloop_is_refused(db_uri: str) -> None:
    from sqlalchemy import text

    store = open_store(db_uri)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    _migrated.discard(store.uri)
    try:
        assert current_revision(store.engine) == "9999"
        with pytest.raises(StoreError, match="newer than this mloop knows"):
            open_store(db_uri)
    finally:
        with store.engine.begin() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()}
            )
        store.close()


def test_importing_the_store_does_not_import_alembic() -> None:
    import subprocess
    import sys

    code = "import sys, mloop.store; print('alembic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_bad_uris_say_what_to_use() -> None:
    with pytest.raises(ConfigError, match="postgresql\\+psycopg://"):
        open_store("mysql://root@localhost/x")
    with pytest.raises(ConfigError, match="not a database URI"):
        open_store("::::")
    with pytest.raises(StoreError, match="check the URI"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_experiments_are_unique_by_name(backend: SqlBackend) -> None:
    exp = backend.create_experiment("churn", tags={"team": "growth"})
    assert backend.get_experiment(exp).tags == {"team": "growth"}
    found = backend.get_experiment_by_name("churn")
    assert found is not None
    assert found.experiment_id == exp
    with pytest.raises(Conflict, match="already exists"):
        backend.create_experiment("churn")
    with pytest.raises(NotFound, match="does not exist"):
        backend.get_experiment("nope")
    backend.delete_experiment(exp)
    assert exp not in [e.experiment_id for e in backend.search_experiments()]
    assert exp in [e.experiment_id for e in backend.search_experiments("DELETED_ONLY")]


def test_run_ids_sort_by_creation_and_runs_nest(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    ids = [_run(backend, exp, f"r{i}") for i in range(20)]
    assert ids == sorted(ids)
    child = _run(backend, exp, "child", parent=ids[0])
    assert backend.get_run(child).info.parent_run_id == ids[0]
    with pytest.raises(NotFound, match="parent run"):
        _run(backend, exp, parent="missing")
    info = backend.update_run(child, status=RunStatus.FINISHED, end_time=99)
    assert (info.status, info.end_time) == (RunStatus.FINISHED, 99)


def test_params_are_immutable_and_a_refused_batch_writes_nothing(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    run = _run(backend, exp)
    backend.log_batch(run, params=[Param("lr", "0.1")])
    backend.log_batch(run, params=[Param("lr", "0.1")])  # same value again is fine
    with pytest.raises(Conflict) as caught:
        backend.log_batch(run, metrics=[Metric("loss", 1.0, 1, 0)], params=[Param("lr", "0.2")])
    assert "'0.1'" in str(caught.value)
    assert "'0.2'" in str(caught.value)
    assert backend.get_metric_history(run, "loss") == []
    with pytest.raises(Conflict, match="given twice"):
        backend.log_batch(run, params=[Param("a", "1"), Param("a", "2")])
    assert backend.get_run(run).data.params == {"lr": "0.1"}


def test_metric_history_latest_value_nan_and_inf(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    run = _run(backend, exp)
    backend.log_batch(run, metrics=[Metric("loss", 0.5, 10, 2), Metric("loss", 0.9, 20, 1)])
    backend.log_batch(run, metrics=[Metric("loss", 0.7, 30, 0)])  # older step, logged later
    backend.log_batch(run, metrics=[Metric("odd", math.nan, 1, 0), Metric("big", math.inf, 1, 0)])
    history = backend.get_metric_history(run, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.7), (1, 0.9), (2, 0.5)]
    metrics = backend.get_run(run).data.metrics
    assert metrics["loss"] == 0.5  # the point of the highest step wins
    assert math.isnan(metrics["odd"])
    assert metrics["big"] == math.inf
    with pytest.raises(NotFound):
        backend.log_batch("missing", metrics=[Metric("x", 1.0, 1, 0)])


def test_tags_overwrite(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    run = _run(backend, exp, tags={"stage": "dev"})
    backend.log_batch(run, tags=[RunTag("stage", "prod"), RunTag("owner", "ada")])
    assert backend.get_run(run).data.tags == {"stage": "prod", "owner": "ada"}


def test_search_filters_orders_and_pages(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    ids = []
    for i in range(25):
        run = _run(backend, exp, f"run{i}", start=i)
        backend.log_batch(
            run,
            metrics=[Metric("acc", i / 25, 0, 0)],
            params=[Param("model", "rf" if i % 2 else "lr")],
        )
        ids.append(run)
    runs, token = backend.search_runs([exp], "metrics.acc >= 0.5 and params.model = 'rf'")
    assert {r.info.run_id for r in runs} == {ids[i] for i in range(13, 25, 2)}
    assert token is None
    best, _ = backend.search_runs([exp], order_by=["metrics.acc DESC"], max_results=3)
    assert [r.info.run_id for r in best] == [ids[24], ids[23], ids[22]]
    seen: list[str] = []
    token = None
    while True:
        page, token = backend.search_runs([exp], max_results=7, page_token=token)
        seen.extend(r.info.run_id for r in page)
        if token is None:
            break
    assert seen == list(reversed(ids))  # default order: newest first, every run once
    with pytest.raises(InvalidInput, match="page token"):
        backend.search_runs([exp], page_token="garbage!")
    with pytest.raises(InvalidInput, match="column"):
        backend.search_runs([exp], "metrics.acc >> 1")


def test_artifacts_are_a_namespace_over_blobs(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    run = _run(backend, exp)
    first = backend.log_artifact_stream(run, "plots/loss.png", io.BytesIO(b"png"))
    second = backend.log_artifact_stream(run, "plots/deep/acc.png", io.BytesIO(b"png"))
    backend.log_artifact_stream(run, "model.txt", io.BytesIO(b"weights"))
    assert first.digest == second.digest  # same content, one blob
    top = backend.list_artifacts(run)
    assert [(a.path, a.is_dir) for a in top] == [("model.txt", False), ("plots", True)]
    inner = backend.list_artifacts(run, "plots")
    assert [(a.path, a.is_dir) for a in inner] == [("plots/deep", True), ("plots/loss.png", False)]
    with backend.open_artifact(run, "model.txt") as stream:
        assert stream.read() == b"weights"
    for bad in ("../escape", "/etc/passwd", "a/../../b"):
        with pytest.raises(UnsafePath):
            backend.log_artifact_stream(run, bad, io.BytesIO(b"x"))
    with pytest.raises(NotFound, match="no artifact"):
        backend.open_artifact(run, "nope.txt")


def test_inputs_record_lineage(backend: SqlBackend) -> None:
    from sqlalchemy import select

    from mloop.store.schema import LineageEdge

    exp = backend.create_experiment("e")
    run = _run(backend, exp)
    backend.log_inputs(run, [RunInput("iris@3", "training", digest="abc")])
    backend.log_inputs(run, [RunInput("iris@3", "training", digest="abc")])  # idempotent
    assert backend.get_inputs(run) == [RunInput("iris@3", "training", "dataset", "abc", None)]
    with backend.store.read() as conn:
        edges = conn.execute(select(LineageEdge.src_id, LineageEdge.dst_id)).all()
    assert [tuple(e) for e in edges] == [("iris@3", run)]


def test_deleted_runs_are_hidden_and_restorable(backend: SqlBackend) -> None:
    exp = backend.create_experiment("e")
    run = _run(backend, exp)
    backend.delete_run(run)
    assert backend.search_runs([exp])[0] == []
    assert [r.info.run_id for r in backend.search_runs([exp], view_type="ALL")[0]] == [run]
    backend.restore_run(run)
    assert [r.info.run_id for r in backend.search_runs([exp])[0]] == [run]
