"""``mloop keys generate``, ``mloop models sign`` and ``mloop models verify`` exit codes:
0 verified, 1 not verified (one line with the reason), 2 bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.cli.helpers import one_error_line, run_cli


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "model.ubj").write_bytes(b"booster" * 100)
    return folder


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, err = run_cli(capsys, "keys", "generate", str(tmp_path / "keys"))
    assert code == 0, err
    assert "mloop-signing.key" in out
    assert "mloop-signing.pub" in out
    return tmp_path / "keys"


def test_sign_then_verify(package: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "models", "sign", str(package), "--key", str(keys / "mloop-signing.key")
    )
    assert code == 0, err
    assert "mloop-model.sig" in out
    code, out, err = run_cli(capsys, "models", "verify", str(package), "--trusted-keys", str(keys))
    assert code == 0, err
    assert out.startswith("Verified")
    assert "1 file(s)" in out


def test_verify_json(package: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "models", "sign", str(package), "--key", str(keys / "mloop-signing.key"))
    code, out, _ = run_cli(
        capsys, "models", "verify", str(package), "--trusted-keys", str(keys), "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["verified"] is True
    assert list(document["digests"]) == ["model.ubj"]

    (package / "model.ubj").write_bytes(b"changed")
    code, out, _err = run_cli(
        capsys, "models", "verify", str(package), "--trusted-keys", str(keys), "--json"
    )
    assert code == 1
    document = json.loads(out)
    assert document["verified"] is False
    assert document["reason"] == "changed"
    assert document["modified"] == ["model.ubj"]
    assert "changed since it was signed" in document["message"]


def test_not_verified_exits_1_with_the_reason(
    package: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "models", "verify", str(package), "--trusted-keys", str(keys))
    assert code == 1
    assert out == ""
    assert err.startswith("not verified: ")
    assert "is not signed" in err
    assert len(err.splitlines()) == 1

    run_cli(capsys, "models", "sign", str(package), "--key", str(keys / "mloop-signing.key"))
    (package / "added.bin").write_bytes(b"x")
    code, _, err = run_cli(capsys, "models", "verify", str(package), "--trusted-keys", str(keys))
    assert code == 1
    assert "added added.bin" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "verify", "{package}", "--trusted-keys", "{tmp}/missing"], "does not exist"),
        (["models", "verify", "{package}"], "no trusted keys"),
        (["models", "verify", "{tmp}/nowhere", "--trusted-keys", "{keys}"], "no model package"),
        (["models", "sign", "{package}", "--key", "{keys}/mloop-signing.pub"], "public key"),
        (["models", "sign", "{package}", "--key", "{tmp}/missing.key"], "does not exist"),
        (["keys", "generate", "{keys}"], "already exists"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    package: Path,
    keys: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    filled = [a.format(package=package, keys=keys, tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, *filled)
    assert code == 2
    assert message in one_error_line(err)
