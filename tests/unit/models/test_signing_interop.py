"""Signatures cross over both ways between mloop and the library's own ``model_signing`` CLI.

The CLI runs as a subprocess, exactly as a user would run it next to mloop.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import UntrustedSignature
from mloop.models import generate_signing_key, sign_package, verify_signature

CLI = Path(sys.executable).parent / "model_signing"
pytestmark = pytest.mark.skipif(not CLI.exists(), reason="model_signing CLI is not installed")


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "package"
    (folder / "tokenizer").mkdir(parents=True)
    files = {"model.onnx": b"\x08\x07onnx" * 500, "tokenizer/vocab.txt": b"hello\nworld\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {"files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    (folder / "mloop-model.json").write_text(json.dumps(manifest))
    return folder


def test_mloop_signature_verifies_with_the_library_cli(package: Path, tmp_path: Path) -> None:
    private_key, public_key = generate_signing_key(tmp_path / "keys")
    signature = sign_package(package, private_key)

    accepted = model_signing(
        "verify", "key", package, "--signature", signature, "--public_key", public_key
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "Verification succeeded" in accepted.stdout

    (package / "model.onnx").write_bytes(b"tampered")
    refused = model_signing(
        "verify", "key", package, "--signature", signature, "--public_key", public_key
    )
    assert refused.returncode == 1
    assert "model.onnx" in refused.stderr


def test_library_cli_signature_verifies_in_mloop(package: Path, tmp_path: Path) -> None:
    private_key, public_key = generate_signing_key(tmp_path / "keys")
    signature = package / "mloop-model.sig"
    signed = model_signing(
        "sign", "key", package, "--signature", signature, "--private_key", private_key
    )
    assert signed.returncode == 0, signed.stderr

    info = verify_signature(package, [public_key])
    assert info.mode == "key"
    assert set(info.digests) == {"model.onnx", "tokenizer/vocab.txt", "mloop-model.json"}

    (package / "tokenizer" / "merges.txt").write_text("extra")
    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(package, [public_key])
    assert caught.value.details["added"] == ["tokenizer/merges.txt"]


@pytest.mark.parametrize(
    "hashing",
    [
        {"method": "shards", "hashing_algorithm": "sha256", "shard_size": 1000},
        {"method": "files", "hashing_algorithm": "blake3"},
    ],
    ids=["sha256-shards", "blake3-files"],
)
def test_library_signatures_with_other_hashing_verify_in_mloop(
    package: Path, tmp_path: Path, hashing: dict[str, Any]
) -> None:
    import model_signing

    private_key, public_key = generate_signing_key(tmp_path / "keys")
    config = model_signing.hashing.Config().set_ignored_paths(paths=["mloop-model.sig"])
    options = {k: v for k, v in hashing.items() if k != "method"}
    if hashing["method"] == "shards":
        config.use_shard_serialization(**options)
    else:
        config.use_file_serialization(**options)
    model_signing.signing.Config().use_elliptic_key_signer(
        private_key=private_key
    ).set_hashing_config(config).sign(package, package / "mloop-model.sig")

    info = verify_signature(package, [public_key])
    assert info.hash_algorithm == hashing["hashing_algorithm"]

    with (package / "model.onnx").open("ab") as grown:
        grown.write(b"more")
    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(package, [public_key])
    changed = caught.value.details
    assert "model.onnx" in changed.get("modified", []) + changed.get("added", [])
