"""`mloop apply`, `mloop export` and `mloop schema` in-process, on the example folder of
docs/configuration-as-code.md: dry run (diff, nothing changed), apply, idempotence,
export and re-apply, JSON output, and errors as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mloop.iac import schema_text
from mloop.registry import register_model_version, set_alias
from mloop.serving import deployment_history, get_deployment, list_deployments
from tests.unit.cli.helpers import one_error_line, run_cli
from tests.unit.iac.conftest import DIGESTS, write

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration-as-code.md"


def example_folder(root: Path) -> Path:
    """The files of the documented example folder, written under ``root``."""
    text = DOCS.read_text(encoding="utf-8")
    for block in text.split("```yaml\n")[1:]:
        body = block.split("```", 1)[0]
        first = body.split("\n", 1)[0]
        if first.startswith("# deploy/") and first.endswith(".yaml"):
            write(root / first.removeprefix("# "), body)
    return root / "deploy"


@pytest.fixture
def churn(sqlite_db: str) -> str:
    for digest in DIGESTS[:3]:
        register_model_version("churn", "/p", package_digest=digest)
    set_alias("churn", "champion", 2)
    return sqlite_db


def test_the_documented_folder_applies_exports_and_reapplies(
    churn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = example_folder(tmp_path)
    assert len(list(folder.rglob("*.yaml"))) == 6

    code, out, err = run_cli(capsys, "apply", "-f", str(folder), "--dry-run")
    assert (code, err) == (0, "")
    assert "+ Deployment/churn  create  (" in out
    assert "+  - model: churn\n" in out or "+- model: churn" in out
    assert out.rstrip().endswith("Dry run (nothing changed): 7 to create, 0 to update, 0 unchanged")
    assert list_deployments() == []

    code, out, err = run_cli(capsys, "apply", "-f", str(folder))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"+ Gate/churn  created  ({folder}/gates/churn.yaml:2)"
    assert out.rstrip().endswith("Applied: 7 created, 0 updated, 0 unchanged")
    live = get_deployment("churn")
    assert [m.ref for m in live.spec.members] == ["churn:2", "churn:3"]
    assert live.reason == f"mloop apply {folder}/deployments/churn.yaml"

    code, out, _ = run_cli(capsys, "apply", "-f", str(folder))
    assert out.rstrip().endswith("Applied: 0 created, 0 updated, 7 unchanged")

    code, out, err = run_cli(capsys, "export", "-o", str(tmp_path / "exported"))
    assert (code, err) == (0, "")
    assert out.rstrip().endswith(f"Exported 7 objects to {tmp_path / 'exported'}")
    code, out, _ = run_cli(capsys, "apply", "-f", str(tmp_path / "exported"), "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"create": 0, "update": 0, "unchanged": 7}
    assert len(deployment_history("churn")) == 1

    code, out, _ = run_cli(capsys, "export", "--kind", "Deployment")
    (document,) = list(yaml.safe_load_all(out))
    assert document["spec"]["members"] == [
        {"model": "churn", "version": 2},
        {"model": "churn", "version": 3, "role": "shadow"},
    ]


def test_a_moved_alias_is_an_update_shown_as_a_diff(
    churn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = example_folder(tmp_path)
    run_cli(capsys, "apply", "-f", str(folder))
    set_alias("churn", "champion", 1)
    code, out, _ = run_cli(capsys, "apply", "-f", str(folder), "--dry-run", "--json")
    assert code == 0
    changes = {c["name"]: c for c in json.loads(out)["changes"]}
    assert changes["churn"]["action"] == "update" or changes["churn"]["kind"] != "Deployment"
    deployment = next(c for c in json.loads(out)["changes"] if c["kind"] == "Deployment")
    assert deployment["fields"] == [
        {"path": "members[0].version", "change": "changed", "before": 2, "after": 1}
    ]
    code, out, _ = run_cli(capsys, "apply", "-f", str(folder), "--dry-run")
    assert "~ Deployment/churn  update" in out
    assert "-  version: 2\n" in out
    assert "+  version: 1\n" in out
    assert get_deployment("churn").revision == 1


def test_errors_are_one_line_naming_file_line_and_field(
    churn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = example_folder(tmp_path)
    deployment = folder / "deployments" / "churn.yaml"
    deployment.write_text(
        deployment.read_text().replace("role: shadow", "role: shadow\n      weight: 10")
    )
    plan_file = folder / "rollouts" / "careful.yaml"
    plan_file.write_text(plan_file.read_text().replace("canary 5% 30m", "canary 30% 30m"))
    code, _out, err = run_cli(capsys, "apply", "-f", str(folder))
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("error: 2 problems in the configuration, nothing applied: ")
    assert f"{deployment}:12: spec.members[1].weight: a shadow has no weight" in line
    assert f"{plan_file}:10: spec.steps[2]: canary 25% does not grow" in line
    assert list_deployments() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apply"], "give the documents with -f"),
        (["apply", "-f", "nowhere/"], "nowhere: no such file or folder"),
        (["export", "--kind", "Deploymnet"], "kind 'Deploymnet' does not exist"),
    ],
)
def test_bad_invocations_are_one_line(
    sqlite_db: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert message in one_error_line(err)


def test_an_empty_folder_says_what_to_write(
    sqlite_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "apply", "-f", str(tmp_path / "empty"))
    assert code == 2
    assert "no documents in" in one_error_line(err)


def test_schema_commands_print_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "schema")
    assert (code, out) == (0, schema_text())
    code, out, _ = run_cli(capsys, "apply", "--print-schema")
    assert (code, out) == (0, schema_text())
