"""Package folders: the manifest, atomic writes, and refusing tampered packages."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import Conflict, InvalidInput, NotFound, TamperedPackage
from mloop.models import Manifest, save_model, verify_package
from mloop.models._manifest import FORMAT_VERSION, MANIFEST_NAME, SIGNATURE_FILE_NAME
from mloop.models._package import package_digest


@pytest.fixture
def package(tmp_path: Path, iris_forest: Any, iris: tuple[Any, Any]) -> Path:
    save_model(iris_forest, tmp_path / "pkg", input_example=iris[0].head(5))
    return tmp_path / "pkg"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_file_with_its_sha256_and_the_environment(package: Path) -> None:
    document = json.loads((package / MANIFEST_NAME).read_text())
    assert document["format_version"] == FORMAT_VERSION
    assert document["flavor"] == "sklearn"
    assert document["files"] == {"model.skops": _sha256(package / "model.skops")}
    assert sorted(p.name for p in package.iterdir()) == [MANIFEST_NAME, "model.skops"]
    sklearn_version = importlib.metadata.version("scikit-learn")
    assert f"scikit-learn=={sklearn_version}" in document["requirements"]
    assert any(r.startswith("skops==") for r in document["requirements"])
    assert document["python_version"].count(".") == 2
    assert document["run_id"] is None
    assert document["signature"]["inputs"]["kind"] == "columns"


def test_package_digest_is_the_sha256_of_the_manifest_bytes(package: Path) -> None:
    assert package_digest(package) == _sha256(package / MANIFEST_NAME)


def test_verify_accepts_an_intact_package_and_returns_its_manifest(package: Path) -> None:
    manifest = verify_package(package)
    assert isinstance(manifest, Manifest)
    assert manifest == Manifest.from_json((package / MANIFEST_NAME).read_bytes())


def test_the_signature_file_is_reserved_neither_listed_nor_extra(package: Path) -> None:
    (package / SIGNATURE_FILE_NAME).write_bytes(b"{}")
    assert SIGNATURE_FILE_NAME not in verify_package(package).files


def test_a_changed_byte_is_refused_naming_the_file(package: Path) -> None:
    model_file = package / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    with pytest.raises(TamperedPackage, match=r"'model\.skops' was changed") as caught:
        verify_package(package)
    assert caught.value.details["file"] == "model.skops"


def test_a_missing_file_is_refused_naming_it(package: Path) -> None:
    (package / "model.skops").unlink()
    with pytest.raises(TamperedPackage, match=r"'model\.skops' is missing"):
        verify_package(package)


@pytest.mark.parametrize("extra", ["notes.txt", "deep/inside/payload.py"])
def test_an_extra_file_is_refused_naming_it(package: Path, extra: str) -> None:
    (package / extra).parent.mkdir(parents=True, exist_ok=True)
    (package / extra).write_text("import os")
    with pytest.raises(TamperedPackage, match="is not listed in the manifest") as caught:
        verify_package(package)
    assert caught.value.details["file"] == extra


def test_a_symlink_in_a_package_is_refused(package: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("x")
    os.symlink(tmp_path / "outside", package / "link")
    with pytest.raises(TamperedPackage, match="symbolic link"):
        verify_package(package)


def test_every_problem_is_listed(package: Path) -> None:
    (package / "model.skops").unlink()
    (package / "extra.bin").write_bytes(b"x")
    with pytest.raises(TamperedPackage) as caught:
        verify_package(package)
    assert caught.value.details["problems"] == [
        {"file": "model.skops", "problem": "missing"},
        {"file": "extra.bin", "problem": "extra"},
    ]


def test_saving_over_an_existing_path_is_refused(package: Path, iris_forest: Any) -> None:
    with pytest.raises(Conflict, match="already exists"):
        save_model(iris_forest, package)


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    from mloop.models import PythonModel

    class Unsavable(PythonModel):  # defined in a function: the flavor refuses it
        def predict(self, model_input: Any) -> Any:
            return model_input

    with pytest.raises(InvalidInput, match="inside a function"):
        save_model(Unsavable(), tmp_path / "pkg")
    assert list(tmp_path.iterdir()) == []


def test_a_model_no_flavor_knows_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"no flavor can save a builtins\.object"):
        save_model(object(), tmp_path / "pkg")


def test_verify_of_a_folder_without_manifest_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"has no {MANIFEST_NAME}"):
        verify_package(tmp_path)
    with pytest.raises(NotFound):
        verify_package(tmp_path / "absent")


def _rewrite_manifest(package: Path, **changes: Any) -> None:
    document = json.loads((package / MANIFEST_NAME).read_text())
    document.update(changes)
    (package / MANIFEST_NAME).write_text(json.dumps(document))


def test_a_newer_format_version_asks_for_an_upgrade(package: Path) -> None:
    _rewrite_manifest(package, format_version=FORMAT_VERSION + 1)
    with pytest.raises(InvalidInput, match="upgrade mloop"):
        verify_package(package)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../escape": "0" * 64}, "not a plain relative POSIX path"),
        ({"/etc/passwd": "0" * 64}, "not a plain relative POSIX path"),
        ({MANIFEST_NAME: "0" * 64}, "reserved"),
        ({"model.skops": "not-a-digest"}, "not a SHA-256"),
    ],
)
def test_a_manifest_with_unsafe_file_entries_is_refused(
    package: Path, files: dict[str, str], message: str
) -> None:
    _rewrite_manifest(package, files=files)
    with pytest.raises(InvalidInput, match=message):
        verify_package(package)


def test_a_manifest_that_is_not_json_is_refused(package: Path) -> None:
    (package / MANIFEST_NAME).write_bytes(b"\x80not json")
    with pytest.raises(InvalidInput, match="not a model package manifest"):
        verify_package(package)


def test_unknown_manifest_fields_are_refused(package: Path) -> None:
    _rewrite_manifest(package, surprise=True)
    with pytest.raises(InvalidInput, match="surprise"):
        verify_package(package)


def test_manifest_bytes_are_stable(package: Path) -> None:
    data = (package / MANIFEST_NAME).read_bytes()
    assert Manifest.from_json(data).to_json() == data
