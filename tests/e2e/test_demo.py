"""``mloop demo``: trains and tracks real scikit-learn models, as a new user would first see."""

from __future__ import annotations

import pytest

import mloop
from mloop.cli import main
from mloop.demo import run_demo
from mloop.tracking import MloopClient


def test_quick_demo_tracks_finished_runs_with_curves_and_figures() -> None:
    runs = run_demo(quick=True)
    assert len(runs) >= 3
    client = MloopClient()
    f1s = [run.data.metrics["f1"] for run in runs]
    assert f1s == sorted(f1s, reverse=True)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["model"] in {
            "logistic_regression",
            "random_forest",
            "gradient_boosting",
        }
        assert 0.8 < run.data.metrics["f1"] <= 1.0
        history = mloop.get_metric_history(run.info.run_id, "cv_f1")
        assert len(history) > 1
        assert [m.step for m in history] == list(range(len(history)))
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/confusion_matrix.png" in figures
        assert "classification_report.json" in {
            a.path for a in client.list_artifacts(run.info.run_id)
        }
    boosted = next(r for r in runs if r.data.params["model"] == "gradient_boosting")
    assert len(mloop.get_metric_history(boosted.info.run_id, "test_log_loss")) > 1


def test_cli_quick_demo_prints_the_ranking(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "best F1 first" in out
    assert "logreg-C1" in out
    assert "forest-20x3" in out
    assert "Runs are stored in" in out
    assert len(mloop.search_runs(experiment_names=["demo"])) >= 3
