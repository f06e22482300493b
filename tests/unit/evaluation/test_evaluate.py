"""``evaluate`` end to end on real scikit-learn packages and an adult-like frame: every
figure checked against an independent computation (scikit-learn, pandas), every gate
rule made to refuse by a model that deserves it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mloop.errors import InvalidInput
from mloop.evaluation import GateSpec, evaluate
from tests.unit.evaluation.conftest import FEATURES, TRIGGER, fit

SLICES = ["sex", "age_bucket", "sex*age_bucket"]


def _run(
    packages: dict[str, Path],
    adult: pd.DataFrame,
    candidate: str,
    baseline: str | None = "weak",
    **kw: object,
):  # type: ignore[no-untyped-def]
    kw.setdefault("record", False)
    kw.setdefault("resamples", 100)
    return evaluate(
        str(packages[candidate]),
        data=adult,
        label="income",
        baseline=None if baseline is None else str(packages[baseline]),
        **kw,  # type: ignore[arg-type]
    )


def test_overall_and_per_slice_metrics_match_scikit_learn(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    report = _run(packages, adult, "good", slices=SLICES)
    model = fit("good", adult)
    predicted = model.predict(adult[FEATURES])
    proba = model.predict_proba(adult[FEATURES])[:, 1]
    assert report.task == "classification"
    assert report.classes == [0, 1]
    assert report.overall["accuracy"].value == pytest.approx(
        skm.accuracy_score(adult.income, predicted)
    )
    assert report.overall["roc_auc"].value == pytest.approx(skm.roc_auc_score(adult.income, proba))
    weak = fit("weak", adult).predict(adult[FEATURES])
    assert report.baseline_overall is not None
    assert report.baseline_overall["f1"].value == pytest.approx(skm.f1_score(adult.income, weak))
    counts = adult.groupby(["sex", "age_bucket"]).size()
    for (sex, bucket), count in counts.items():
        found = report.slice(f"sex={sex} & age_bucket={bucket}")
        rows = (adult.sex == sex) & (adult.age_bucket == bucket)
        assert found.count == count
        assert found.share == pytest.approx(count / len(adult))
        assert found.metrics["f1"].value == pytest.approx(
            skm.f1_score(adult.income[rows], predicted[rows])
        )
        assert found.metrics["f1"].low <= found.metrics["f1"].value <= found.metrics["f1"].high
    for spec in SLICES:
        assert sum(s.count for s in report.slices if s.spec == spec) == len(adult)
    assert report.blessed is None
    assert report.reasons == []
    assert report.verdict == "no gate"


def test_rare_slices_are_reported_and_marked_not_hidden(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    report = _run(packages, adult, "good", slices=["sex*age_bucket"], min_slice_rows=200)
    rare = [s for s in report.slices if s.rare]
    assert rare
    assert all(s.count < 200 for s in rare)
    assert len(report.slices) == adult.groupby(["sex", "age_bucket"]).ngroups
    assert all(s.count >= 200 for s in report.slices if not s.rare)


def test_the_improvement_rule_blesses_the_better_model_and_refuses_the_worse(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    gate = GateSpec(metric="roc_auc", min_improvement=0.01)
    assert _run(packages, adult, "good", "weak", gate=gate).blessed is True
    refused = _run(packages, adult, "weak", "good", gate=gate)
    assert refused.blessed is False
    [reason] = refused.reasons
    assert reason.startswith("roc_auc: candidate")
    assert "at least +0.01" in reason
    first = _run(packages, adult, "good", None, gate=gate)  # nothing to beat yet
    assert first.blessed is True
    assert "min_improvement not checked: no baseline" in first.notes
    strict = GateSpec(metric="roc_auc", min_improvement=0.0, require_baseline=True)
    assert _run(packages, adult, "good", None, gate=strict).blessed is False


def test_a_slice_that_regresses_is_named_in_the_refusal(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    gate = GateSpec.parse({"metric": "recall", "slices": {"min_rows": 50, "max_regression": 0.05}})
    report = _run(packages, adult, "unfair", "good", slices=["sex"], gate=gate)
    assert report.blessed is False
    assert any(r.startswith("slice sex=F (") and "recall" in r for r in report.reasons)
    assert not any("sex=M" in r for r in report.reasons)  # men were not harmed
    loose = GateSpec.parse(
        {"metric": "recall", "slices": {"min_rows": 10_000, "max_regression": 0.05}}
    )
    assert _run(packages, adult, "unfair", "good", slices=["sex"], gate=loose).blessed is True


def test_fairness_differences_match_a_pandas_computation_and_gate_the_unfair_model(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    gate = GateSpec.parse({"fairness": {"max_demographic_parity_difference": 0.1}})
    report = _run(packages, adult, "unfair", "good", sensitive=["sex"], gate=gate)
    said = pd.Series(fit("unfair", adult).predict(adult[FEATURES]))
    rates = said.groupby(adult.sex).mean()
    [fair] = report.fairness
    assert fair.demographic_parity_difference == pytest.approx(rates.max() - rates.min())
    tpr = said[adult.income == 1].groupby(adult.sex[adult.income == 1]).mean()
    fpr = said[adult.income == 0].groupby(adult.sex[adult.income == 0]).mean()
    expected = max(tpr.max() - tpr.min(), fpr.max() - fpr.min())
    assert fair.equalized_odds_difference == pytest.approx(expected)
    assert report.blessed is False
    assert report.reasons[0].startswith("fairness across sex: demographic-parity difference")
    unchecked = _run(packages, adult, "unfair", "good", gate=gate)  # no sensitive column given
    assert unchecked.blessed is False
    assert "could not be checked: no sensitive features" in unchecked.reasons[0]


def test_gaps_to_a_human_reference_are_weighted_by_share_and_ranked(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    reference = {"age_bucket=<30": 0.99, "age_bucket=30-49": 0.95, "age_bucket=50+": 0.90}
    report = _run(packages, adult, "good", slices=["age_bucket"], reference=reference)
    expected = []
    predicted = fit("good", adult).predict(adult[FEATURES])
    for key, human in reference.items():
        rows = adult.age_bucket == key.split("=")[1]
        behind = human - skm.accuracy_score(adult.income[rows], predicted[rows])
        expected.append((key, behind * rows.mean()))
    expected.sort(key=lambda pair: -pair[1])
    assert [p["slice"] for p in report.priorities] == [k for k, _ in expected]
    for got, (_, weighted) in zip(report.priorities, expected, strict=True):
        assert got["weighted_gap"] == pytest.approx(weighted)
    assert report.reference_source == "table"
    by_baseline = _run(packages, adult, "weak", "good", slices=["age_bucket"])
    assert by_baseline.reference_source == "baseline"
    assert all(p["gap"] >= 0 for p in by_baseline.priorities[:1])  # the weak model is behind


def test_robustness_reports_each_perturbation_and_the_gate_counts_the_chosen_ones(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    report = _run(packages, adult, "good", None, noise=0.5, missing=0.2)
    noise, missing = report.robustness
    assert noise.name == "noise"
    assert noise.error is None
    assert noise.drop == pytest.approx(noise.clean - (noise.perturbed or 0.0))
    assert missing.error is not None
    assert "missing values" in missing.error
    only_noise = GateSpec.parse({"robustness": {"max_drop": 0.5, "perturbations": ["noise"]}})
    assert _run(packages, adult, "good", None, gate=only_noise).blessed is True
    both = GateSpec.parse({"robustness": {"max_drop": 0.5}})
    refused = _run(packages, adult, "good", None, gate=both)
    assert refused.blessed is False
    assert "could not predict" in refused.reasons[0]
    none_run = _run(packages, adult, "good", None, gate=only_noise, noise=0.0)
    assert none_run.blessed is False
    assert "no such perturbation was run" in none_run.reasons[0]


def test_the_backdoor_probe_catches_a_poisoned_model(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    gate = GateSpec.parse({"backdoor": {"max_flip_rate": 0.1}})
    poisoned = _run(packages, adult, "poisoned", "good", gate=gate, backdoor_trigger=TRIGGER)
    clean = fit("poisoned", adult).predict(adult[FEATURES])
    stamped = fit("poisoned", adult).predict(adult[FEATURES].assign(**TRIGGER))
    assert poisoned.backdoor is not None
    assert poisoned.backdoor.flip_rate == pytest.approx(np.mean(clean != stamped))
    assert poisoned.backdoor.flip_rate > 0.3
    assert poisoned.backdoor.baseline_flip_rate is not None
    assert poisoned.backdoor.baseline_flip_rate < 0.1
    assert poisoned.blessed is False
    assert poisoned.reasons[0].startswith("backdoor: the trigger flips")
    assert _run(packages, adult, "good", None, gate=gate, backdoor_trigger=TRIGGER).blessed is True
    assert _run(packages, adult, "good", None, gate=gate).blessed is False  # no trigger given


def test_a_regression_model_gets_regression_metrics(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    from mloop.models import save_model

    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns=["target"])
    save_model(LinearRegression().fit(x, frame.target), tmp_path / "lin", input_example=x.head(3))
    save_model(DummyRegressor().fit(x, frame.target), tmp_path / "mean", input_example=x.head(3))
    gate = GateSpec.parse(
        {"metric": "rmse", "min_improvement": 5.0, "thresholds": {"r2": {"min": 0.3}}}
    )
    report = evaluate(
        str(tmp_path / "lin"),
        data=frame,
        label="target",
        baseline=str(tmp_path / "mean"),
        slices=["sex", "bmi"],
        gate=gate,
        record=False,
        resamples=50,
    )
    predicted = LinearRegression().fit(x, frame.target).predict(x)
    assert report.task == "regression"
    assert report.metric == "rmse"
    assert report.overall["mae"].value == pytest.approx(
        skm.mean_absolute_error(frame.target, predicted)
    )
    assert report.overall["r2"].value == pytest.approx(skm.r2_score(frame.target, predicted))
    assert report.blessed is True
    assert len([s for s in report.slices if s.spec == "bmi"]) == 4  # quartiles
    assert len(report.curves["scatter"]["actual"]) == len(frame)
    worse = GateSpec.parse({"metric": "rmse", "min_improvement": 100.0})
    refused = evaluate(
        str(tmp_path / "lin"),
        data=frame,
        label="target",
        baseline=str(tmp_path / "mean"),
        gate=worse,
        record=False,
        resamples=0,
    )
    assert refused.blessed is False
    assert "lower is better" in refused.reasons[0]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"label": "salary"}, "label column 'salary' is not in the data"),
        ({"slices": ["race"]}, "slice column 'race' is not in the data"),
        ({"sensitive": ["race"]}, "sensitive column 'race' is not in the data"),
        ({"metric": "mae"}, "metric(s) mae cannot be computed for this classification model"),
        ({"gate": {"metric": "r2"}}, "metric(s) r2 cannot be computed"),
        ({"gate": {"metrc": "f1"}}, "metrc: is not a gate field"),
        ({"positive_label": 7}, "positive label 7 is not a class"),
        ({"resamples": -1}, "resamples must be between 0 and"),
        ({"confidence": 1.5}, "confidence must be between 0 and 1"),
        ({"data": "adult"}, "is neither NAME@VERSION"),
        (
            {"backdoor_trigger": {"zip": 1}},
            "the backdoor trigger sets 'zip', which the model does not read",
        ),
    ],
)
def test_bad_requests_are_refused_with_what_to_fix(
    packages: dict[str, Path], adult: pd.DataFrame, kw: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"data": adult, "label": "income", "record": False, "resamples": 10}
    args.update(kw)
    with pytest.raises(InvalidInput) as raised:
        evaluate(str(packages["good"]), **args)  # type: ignore[arg-type]
    assert message in raised.value.message


def test_rows_without_a_label_are_left_out_and_said_so(
    packages: dict[str, Path], adult: pd.DataFrame
) -> None:
    holed = adult.astype({"income": "float64"})
    holed.loc[:9, "income"] = np.nan
    report = evaluate(
        str(packages["good"]),
        data=holed,
        label="income",
        record=False,
        resamples=0,
        task="classification",
    )
    assert report.rows == len(adult) - 10
    assert "10 rows without a label were left out" in report.notes


def test_json_and_html_reports_hold_the_figures_and_plots(
    packages: dict[str, Path], adult: pd.DataFrame, tmp_path: Path
) -> None:
    report = _run(
        packages,
        adult,
        "good",
        slices=["sex", "sex*age_bucket"],
        sensitive=["sex"],
        gate=GateSpec(metric="roc_auc", min_improvement=0.0),
        backdoor_trigger=TRIGGER,
    )
    document = json.loads(report.write_json(tmp_path / "out" / "r.json").read_text())
    assert document["verdict"] == "blessed"
    assert document["overall"]["candidate"]["f1"]["value"] == pytest.approx(
        report.overall["f1"].value
    )
    assert len(document["slices"]) == len(report.slices)
    assert (
        document["curves"]["confusion"]["matrix"]
        == skm.confusion_matrix(adult.income, fit("good", adult).predict(adult[FEATURES])).tolist()
    )
    page = report.write_html(tmp_path / "r.html").read_text()
    assert page.count("<svg") == 4  # slice bars, ROC, calibration, confusion matrix
    for caption in (
        "roc_auc per slice, with intervals",
        "ROC curve",
        "Calibration",
        "Confusion matrix",
    ):
        assert caption in page
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "BLESSED" in page
    assert "sex=F &amp; age_bucket=&lt;30" in page
    assert not math.isnan(report.overall["roc_auc"].value)


def test_multiclass_with_a_baseline_that_knows_fewer_classes(tmp_path: Path) -> None:
    """Probabilities are aligned by class, not by column: the baseline never saw class 2."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mloop.models import save_model

    frame = load_iris(as_frame=True).frame
    x = frame.drop(columns=["target"])
    seen = frame.target < 2
    full = LogisticRegression(max_iter=1000).fit(x, frame.target)
    partial = LogisticRegression(max_iter=1000).fit(x[seen], frame.target[seen])
    save_model(full, tmp_path / "full", input_example=x.head(3))
    save_model(partial, tmp_path / "partial", input_example=x.head(3))
    report = evaluate(
        str(tmp_path / "full"),
        data=frame,
        label="target",
        baseline=str(tmp_path / "partial"),
        sensitive=["petal width (cm)"],
        record=False,
        resamples=20,
        noise=0.0,
        missing=0.0,
    )
    assert report.classes == [0, 1, 2]
    assert report.positive_label is None
    assert report.overall["f1"].value == pytest.approx(
        skm.f1_score(frame.target, full.predict(x), average="macro")
    )
    assert report.baseline_overall is not None
    padded = np.column_stack([partial.predict_proba(x), np.zeros(len(x))])
    eps = np.finfo(np.float64).eps  # a class the baseline never predicts costs -log(eps)
    truth = np.clip(padded[np.arange(len(x)), frame.target], eps, 1 - eps)
    assert report.baseline_overall["log_loss"].value == pytest.approx(-np.log(truth).mean())
    assert report.baseline_overall["recall"].value == pytest.approx(
        skm.recall_score(frame.target, partial.predict(x), average="macro", labels=[0, 1, 2])
    )
    assert report.fairness == []
    assert "fairness is measured for binary classifiers; none computed" in report.notes
    assert len(report.curves["confusion"]["matrix"]) == 3
    assert report.curves["roc"]["candidate"] is None  # a ROC curve is drawn for two classes


def test_a_model_without_a_signature_reads_the_columns_it_was_fitted_on(
    adult: pd.DataFrame, tmp_path: Path
) -> None:
    from mloop.models import save_model

    save_model(fit("good", adult), tmp_path / "bare")  # no input example: no signature
    report = evaluate(
        str(tmp_path / "bare"),
        data=adult,
        label="income",
        slices=["sex"],
        record=False,
        resamples=0,
        noise=0.0,
        missing=0.0,
    )  # the string columns sex and age_bucket are in the data, not given to the model
    predicted = fit("good", adult).predict(adult[FEATURES])
    assert report.overall["accuracy"].value == pytest.approx(
        skm.accuracy_score(adult.income, predicted)
    )


def test_inside_a_tracked_run_the_metrics_and_verdict_go_to_that_run(
    packages: dict[str, Path], adult: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mloop

    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    with mloop.start_run() as run:
        report = _run(
            packages, adult, "good", gate=GateSpec(metric="roc_auc"), record=True, resamples=0
        )
    logged = mloop.get_run(run.info.run_id).data
    assert logged.metrics["eval_roc_auc"] == pytest.approx(report.overall["roc_auc"].value)
    assert logged.tags["mloop.evaluation"] == report.id
    assert logged.tags["mloop.evaluation.verdict"] == "blessed"


def test_a_bad_reference_is_refused_before_any_model_is_loaded(adult: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="slice 'F' is not 'column=value'"):
        evaluate("no/such/model", data=adult, label="income", reference={"F": 0.9}, record=False)
