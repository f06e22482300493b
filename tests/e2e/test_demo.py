"""``mloop demo --quick``: the whole loop, end to end, as a user runs it.

One run of the demo and then the stores it wrote are read back through the public API:
every outcome the demo reports must be what the stores recorded.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

import mloop
from mloop import agent, data, evaluation, monitoring, registry
from mloop.cli import main
from mloop.demo import run_demo
from mloop.serving import deployment_history, read_feedback, read_predictions

DATASET = "credit-applications"
MODEL = "credit-default"


def test_quick_demo_closes_the_loop_and_traces_a_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "demo-home"
    before_env = os.environ.get("MLOOP_HOME")
    before_cwd = os.getcwd()
    # Narrated to the captured stdout (shown when the test fails) and recorded.
    console = Console(file=sys.stdout, record=True, width=200)
    result = run_demo(console, home=home, quick=True)
    text = console.export_text()

    # The demo restored what it changed, and narrated every stage.
    assert os.environ.get("MLOOP_HOME") == before_env
    assert os.getcwd() == before_cwd
    for number in range(1, 9):
        assert re.search(rf"^{number}\. ", text, re.MULTILINE), f"stage {number} missing"
    assert "not yet available" not in text

    # Read back what the demo wrote, from its own home.
    monkeypatch.setenv("MLOOP_HOME", str(home))

    # 1. Data: two versions, the second made of served requests with their outcomes;
    #    validation caught the broken batch.
    assert result.datasets == [f"{DATASET}@1", f"{DATASET}@2"]
    v2 = data.get_dataset_version(f"{DATASET}@2")
    assert v2.provenance["source"] == "prediction log + feedback"
    assert result.anomalies_caught >= 2
    assert (home / "schema.yaml").read_text().startswith("#")

    # 2-3. The first model: gated (a stored blessing), signed under a policy that requires
    #      it, deployed.
    first = evaluation.get_blessing(MODEL, 1)
    assert first is not None
    assert first.blessed
    policy = registry.get_trust_policy(MODEL)
    assert policy is not None
    assert policy.require_signature
    assert deployment_history("credit")[0].reason == "first release"

    # 4. Real traffic was logged and labelled.
    predictions = read_predictions(None, "credit")
    answered = sum(report.answered for report in result.traffic.values())
    roles = predictions.column("role").to_pylist()
    assert sum(role != "shadow" for role in roles) == answered > 0
    assert read_feedback(None, "credit").num_rows == sum(
        report.labelled for report in result.traffic.values()
    )

    # 5. The drift: accuracy fell, and monitoring's skew rule fired on it (not before).
    before, after = result.traffic["before drift"], result.traffic["after drift"]
    assert before.accuracy is not None
    assert after.accuracy is not None
    assert after.accuracy < before.accuracy
    assert result.drift_detected
    skew_alerts = monitoring.list_alerts("credit", rule="credit-input-skew")
    assert len(skew_alerts) == 1
    assert skew_alerts[0].window_start_ms >= result.window_ms["after drift"][0]
    assert {"age", "debt_ratio"} <= set(result.drifted_features)

    # 6. The alert fired the retraining trigger once; its pipeline registered a blessed,
    #    signed version 2 trained on version 2 of the data.
    firings = agent.list_firings("credit-retrain-on-skew")
    assert [f.status for f in firings] == ["succeeded"]
    assert firings[0].event_key == f"alert:{skew_alerts[0].id}"
    assert result.gate_passed is True
    versions = registry.list_model_versions(MODEL)
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].dataset_versions == (f"{DATASET}@2",)
    second = evaluation.get_blessing(MODEL, 2)
    assert second is not None
    assert second.blessed
    assert mloop.load_model(f"models:/{MODEL}/2") is not None  # the signature verifies

    # 7. The rollout is recorded, each step a deployment revision with its reason.
    (rollout,) = agent.list_rollouts("credit")
    champion = registry.resolve(MODEL, "@champion").version
    story = _rollout_story(rollout.id, champion)
    assert rollout.candidate == f"{MODEL}:2"
    assert rollout.state in ("succeeded", "rolled_back"), story
    reasons = [d.reason or "" for d in deployment_history("credit")]
    assert any("shadow" in r for r in reasons[1:]), story
    if rollout.state == "succeeded":
        assert result.rollout_outcome == f"promoted {MODEL}:2", story
        assert champion == 2, story
    else:
        assert result.rollout_outcome is not None, story
        assert result.rollout_outcome.startswith("rolled back"), story
        assert champion == 1, story
    assert result.champion == f"{MODEL}:{champion}", story

    # 8. Lineage: the last answer, back to its data version and the project's commit.
    lineage = result.lineage
    assert lineage is not None
    assert lineage.request_id == list(result.traffic.values())[-1].request_ids[-1]
    assert lineage.deployment == "credit"
    assert lineage.revision == len(reasons)
    assert f"{lineage.model}:{lineage.version}" == result.champion
    assert lineage.run_id == registry.get_model_version(MODEL, lineage.version).run_id
    assert result.commit is not None
    assert re.fullmatch(r"[0-9a-f]{40}", result.commit)
    assert lineage.commit == result.commit
    assert [d.ref for d in lineage.datasets] == [f"{DATASET}@{lineage.version}"]
    assert lineage.commit in text
    assert f"{DATASET}@{lineage.version}" in text

    # Reports exist where the demo said: two evaluations, monitoring, drift.
    assert len(result.reports) == 4
    for path in result.reports.values():
        assert path.is_file()
        assert path.read_text().lstrip().lower().startswith("<!doctype html")


def _rollout_story(rollout_id: str, champion: int) -> str:
    """What a failed assertion on the rollout prints: its state and reason, every event,
    the alias moves in the audit log, and where @champion points."""
    rollout = agent.get_rollout(rollout_id)
    lines = [
        f"rollout {rollout.id}: {rollout.state} ({rollout.reason}); @champion -> {champion}",
        f"target {rollout.target}, last check {rollout.last_check}",
    ]
    for event in agent.rollout_events(rollout_id):
        lines.append(f"  #{event.seq} {event.kind} at {event.at_ms}: {event.message}")
        if event.detail.get("check"):
            lines.append(f"      check: {event.detail['check']}")
    for entry in reversed(registry.list_audit_log(target=f"model:{MODEL}@champion")):
        lines.append(f"  audit {entry.action} by {entry.actor}: {entry.before} -> {entry.after}")
    return "\n".join(lines)


def test_cli_refuses_a_home_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "used"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert main(["demo", "--quick", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err
    assert len(err.strip().splitlines()) == 1
    assert (home / "notes.txt").read_text() == "mine"
