"""The ready-made retraining pipeline on a small scikit-learn dataset, through a real
trigger: the first model is validated, trained, gated, registered and signed; a worse
candidate is stopped by the gate with its reasons; anomalous data stops before training;
a rerun on the same data reuses the cached steps; missing configuration fails clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import mloop.data
from mloop.agent._retrain import load_function
from mloop.agent._triggers import fire_trigger, list_firings, run_due, save_trigger
from mloop.data import DatasetVersion
from mloop.errors import InvalidInput
from mloop.evaluation import get_blessing
from mloop.models import generate_signing_key, verify_signature
from mloop.pipelines import run
from mloop.registry import get_model_version, list_model_versions, set_alias

HERE = "tests.unit.agent.test_retrain"
PIPELINE = "mloop.agent:retraining_pipeline"  # the public reference users write
T0 = 1_800_000_000_000


def train_logistic(rows: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
    """The user's trainer: a DataFrame with the label in, a fitted model out."""
    x, y = rows.drop(columns=["target"]), rows["target"]
    return LogisticRegression(C=c, max_iter=1000).fit(x, y)


def train_from_version(dataset: DatasetVersion) -> LogisticRegression:
    """A trainer that asks for the dataset version itself."""
    return train_logistic(dataset.to_pandas())


def _cancer(rows: int = 300) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame[["mean radius", "mean texture", "mean smoothness", "worst area", "target"]]
    frame.columns = ["radius", "texture", "smoothness", "area", "target"]
    return frame.sample(n=rows, random_state=0).reset_index(drop=True)


@pytest.fixture
def setup(sqlite_db: str, tmp_path: Path) -> dict[str, Any]:
    key, public = generate_signing_key(tmp_path / "keys")
    gate = tmp_path / "gate.yaml"
    gate.write_text("metric: roc_auc\nmin_improvement: 0.0\nthresholds:\n  accuracy: {min: 0.8}\n")
    params = {
        "data": "cancer@latest",
        "trainer": f"{HERE}:train_logistic",
        "label": "target",
        "model_name": "cancer",
        "gate": str(gate),
        "signing_key": str(key),
    }
    return {"params": params, "public": public, "tmp": tmp_path}


def test_a_new_version_retrains_and_a_worse_candidate_is_stopped_by_the_gate(
    setup: dict[str, Any],
) -> None:
    mloop.data.register("cancer", _cancer())
    save_trigger(
        {
            "name": "retrain",
            "pipeline": PIPELINE,
            "params": setup["params"],
            "on": {"dataset": "cancer"},
        },
        now_ms=T0,
    )
    first = fire_trigger("retrain", now_ms=T0 + 1)  # v1 existed before: fired by hand
    assert (first.status, first.reason, first.params["data"]) == ("succeeded", None, "cancer@1")
    version = get_model_version("cancer", 1)
    assert version.source.startswith("runs:/")
    assert version.tags["mloop.retrain.dataset"] == "cancer@1"
    blessing = get_blessing("cancer", 1)
    assert blessing is not None
    assert blessing.blessed
    signed = verify_signature("models:/cancer/1", [setup["public"]])
    assert signed.key_id
    set_alias("cancer", "champion", 1)

    # labels scrambled: the new candidate is far worse than the champion
    bad = _cancer()
    bad["target"] = np.random.default_rng(1).permutation(bad["target"].to_numpy())
    mloop.data.register("cancer", bad)
    (stopped,) = run_due(now_ms=T0 + 60_000)
    assert (stopped.event_key, stopped.status) == ("dataset:cancer@2", "stopped")
    assert stopped.reason is not None
    assert "the gate refused runs:/" in stopped.reason
    assert "is below the threshold 0.8" in stopped.reason  # the gate's own words
    assert [v.version for v in list_model_versions("cancer")] == [1]  # nothing registered
    assert [f.status for f in list_firings("retrain")] == ["stopped", "succeeded"]


def test_anomalous_data_stops_before_training(setup: dict[str, Any]) -> None:
    mloop.data.register("cancer", _cancer())
    shifted = _cancer()
    shifted["area"] = shifted["area"] * 100  # a unit change upstream
    mloop.data.register("cancer", shifted)
    execution = run(PIPELINE, setup["params"])
    assert execution.status == "stopped"
    assert execution.reason is not None
    assert "cancer@2 fails validation against the schema inferred from cancer@1" in execution.reason
    assert "area" in execution.reason
    ran = {s.name: s.status for s in execution.steps}
    assert ran["validate_data"] == "stopped"
    assert "train_candidate" not in ran or ran["train_candidate"] != "succeeded"
    warned = run(PIPELINE, {**setup["params"], "validation": "warn"})
    assert warned.status == "succeeded"


def test_a_rerun_on_the_same_data_reuses_cached_steps(setup: dict[str, Any]) -> None:
    mloop.data.register("cancer", _cancer())
    params = {**setup["params"], "trainer": f"{HERE}:train_from_version", "holdout": 0.3}
    first = run(PIPELINE, params)
    assert first.status == "succeeded"
    again = run(PIPELINE, params)
    assert again.status == "succeeded"
    cached = {s.name: s.cached for s in again.steps}
    assert cached["resolve_inputs"] is False  # pins "latest" and the champion every time
    assert cached["train_candidate"] is True
    assert cached["register_candidate"] is True
    assert [v.version for v in list_model_versions("cancer")] == [1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gate": None}, "needs a gate to judge the candidate"),
        ({"signing_key": None}, "no signing key is set: pass params.signing_key"),
        ({"trainer": f"{HERE}:no_such_function"}, "has no function 'no_such_function'"),
        ({"label": "outcome"}, "label 'outcome' is not a column of cancer@1"),
        ({"validation": "strict"}, "validation 'strict' is not one of error, warn, off"),
        ({"holdout": 1.5}, "holdout 1.5 must be a share between 0 and 1"),
    ],
)
def test_bad_configuration_fails_with_what_to_do(
    setup: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    mloop.data.register("cancer", _cancer(120))
    params = {k: v for k, v in {**setup["params"], **change}.items() if v is not None}
    execution = run(PIPELINE, params)
    assert execution.status == "failed"
    assert execution.reason is not None
    assert message in execution.reason


def test_unsigned_publishing_must_be_asked_for(setup: dict[str, Any]) -> None:
    mloop.data.register("cancer", _cancer(120))
    params = {k: v for k, v in setup["params"].items() if k != "signing_key"}
    execution = run(PIPELINE, {**params, "sign": False})
    assert execution.status == "succeeded"
    assert get_model_version("cancer", 1).version == 1


def test_the_signing_key_can_come_from_the_settings(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mloop.data.register("cancer", _cancer(120))
    monkeypatch.setenv("MLOOP_SIGNING_KEY", setup["params"]["signing_key"])
    params = {k: v for k, v in setup["params"].items() if k != "signing_key"}
    execution = run(PIPELINE, params)
    assert execution.status == "succeeded", execution.reason
    result = execution.output("output")
    assert (result["version"], result["signed"]) == (1, True)


@pytest.mark.parametrize("sensitive", [["group"], None], ids=["sensitive given", "none"])
def test_a_fairness_gate_judges_the_sensitive_features_it_is_given(
    setup: dict[str, Any], sensitive: list[str] | None
) -> None:
    frame = _cancer(200)
    frame.insert(0, "group", (frame["radius"] > frame["radius"].median()).astype(int))
    mloop.data.register("cancer", frame)
    gate = setup["tmp"] / "fair.yaml"
    gate.write_text("metric: roc_auc\nfairness:\n  max_demographic_parity_difference: 1.0\n")
    params = {**setup["params"], "gate": str(gate), "sensitive": sensitive}
    execution = run(PIPELINE, params)
    if sensitive:
        assert execution.status == "succeeded", execution.reason
    else:  # a fairness rule with nothing to judge it on refuses: fail closed
        assert execution.status == "stopped"
        assert "fairness" in (execution.reason or "")


def test_trainer_references_are_checked() -> None:
    assert load_function(f"{HERE}:train_logistic") is train_logistic
    with pytest.raises(InvalidInput, match="cannot import no_such_module"):
        load_function("no_such_module:train")
    with pytest.raises(InvalidInput, match=r"'package\.module:function'"):
        load_function("train_logistic")


def test_a_blessed_candidate_starts_its_rollout(setup: dict[str, Any]) -> None:
    from mloop.agent import get_rollout
    from mloop.pipelines import get_execution
    from mloop.serving import create_deployment, get_deployment

    mloop.data.register("cancer", _cancer())
    params = {**setup["params"], "data": "cancer@1"}
    assert run(PIPELINE, params).status == "succeeded"
    set_alias("cancer", "champion", 1)
    create_deployment("cancer", {"members": [{"model": "cancer", "version": 1}]})
    fresh = load_breast_cancer(as_frame=True).frame.sample(n=300, random_state=7)
    fresh = fresh[["mean radius", "mean texture", "mean smoothness", "worst area", "target"]]
    fresh.columns = ["radius", "texture", "smoothness", "area", "target"]
    mloop.data.register("cancer", fresh.reset_index(drop=True))
    gate = setup["tmp"] / "loose.yaml"
    gate.write_text("metric: roc_auc\nmin_improvement: -0.05\n")
    execution = run(
        PIPELINE,
        {**setup["params"], "gate": str(gate), "deployment": "cancer", "plan": None},
    )
    assert execution.status == "succeeded", execution.reason
    result = get_execution(execution.id).output("output")
    assert (result["model"], result["version"], result["signed"]) == ("cancer", 2, True)
    rollout = get_rollout(result["rollout"])
    assert (rollout.deployment, rollout.candidate_model, rollout.candidate_version) == (
        "cancer",
        "cancer",
        2,
    )
    assert (rollout.primary_version, rollout.state) == (1, "running")
    members = get_deployment("cancer").spec.members
    assert [(m.version, m.role) for m in members] == [(1, "primary"), (2, "shadow")]


def test_a_separate_evaluation_dataset_is_pinned_and_used(setup: dict[str, Any]) -> None:
    frame = _cancer(400)
    mloop.data.register("cancer", frame.iloc[:250].reset_index(drop=True))
    mloop.data.register("cancer-eval", frame.iloc[250:].reset_index(drop=True))
    execution = run(PIPELINE, {**setup["params"], "eval_data": "cancer-eval@latest"})
    assert execution.status == "succeeded", execution.reason
    blessing = get_blessing("cancer", 1)
    assert blessing is not None
    assert blessing.data == "cancer-eval@1"
