"""``mloop models inspect``: manifest, signature, files and verification status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

from mloop.models import save_model


@pytest.fixture
def package(tmp_path: Path, iris_forest: Any, iris: tuple[Any, Any]) -> Path:
    save_model(iris_forest, tmp_path / "pkg", input_example=iris[0].head())
    return tmp_path / "pkg"


def test_inspect_shows_the_manifest_and_verifies(
    capsys: pytest.CaptureFixture[str], package: Path
) -> None:
    code, out, err = run_cli(capsys, "models", "inspect", str(package))
    assert code == 0, err
    for expected in ("verified", "sklearn", "model.skops", "petal width (cm)", "scikit-learn=="):
        assert expected in out
    data = run_json(capsys, "models", "inspect", str(package))
    assert data["verified"] is True
    assert data["problem"] is None
    assert data["signed"] is False
    assert data["manifest"]["files"].keys() == {"model.skops"}
    manifest_bytes = (package / "mloop-model.json").read_bytes()
    assert data["manifest"] == json.loads(manifest_bytes)


def test_inspect_of_a_tampered_package_exits_1_naming_the_file(
    capsys: pytest.CaptureFixture[str], package: Path
) -> None:
    (package / "extra.py").write_text("print('hi')")
    code, out, _ = run_cli(capsys, "models", "inspect", str(package), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["verified"] is False
    assert "'extra.py'" in report["problem"]
    code, out, _ = run_cli(capsys, "models", "inspect", str(package))
    assert code == 1
    assert "TAMPERED" in out


def test_inspect_of_something_that_is_not_a_package_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "models", "inspect", str(tmp_path))
    assert code == 2
    assert "has no mloop-model.json" in one_error_line(err)
    code, _, err = run_cli(capsys, "models", "inspect", "s3://bucket/x")
    assert code == 2
    assert "unknown scheme" in one_error_line(err)
