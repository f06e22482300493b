"""Flavors plug in through the same interface the built-ins use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.models import Flavor, Manifest, load_model, register_flavor, save_model
from mloop.models._flavors import _registry, flavor_names


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, model_input: Any) -> list[float]:
        return [self.value] * len(model_input)


class ConstantFlavor(Flavor):
    name = "constant"
    packages = ("numpy",)

    def can_save(self, model: Any) -> bool:
        return isinstance(model, Constant)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        (directory / "value.json").write_text(json.dumps(model.value))
        return {"file": "value.json"}

    def load(self, directory: Path, manifest: Manifest) -> Any:
        return Constant(json.loads((directory / manifest.flavor_data["file"]).read_text()))


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_flavors", dict(_registry._flavors))


def test_a_plugin_flavor_saves_and_loads(tmp_path: Path) -> None:
    register_flavor(ConstantFlavor())
    manifest = save_model(Constant(4.0), tmp_path / "pkg")
    assert manifest.flavor == "constant"
    assert manifest.requirements[0].startswith("numpy==")
    assert load_model(tmp_path / "pkg").predict([1, 2]) == [4.0, 4.0]


def test_the_built_ins_are_registered_the_same_way() -> None:
    assert {"sklearn", "xgboost", "lightgbm", "onnx", "python_function"} <= set(flavor_names())
    assert all(isinstance(f, Flavor) for f in _registry._flavors.values())


def test_the_last_registered_flavor_that_accepts_a_model_wins(
    tmp_path: Path, iris_forest: Any
) -> None:
    class Takeover(ConstantFlavor):
        name = "takeover"

        def can_save(self, model: Any) -> bool:
            return True

        def save(self, model: Any, directory: Path) -> dict[str, Any]:
            return super().save(Constant(1.0), directory)

    register_flavor(Takeover())
    assert save_model(iris_forest, tmp_path / "pkg").flavor == "takeover"
    assert save_model(iris_forest, tmp_path / "named", flavor="sklearn").flavor == "sklearn"


def test_a_name_is_registered_once_unless_replaced() -> None:
    register_flavor(ConstantFlavor())
    with pytest.raises(Conflict, match="already registered"):
        register_flavor(ConstantFlavor())
    register_flavor(ConstantFlavor(), replace=True)


def test_bad_registrations_are_refused() -> None:
    class BadName(ConstantFlavor):
        name = "Bad Name"

    with pytest.raises(InvalidInput, match="flavor name"):
        register_flavor(BadName())
    with pytest.raises(InvalidInput, match="not a Flavor"):
        register_flavor(object())  # type: ignore[arg-type]


def test_a_package_of_an_unregistered_flavor_says_what_to_import(tmp_path: Path) -> None:
    register_flavor(ConstantFlavor())
    save_model(Constant(1.0), tmp_path / "pkg")
    del _registry._flavors["constant"]
    with pytest.raises(NotFound, match=r"no flavor named 'constant'.*import the plugin"):
        load_model(tmp_path / "pkg")


def test_a_flavor_must_accept_the_model_it_is_asked_to_save(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="flavor 'xgboost' cannot save"):
        save_model(Constant(1.0), tmp_path / "pkg", flavor="xgboost")


def test_flavor_data_must_be_json(tmp_path: Path) -> None:
    class Sloppy(ConstantFlavor):
        name = "sloppy"

        def save(self, model: Any, directory: Path) -> dict[str, Any]:
            return {"value": object()}

    register_flavor(Sloppy())
    with pytest.raises(InvalidInput, match="flavor 'sloppy' returned flavor data that is not JSON"):
        save_model(Constant(1.0), tmp_path / "pkg")
    assert list(tmp_path.iterdir()) == []
