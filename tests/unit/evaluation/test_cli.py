"""`mloop evaluate` and `mloop gates`, run in-process: exit 0 blessed (or no gate), 1
refused, 2 bad input (one error line); reports written; a required blessing enforced by
`mloop models alias`. Models are logged with ``mloop.log_model`` and data registered as
a dataset version, as users do."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import mloop
from tests.unit.cli.helpers import one_error_line, run_cli
from tests.unit.evaluation.conftest import FEATURES, fit

GATE = "metric: roc_auc\nmin_improvement: 0.0\nslices: {min_rows: 30, max_regression: 0.2}\n"


@pytest.fixture
def logged(adult: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``adult`` v1 (good) and v2 (weak) logged and registered, the data as ``census@1``,
    and a gate file; returns the working folder."""
    monkeypatch.setenv("MLOOP_USER", "ada")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    for kind in ("good", "weak"):
        with mloop.start_run():
            mloop.log_model(
                fit(kind, adult),
                "model",
                input_example=adult[FEATURES].head(3),
                registered_model_name="adult",
            )
    mloop.data.register("census", adult.head(600))
    (tmp_path / "gate.yaml").write_text(GATE)
    return tmp_path


def _evaluate(
    capsys: pytest.CaptureFixture[str], candidate: str, baseline: str, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        "evaluate",
        "--candidate",
        candidate,
        "--baseline",
        baseline,
        "--data",
        "census@1",
        "--label",
        "income",
        "--slice",
        "sex",
        "--slice",
        "sex*age_bucket",
        "--resamples",
        "20",
        *extra,
    )


def test_a_blessed_candidate_exits_0_and_writes_both_reports(
    capsys: pytest.CaptureFixture[str], logged: Path
) -> None:
    code, out, err = _evaluate(
        capsys,
        "models:/adult/1",
        "models:/adult/2",
        "--gate",
        "gate.yaml",
        "--sensitive",
        "sex",
        "--html",
        "report.html",
        "--json",
        "report.json",
    )
    assert code == 0, err
    assert out.startswith("BLESSED  models:/adult/1 vs models:/adult/2 on census@1 (600 rows)")
    assert "sex=F" in out
    assert "age_bucket=<30" in out
    assert "fairness across sex" in out
    document = json.loads((logged / "report.json").read_text())
    assert document["verdict"] == "blessed"
    assert document["data"] == "census@1"
    assert document["candidate"]["model"] == "adult"
    assert document["candidate"]["version"] == 1
    page = (logged / "report.html").read_text()
    assert page.count("<svg") == 4
    assert "Confusion matrix" in page
    assert "ROC curve" in page


def test_a_refused_candidate_exits_1_with_the_reasons(
    capsys: pytest.CaptureFixture[str], logged: Path
) -> None:
    code, out, _ = _evaluate(capsys, "models:/adult/2", "models:/adult/1", "--gate", "gate.yaml")
    assert code == 1
    assert out.startswith("REFUSED")
    assert "✗ roc_auc: candidate" in out
    code, out, _ = run_cli(capsys, "gates", "blessing", "adult", "2")
    assert code == 1
    assert "REFUSED  adult version 2" in out


def test_json_on_stdout_is_the_report_alone(
    capsys: pytest.CaptureFixture[str], logged: Path
) -> None:
    code, out, _ = _evaluate(
        capsys, "models:/adult/1", "models:/adult/2", "--json", "-", "--no-record"
    )
    assert code == 0
    document = json.loads(out)
    assert document["verdict"] == "no gate"
    assert len(document["slices"]) >= 2
    code, out, _ = run_cli(capsys, "gates", "history", "adult", "--json")
    assert json.loads(out) == []  # --no-record stored nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--label", "salary"), "label column 'salary' is not in the data"),
        (("--gate", "typo.yaml"), "gate file typo.yaml does not exist"),
        (("--gate", "nonexistent-gate"), "gate 'nonexistent-gate' does not exist"),
        (("--backdoor-trigger", "tenure"), "is not COLUMN=VALUE"),
        (("--slice", "sex*"), "has an empty or invalid column name"),
        (("--confidence", "2"), "confidence must be between 0 and 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    adult: pd.DataFrame,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    """Refused before any model is loaded: no model needs to exist."""
    adult.head(50).to_csv(tmp_path / "adult.csv", index=False)
    code, _, err = run_cli(
        capsys,
        "evaluate",
        "--candidate",
        "models:/adult/1",
        "--data",
        "adult.csv",
        "--label",
        "income",
        "--resamples",
        "5",
        *args,
    )
    assert code == 2
    assert message in one_error_line(err)


def test_gates_and_a_required_blessing_through_the_cli(
    capsys: pytest.CaptureFixture[str], logged: Path
) -> None:
    code, out, err = run_cli(capsys, "gates", "save", "release", "gate.yaml")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "gates", "show", "release")
    assert out.startswith("metric: roc_auc\n")
    code, out, _ = run_cli(capsys, "gates", "list", "--json")
    assert json.loads(out)["release"]["min_improvement"] == 0.0
    code, out, _ = run_cli(
        capsys, "gates", "require", "adult", "--alias", "champion", "--gate", "release"
    )
    assert code == 0
    assert "@champion need a blessed version by gate release" in out
    code, _, err = run_cli(capsys, "models", "alias", "adult", "champion", "1")
    assert code == 2
    line = one_error_line(err)
    assert "no evaluation yet of version 1 by gate 'release'" in line
    assert "mloop evaluate --candidate models:/adult/1" in line
    code, _, _ = _evaluate(capsys, "models:/adult/1", "models:/adult/2", "--gate", "release")
    assert code == 0
    code, _, err = run_cli(capsys, "models", "alias", "adult", "champion", "1")
    assert code == 0, err
    code, _, err = run_cli(capsys, "gates", "delete", "release")
    assert code == 2
    assert "required for blessings of adult" in one_error_line(err)
    code, out, _ = run_cli(capsys, "gates", "require", "adult", "--off")
    assert code == 0
    assert "no blessing required" in out
    code, _, _ = run_cli(capsys, "gates", "delete", "release")
    assert code == 0
