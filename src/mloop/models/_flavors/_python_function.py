"""Models written as Python code: the defining module's source and the instance's state.

Loading imports the stored source under a private module name, so the package works after
the original module has changed or gone, and two versions of a model never share a module.
This runs the package's code, as loading any Python model must; the package's digests (and
its signature, when the trust policy asks for one) are what make that code trustworthy.
Nothing is unpickled: the instance's attributes come back from JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput
from mloop.models._flavors._base import Flavor, Predictor, package_file
from mloop.models._python_model import PythonModel

if TYPE_CHECKING:
    from mloop.models._manifest import Manifest

STATE_FILE = "state.json"
CODE_DIR = "code"


class PythonFunctionFlavor(Flavor):
    name = "python_function"
    packages = ()

    def can_save(self, model: Any) -> bool:
        return isinstance(model, PythonModel)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        cls = type(model)
        source = _module_source(cls)
        code_file = f"{CODE_DIR}/{cls.__module__.rpartition('.')[2]}.py"
        (directory / CODE_DIR).mkdir()
        (directory / code_file).write_text(source, encoding="utf-8")
        (directory / STATE_FILE).write_text(_state_json(model), encoding="utf-8")
        return {
            "code_file": code_file,
            "state_file": STATE_FILE,
            "module": cls.__module__,
            "class_name": cls.__qualname__,
        }

    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        code = package_file(directory, manifest, "code_file", "")
        state_path = package_file(directory, manifest, "state_file", STATE_FILE)
        module = _import_stored(code)
        cls: Any = module
        class_name = str(manifest.flavor_data.get("class_name", ""))
        for part in class_name.split("."):
            cls = getattr(cls, part, None)
        if not (isinstance(cls, type) and issubclass(cls, PythonModel)):
            raise InvalidInput(
                f"{code.name} defines no PythonModel subclass named {class_name!r}; the "
                "package's code does not match its manifest"
            )
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidInput(f"{state_path.name} is not valid JSON: {exc}") from None
        if not isinstance(state, dict):
            raise InvalidInput(f"{state_path.name} does not hold a JSON object of attributes")
        model = cls.__new__(cls)
        model.__dict__.update(state)
        return model


def _module_source(cls: type) -> str:
    name = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InvalidInput(
            f"{name} is defined in a script or inside a function; move the class to the top "
            "level of its own module file, import it from there, and save again"
        )
    module = sys.modules.get(cls.__module__)
    try:
        path = inspect.getsourcefile(module) if module is not None else None
    except TypeError:
        path = None
    if path is None or not path.endswith(".py"):
        raise InvalidInput(
            f"the source of {name}'s module cannot be found; define the class in a .py file"
        )
    return Path(path).read_text(encoding="utf-8")


def _state_json(model: PythonModel) -> str:
    state = dict(vars(model))
    for key, value in state.items():
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"attribute {key!r} of {type(model).__name__} is a {type(value).__name__}, "
                f"which cannot be stored as JSON ({exc}); keep only JSON values (numbers, "
                "strings, lists, dicts) as attributes"
            ) from None
    return json.dumps(state, sort_keys=True, indent=2)


def _import_stored(code: Path) -> Any:
    source = code.read_bytes()
    name = f"_mloop_model_{hashlib.sha256(source).hexdigest()[:20]}_{code.stem}"
    if name in sys.modules:  # the same code was loaded before: it is the same module
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, code)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise InvalidInput(f"{code.name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise InvalidInput(
            f"the model's code {code.name} failed to import ({type(exc).__name__}: {exc}); "
            "install what it imports"
        ) from exc
    return module
