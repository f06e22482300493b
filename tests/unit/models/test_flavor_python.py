"""The python-function flavor: code stored as source and imported, state as JSON."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mloop.errors import InvalidInput, TamperedPackage
from mloop.models import PythonModel, load_model, save_model

MODULE = textwrap.dedent(
    """
    import numpy as np

    from mloop.models import PythonModel


    class Threshold(PythonModel):
        def __init__(self, column, cut):
            self.column = column
            self.cut = cut
            self.labels = ["low", "high"]

        def predict(self, model_input):
            return np.where(model_input[self.column] > self.cut, self.labels[1], self.labels[0])

        def predict_proba(self, model_input):
            high = (model_input[self.column] > self.cut).to_numpy(float)
            return np.column_stack([1 - high, high])
    """
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A module the user wrote, importable now; the test can make it vanish."""
    name = f"user_models_{tmp_path.name.replace('-', '_')}"
    source = tmp_path / "src" / f"{name}.py"
    source.parent.mkdir()
    source.write_text(MODULE)
    monkeypatch.syspath_prepend(str(source.parent))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def test_loads_from_the_stored_source_after_the_module_is_gone(
    tmp_path: Path, iris: tuple[Any, Any], user_module: Any
) -> None:
    x = iris[0]
    model = user_module.Threshold("petal length (cm)", 2.5)
    save_model(model, tmp_path / "pkg", input_example=x.head(3))
    expected, expected_proba = model.predict(x), model.predict_proba(x)

    Path(user_module.__file__).unlink()
    del sys.modules[user_module.__name__]
    loaded = load_model(tmp_path / "pkg")

    assert loaded.flavor == "python_function"
    np.testing.assert_array_equal(loaded.predict(x), expected)
    np.testing.assert_array_equal(loaded.predict_proba(x), expected_proba)
    assert type(loaded.model).__module__ != user_module.__name__
    assert loaded.model.labels == ["low", "high"]  # type: ignore[attr-defined]
    state = json.loads((tmp_path / "pkg" / "state.json").read_text())
    assert state == {"column": "petal length (cm)", "cut": 2.5, "labels": ["low", "high"]}
    assert (tmp_path / "pkg" / "code" / f"{user_module.__name__}.py").read_text() == MODULE


def test_the_stored_code_is_covered_by_the_digests(tmp_path: Path, user_module: Any) -> None:
    save_model(user_module.Threshold("a", 1), tmp_path / "pkg")
    code = tmp_path / "pkg" / "code" / f"{user_module.__name__}.py"
    code.write_text(code.read_text() + "\nimport os; os.system('echo pwned')\n")
    with pytest.raises(TamperedPackage, match="was changed"):
        load_model(tmp_path / "pkg")


def test_state_that_is_not_json_is_refused_naming_the_attribute(
    tmp_path: Path, user_module: Any
) -> None:
    model = user_module.Threshold("a", 1)
    model.cut = object()
    with pytest.raises(InvalidInput, match="attribute 'cut'"):
        save_model(model, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


class Module(PythonModel):
    def predict(self, model_input: Any) -> Any:
        return model_input


def test_classes_without_their_own_module_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Local(PythonModel):
        def predict(self, model_input: Any) -> Any:
            return model_input

    with pytest.raises(InvalidInput, match="inside a function"):
        save_model(Local(), tmp_path / "a")
    monkeypatch.setattr(Module, "__module__", "__main__")
    with pytest.raises(InvalidInput, match="script"):
        save_model(Module(), tmp_path / "b")


def test_a_package_whose_code_lacks_the_class_is_refused(tmp_path: Path, user_module: Any) -> None:
    from package_crafting import swap_file

    save_model(user_module.Threshold("a", 1), tmp_path / "pkg")
    swap_file(tmp_path / "pkg", f"code/{user_module.__name__}.py", b"X = 1\n")
    with pytest.raises(InvalidInput, match="no PythonModel subclass named 'Threshold'"):
        load_model(tmp_path / "pkg")
