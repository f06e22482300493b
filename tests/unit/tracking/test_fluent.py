"""The MLflow-shaped fluent API, embedded and through a live tracking server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import mloop
from mloop.errors import Conflict, InvalidInput, NotFound, UnsafePath


@pytest.fixture(autouse=True)
def _both_ways(tracking_uri: str | None) -> None:
    """Every test here runs embedded and against a live server (see tests/fixtures)."""


def test_run_context_finishes_and_records_everything() -> None:
    mloop.set_experiment("fluent")
    with mloop.start_run(run_name="first", tags={"team": "ml"}) as run:
        mloop.log_param("lr", 0.1)
        mloop.log_params({"depth": 3, "model": "rf"})
        for step in range(5):
            mloop.log_metric("loss", 1 / (step + 1), step=step)
        mloop.log_metrics({"acc": 0.9, "f1": 0.8})
        mloop.set_tag("stage", "dev")
        assert mloop.active_run() is run
    stored = mloop.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.end_time is not None
    assert stored.info.run_name == "first"
    assert stored.data.params == {"lr": "0.1", "depth": "3", "model": "rf"}
    assert stored.data.metrics["loss"] == pytest.approx(0.2)
    assert stored.data.metrics["acc"] == 0.9
    assert stored.data.tags["team"] == "ml"
    assert stored.data.tags["stage"] == "dev"
    history = mloop.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert mloop.active_run() is None


def test_exception_marks_failed_and_keeps_logged_points() -> None:
    def train() -> str:
        with mloop.start_run() as run:
            mloop.log_metric("seen", 1.0)
            _fail(run.info.run_id)
        return run.info.run_id

    with pytest.raises(RuntimeError, match="blew up"):
        train()
    run = mloop.last_active_run()
    assert run is not None
    stored = mloop.get_run(run.info.run_id)
    assert stored.info.status == "FAILED"
    assert stored.data.metrics == pytest.approx({"seen": 1.0, **_resources(stored.data.metrics)})


def _fail(run_id: str) -> None:
    raise RuntimeError(f"training {run_id} blew up")


def _resources(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith("mloop.resources.")}


def test_resources_are_recorded_at_run_end() -> None:
    with mloop.start_run() as run:
        sum(i * i for i in range(200_000))
    metrics = mloop.get_run(run.info.run_id).data.metrics
    assert metrics["mloop.resources.wall_seconds"] > 0
    assert metrics["mloop.resources.peak_rss_mb"] > 10


def test_nested_runs_and_refusing_a_second_top_level_run() -> None:
    with mloop.start_run() as parent:
        with pytest.raises(InvalidInput, match="already active"):
            mloop.start_run()
        with mloop.start_run(nested=True) as child:
            assert mloop.active_run() is child
        assert mloop.active_run() is parent
    assert mloop.get_run(child.info.run_id).info.parent_run_id == parent.info.run_id


def test_param_conflict_is_immediate_and_names_both_values() -> None:
    with mloop.start_run():
        mloop.log_param("lr", 0.1)
        with pytest.raises(Conflict, match=r"'0\.1'.*'0\.2'"):
            mloop.log_param("lr", 0.2)


def test_logging_without_a_run_starts_one() -> None:
    mloop.log_metric("x", 1.0)
    run = mloop.active_run()
    assert run is not None
    mloop.end_run()
    assert mloop.get_run(run.info.run_id).data.metrics["x"] == 1.0


def test_bad_values_are_refused_with_the_name() -> None:
    with mloop.start_run():
        with pytest.raises(InvalidInput, match="metric 'acc' must be a number"):
            mloop.log_metric("acc", "high")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="may only contain"):
            mloop.log_metric("bad\nname", 1.0)
        with pytest.raises(InvalidInput, match="step must be an integer"):
            mloop.log_metric("acc", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="does not fit in 64 bits"):
            mloop.log_metric("acc", 1.0, step=2**63)
        mloop.log_metric("nan", math.nan)
    with pytest.raises(InvalidInput, match="status"):
        mloop.end_run("DONE")


def test_artifacts_dict_text_figure_and_folders(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.txt").write_text("B")
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    with mloop.start_run() as run:
        mloop.log_dict({"classes": ["a", "b"]}, "meta/classes.json")
        mloop.log_dict({"k": 1}, "meta/config.yaml")
        mloop.log_text("hello", "hello.txt")
        mloop.log_artifact(single, "docs")
        mloop.log_artifacts(folder, "out")
        figure, axes = plt.subplots()
        axes.plot([1, 2, 3])
        mloop.log_figure(figure, "plots/curve.png")
        plt.close(figure)
        with pytest.raises(UnsafePath):
            mloop.log_text("x", "../../escape.txt")
        with pytest.raises(InvalidInput, match="ending"):
            mloop.log_figure(figure, "plots/curve.bmpx")
    client = mloop.MloopClient(mloop.get_tracking_uri())
    rid = run.info.run_id
    top = {a.path for a in client.list_artifacts(rid)}
    assert {"meta", "hello.txt", "docs", "out", "plots"} <= top
    got = Path(client.download_artifacts(rid, "meta/classes.json", tmp_path / "dl"))
    assert json.loads(got.read_text()) == {"classes": ["a", "b"]}
    tree = Path(client.download_artifacts(rid, "out", tmp_path / "tree"))
    assert (tree / "a.txt").read_text() == "A"
    assert (tree / "sub" / "b.txt").read_text() == "B"
    png = Path(client.download_artifacts(rid, "plots/curve.png", tmp_path / "png"))
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "k: 1" in Path(client.download_artifacts(rid, "meta/config.yaml", tmp_path)).read_text()
    with pytest.raises(NotFound):
        client.download_artifacts(rid, "missing.txt", tmp_path)


def test_search_runs_by_experiment_name_and_as_a_frame() -> None:
    mloop.set_experiment("search")
    for i, model in enumerate(["rf", "lr", "rf"]):
        with mloop.start_run(run_name=f"r{i}"):
            mloop.log_param("model", model)
            mloop.log_metric("acc", 0.8 + i / 100)
    runs = mloop.search_runs(
        experiment_names=["search"],
        filter_string="params.model = 'rf' and metrics.acc > 0.5",
        order_by=["metrics.acc DESC"],
    )
    assert isinstance(runs, list)
    assert [r.info.run_name for r in runs] == ["r2", "r0"]
    frame = mloop.search_runs(experiment_names=["search"], output_format="pandas")
    assert sorted(frame["params.model"]) == ["lr", "rf", "rf"]
    assert "metrics.acc" in frame.columns
    with pytest.raises(NotFound, match="nope"):
        mloop.search_runs(experiment_names=["nope"])


def test_inputs_become_lineage() -> None:
    with mloop.start_run() as run:
        mloop.log_input("iris@1", context="training")
    client = mloop.MloopClient(mloop.get_tracking_uri())
    inputs = client.backend.get_inputs(run.info.run_id)
    assert [(i.ref, i.context) for i in inputs] == [("iris@1", "training")]


def test_seed_is_recorded_on_the_run() -> None:
    mloop.seed_everything(7)
    with mloop.start_run() as run:
        pass
    assert mloop.get_run(run.info.run_id).data.tags["mloop.seed"] == "7"
