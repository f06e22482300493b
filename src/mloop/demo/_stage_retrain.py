"""Stage 6: retrain on the new labelled data and gate the result against the champion.

The drifted requests and the outcomes their clients reported back are registered as the
data set's next version (its provenance names the deployment and window they came from).
The retraining chain — validate, train, evaluate against the champion, register, sign —
is the ready-made one in ``mloop.agent`` fired by a trigger on the agent's tick when that
is installed; otherwise the demo runs the same steps itself and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop.demo._gate import gate
from mloop.demo._logs import logged_applicants
from mloop.demo._population import FEATURES, LABEL
from mloop.demo._stage_model import _say_gate, holdout, register_and_sign, train
from mloop.demo._state import DATASET, DEPLOYMENT, DemoResult, DemoSize
from mloop.demo._training import MODEL_NAME

if TYPE_CHECKING:
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator
    from mloop.registry import ModelVersion


def register_new_data(narrator: Narrator, result: DemoResult, home: DemoHome) -> DatasetVersion:
    """The labelled requests of the drifted window, as the data set's next version."""
    from mloop import data

    start, end = result.window_ms["after drift"]
    served = logged_applicants(DEPLOYMENT, start, end)
    labelled = served[served[LABEL].notna()]
    frame = labelled[[*FEATURES, LABEL]].reset_index(drop=True)
    frame[LABEL] = frame[LABEL].astype(int)
    version = data.register(
        DATASET,
        frame,
        description="drifted requests with the outcomes their clients reported",
        provenance={
            "source": "prediction log + feedback",
            "deployment": DEPLOYMENT,
            "window_ms": [start, end],
        },
    )
    result.datasets.append(version.ref)
    narrator.say(
        f"registered [bold]{version.ref}[/]: {version.num_rows} labelled requests from the "
        f"prediction log (default rate {frame[LABEL].mean():.0%}, was "
        f"{_default_rate(result.datasets[0]):.0%} in {result.datasets[0]})"
    )
    return version


def retrain(
    narrator: Narrator, result: DemoResult, size: DemoSize, home: DemoHome
) -> ModelVersion | None:
    """Stage 6: new data → candidates → gate vs the champion → register and sign.
    Returns the new version, or ``None`` when the gate refused every candidate."""
    narrator.stage(
        6,
        "Retrain on the new labelled data; gate against the champion",
        "The outcomes that came back as feedback are fresh training data; a new model "
        "must beat the champion on it before it may take any traffic.",
    )
    new_data = register_new_data(narrator, result, home)
    narrator.missing(
        "retraining trigger (mloop.agent triggers) and pipeline (mloop.pipelines)",
        "the demo runs the retraining steps itself: train, gate, register, sign",
    )
    trained = train(narrator, size, new_data, tag="retraining")
    best = trained[0]
    result.candidate = f"run {best.run_id} ({best.candidate.name})"
    outcome = gate(
        narrator,
        best.model.model_uri,
        holdout(new_data.to_pandas()),
        baseline_uri=f"models:/{MODEL_NAME}@champion",
        report_dir=home.reports,
        name="retrained",
    )
    result.gate_passed = outcome.passed
    result.gate_reasons = outcome.reasons
    _say_gate(narrator, result, best.candidate.name, outcome, "retrained vs champion")
    if not outcome.passed:
        narrator.say("the champion stays; nothing is registered or rolled out")
        return None
    return register_and_sign(narrator, result, home, best)


def _default_rate(ref: str) -> float:
    from mloop import data

    frame = data.get_dataset_version(ref).to_pandas(columns=[LABEL])
    return float(frame[LABEL].mean())
