"""``mloop demo --quick``: the whole loop, end to end, as a user runs it.

One run of the demo (about 15 s here) and then the stores it wrote are read back through
the public API: every outcome the demo reports must be what the stores recorded.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

import mloop
from mloop import data, registry
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
    out = io.StringIO()
    result = run_demo(Console(file=out, width=200), home=home, quick=True)
    text = out.getvalue()

    # The demo restored what it changed.
    assert os.environ.get("MLOOP_HOME") == before_env
    assert os.getcwd() == before_cwd

    # Every stage was narrated, and every stand-in said so on screen.
    for number in range(1, 9):
        assert re.search(rf"^{number}\. ", text, re.MULTILINE), f"stage {number} missing"
    for stand_in in result.stand_ins:
        assert stand_in.split(":")[0] in text
    assert "not yet available" in text or not result.stand_ins

    # Read back what the demo wrote, from its own home.
    monkeypatch.setenv("MLOOP_HOME", str(home))

    # 1. Data: two versions, the second made of served requests with their outcomes;
    #    validation caught the broken batch.
    assert result.datasets == [f"{DATASET}@1", f"{DATASET}@2"]
    v2 = data.get_dataset_version(f"{DATASET}@2")
    assert v2.provenance["source"] == "prediction log + feedback"
    assert result.anomalies_caught >= 2
    assert (home / "schema.yaml").read_text().startswith("#")

    # 2-3. Signed, registered, deployed; the trust policy requires the signature.
    versions = registry.list_model_versions(MODEL)
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].dataset_versions == (f"{DATASET}@1",)
    assert versions[1].dataset_versions == (f"{DATASET}@2",)
    policy = registry.get_trust_policy(MODEL)
    assert policy is not None
    assert policy.require_signature
    assert mloop.load_model(f"models:/{MODEL}/2").predict_proba is not None

    # 4-5. Real traffic was logged and labelled; the drift was detected.
    predictions = read_predictions(None, "credit")
    sent = sum(report.answered for report in result.traffic.values())
    primaries = [r for r in predictions.column("role").to_pylist() if r != "shadow"]
    assert len(primaries) == sent > 0
    assert read_feedback(None, "credit").num_rows == sum(
        report.labelled for report in result.traffic.values()
    )
    before, after = result.traffic["before drift"], result.traffic["after drift"]
    assert before.accuracy is not None
    assert after.accuracy is not None
    assert after.accuracy < before.accuracy
    assert result.drift_detected
    assert result.drifted_features or result.alerts
    if result.drifted_features:
        assert {"age", "debt_ratio"} <= set(result.drifted_features)

    # 6-7. The retrained model passed the gate and its rollout outcome is recorded.
    assert result.gate_passed is True
    assert result.rollout_outcome is not None
    reasons = [d.reason or "" for d in deployment_history("credit")]
    assert reasons[0] == "first release"
    assert any("shadow" in r for r in reasons)
    if result.rollout_outcome.startswith("promoted"):
        assert registry.resolve(MODEL, "@champion").version == 2
        assert result.champion == f"{MODEL}:2"
    else:
        assert registry.resolve(MODEL, "@champion").version == 1

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

    # Reports exist where the demo said.
    assert result.reports
    for path in result.reports.values():
        assert path.is_file()
        assert path.read_text().lstrip().startswith("<")


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
