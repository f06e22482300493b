"""Stage 6: new labelled data, and the agent's tick retrains because the skew alert fired.

The drifted requests and the outcomes their clients reported back are registered as the
data set's next version (its provenance names the deployment and window they came from).
Then one ``mloop.agent.tick`` — what ``mloop agent run`` does every few seconds — claims the
alert's event for the retraining trigger and runs its pipeline: validate → train →
evaluate against the champion with the gate → register → sign → start the rollout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from mloop.demo._automation import TRIGGER
from mloop.demo._gate import EVALUATED_SLICES, RETRAIN_GATE, show_report
from mloop.demo._logs import logged_applicants
from mloop.demo._population import FEATURES, LABEL
from mloop.demo._state import DATASET, DEPLOYMENT, DemoResult
from mloop.demo._training import MODEL_NAME
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.agent import Firing
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator
    from mloop.registry import ModelVersion


class RetrainingFailed(MloopError):
    """The retraining pipeline failed (not refused by its gate): the demo cannot go on."""


def register_new_data(narrator: Narrator, result: DemoResult) -> DatasetVersion:
    """The labelled requests of the drifted window, as the data set's next version."""
    from mloop import data

    start, end = result.window_ms["after drift"]
    served = logged_applicants(DEPLOYMENT, start, end)
    labelled = served[served[LABEL].notna()]
    frame = labelled[[*FEATURES, LABEL]].copy()
    frame[LABEL] = frame[LABEL].astype(int)
    # Answers reach the log in whatever order the clients' requests finished: sorted,
    # the same requests always make the same version (digest, split, model and verdict).
    frame = frame.sort_values([*FEATURES, LABEL], kind="stable").reset_index(drop=True)
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
    first = data.get_dataset_version(result.datasets[0]).to_pandas(columns=[LABEL])
    narrator.say(
        f"registered [bold]{version.ref}[/]: {version.num_rows} labelled requests from the "
        f"prediction and feedback logs (default rate {frame[LABEL].mean():.0%}, was "
        f"{first[LABEL].mean():.0%} in {result.datasets[0]})"
    )
    return version


def retrain(narrator: Narrator, result: DemoResult, home: DemoHome) -> ModelVersion | None:
    """Stage 6; the new model version, or ``None`` when the gate refused the candidate."""
    from mloop import agent, registry

    narrator.stage(
        6,
        "Retrain on the new labelled data; gate against the champion",
        "The outcomes that came back as feedback are fresh training data. The agent's tick "
        "sees the skew alert and runs the retraining pipeline; the candidate must beat the "
        "champion before it may take any traffic.",
    )
    new_data = register_new_data(narrator, result)
    with narrator.progress("agent tick: retraining pipeline", 1) as advance:
        report = agent.tick()
        advance(1)
    for error in report.errors:
        narrator.say(f"[red]agent error[/] {error}")
    firings = [f for f in report.firings if f.trigger == TRIGGER]
    if not firings:
        raise RetrainingFailed(
            f"the agent's tick did not fire trigger {TRIGGER} for the skew alert "
            f"({'; '.join(report.errors) or 'no error reported'}); see `mloop triggers "
            f"history {TRIGGER}`"
        )
    firing = firings[0]
    narrator.say(
        f"trigger [bold]{firing.trigger}[/] fired on {firing.event_key} → pipeline execution "
        f"{firing.execution_id}: [bold]{firing.status}[/]"
        + (f" — {firing.reason}" if firing.reason else "")
    )
    _show_execution(narrator, firing)
    if firing.status == "stopped":
        result.gate_passed = False
        result.gate_reasons = [firing.reason or "stopped"]
        narrator.say("the champion stays; nothing is registered or rolled out")
        return None
    if firing.status != "succeeded":
        raise RetrainingFailed(
            f"the retraining pipeline {firing.status}: {firing.reason}; see `mloop pipeline "
            f"show {firing.execution_id}`"
        )
    result.gate_passed = True
    version = registry.resolve(MODEL_NAME, "latest")
    result.candidate = f"{version.name}:{version.version}"
    narrator.say(
        f"registered and signed [bold]{version.name}:{version.version}[/] (run "
        f"{version.run_id}, trained on {', '.join(version.dataset_versions)}); its rollout "
        "has started"
    )
    _show_evaluation(narrator, result, home, version, new_data)
    return version


def _show_execution(narrator: Narrator, firing: Firing) -> None:
    from mloop import pipelines

    if firing.execution_id is None:
        return
    execution = pipelines.get_execution(firing.execution_id)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("  step")
    table.add_column("status")
    table.add_column("run")
    for step in execution.steps:
        status = step.status + (" (cached)" if step.cached else "")
        table.add_row(f"  {step.name}", status, step.run_id or "")
    narrator.show(table)


def _show_evaluation(
    narrator: Narrator,
    result: DemoResult,
    home: DemoHome,
    version: ModelVersion,
    new_data: DatasetVersion,
) -> None:
    """The blessing the pipeline recorded, and its comparison as a report to read."""
    from mloop import evaluation
    from mloop.agent._retrain import split

    blessing = evaluation.get_blessing(version.name, version.version)
    if blessing is not None:
        narrator.say(
            f"blessing of {version.name}:{version.version} by gate "
            f"{blessing.gate_name or RETRAIN_GATE + ' (rules pinned by the pipeline)'}: "
            f"{'blessed' if blessing.blessed else 'refused'} against {blessing.baseline} "
            f"(evaluation {blessing.evaluation_id})"
        )
    # The pipeline keeps its verdict in the store; the page to read is rendered here from
    # the same holdout rows, models and gate (not recorded a second time).
    _, holdout = split(new_data, 0.25, 0)
    report = evaluation.evaluate(
        version.uri,
        data=holdout,
        label=LABEL,
        baseline=blessing.baseline if blessing is not None else None,
        slices=EVALUATED_SLICES,
        gate=RETRAIN_GATE,
        record=False,
    )
    show_report(narrator, report)
    path = report.write_html(home.reports / "evaluation-retrained.html")
    result.reports["evaluation (retrained vs champion)"] = path
    narrator.say(f"evaluation report: {path}")
