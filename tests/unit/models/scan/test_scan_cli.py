"""``mloop models scan`` and ``mloop models import`` run in-process through ``main``."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import pytest
from test_scan_tricks import Reduces
from tests.unit.cli.helpers import one_error_line, run_cli

from mloop.models import scan_path


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_safe_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2]}))
    code, out, err = run_cli(capsys, "models", "scan", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("Safe ")


def test_unsafe_file_exits_1_with_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reduces(os.system, "echo pwned")))
    code, out, _ = run_cli(capsys, "models", "scan", str(path))
    assert code == 1
    assert f"{os.system.__module__}.system" in out
    assert "Unsafe" in out


def test_unparsable_content_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps([1, 2], protocol=4)[:-1])
    code, out, _ = run_cli(capsys, "models", "scan", str(path))
    assert code == 1
    assert "parse-error" in out


def test_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reduces(eval, "1"), protocol=2))
    code, out, _ = run_cli(capsys, "models", "scan", str(path), "--json")
    assert code == 1
    document = json.loads(out)
    assert document == scan_path(path).to_dict()
    assert document["safe"] is False
    assert set(document["findings"][0]) == {
        "file", "kind", "module", "name", "reason", "offset", "count"
    }  # fmt: skip
    assert document["findings"][0]["module"] == "builtins"
    assert document["files"] == [
        {"file": "evil.pkl", "format": "pickle", "globals": ["builtins.eval"]}
    ]


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "models", "scan", str(tmp_path / "nope.pkl"))
    assert code == 2
    assert out == ""
    assert "no such file or folder" in one_error_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.pkl"
    path.write_bytes(pickle.dumps(1))
    path.chmod(0)
    code, _, err = run_cli(capsys, "models", "scan", str(path))
    assert code == 2
    assert "permission denied" in one_error_line(err)


def test_a_pipe_or_device_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_cli(capsys, "models", "scan", str(fifo))
    assert code == 2
    assert "not a regular file" in one_error_line(err)


def test_import_refuses_an_unsafe_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reduces(os.system, "echo pwned")))
    code, _, err = run_cli(capsys, "models", "import", str(path), "--output", str(tmp_path / "o"))
    assert code == 2
    assert "refused to import" in one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_import_needs_a_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "models", "import", str(tmp_path / "m.pkl"))
    assert code == 2
    assert "--output" in one_error_line(err)


def test_import_resaves_as_a_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fitted_models: dict[str, Any]
) -> None:
    import mloop.models

    if not hasattr(mloop.models, "save_model"):
        pytest.skip("mloop.models.save_model (model packages, part B of issue 4) is not there yet")
    path = tmp_path / "model.joblib"
    joblib.dump(fitted_models["forest"], path)
    code, _, err = run_cli(capsys, "models", "import", str(path), "--output", str(tmp_path / "pkg"))
    assert code == 0, err
    assert (tmp_path / "pkg" / "mloop-model.json").is_file()
    assert scan_path(tmp_path / "pkg").safe
