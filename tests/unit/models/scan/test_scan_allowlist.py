"""The allow-list refuses every dangerous callable, and its scikit-learn part matches the
installed scikit-learn."""

from __future__ import annotations

import importlib

import pytest

from mloop.models._scan._allowlist import allowed_globals, is_allowed
from mloop.models._scan._sklearn_classes import CLASSES_BY_MODULE, defined_in_installed_sklearn

DANGEROUS = [
    ("builtins", "getattr"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "__import__"), ("builtins", "open"), ("builtins", "compile"),
    ("builtins", "type"), ("os", "system"), ("posix", "system"), ("nt", "system"),
    ("os", "popen"), ("subprocess", "Popen"), ("subprocess", "run"), ("pty", "spawn"),
    ("socket", "create_connection"), ("shutil", "rmtree"), ("importlib", "import_module"),
    ("runpy", "_run_code"), ("ctypes", "CDLL"), ("pickle", "loads"), ("_pickle", "loads"),
    ("marshal", "loads"), ("dill", "loads"), ("types", "CodeType"), ("types", "FunctionType"),
    ("operator", "attrgetter"), ("_operator", "methodcaller"), ("functools", "partial"),
    ("idlelib.pyshell", "ModifiedInterpreter"), ("pydoc", "pipepager"), ("timeit", "timeit"),
    ("webbrowser", "open"), ("asyncio.unix_events", "_UnixSubprocessTransport"),
    ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy", "fromfile"),
    ("numpy.lib.npyio", "load"), ("numpy.f2py.crackfortran", "getlincoef"),
    ("numpy.core._ufunc_config", "seterr"), ("numpy._core", "_ufunc_reconstruct"),
    ("torch.storage", "_load_from_bytes"), ("torch", "load"), ("torch._tensor", "_rebuild_from_type_v2"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"), ("joblib.numpy_pickle", "NDArrayWrapper"),
    ("copyreg", "add_extension"), ("sys", "exit"), ("code", "InteractiveInterpreter"),
    ("sklearn.callback._transport", "Listener"), ("sklearn.cluster._bicluster", "ABCMeta"),
    ("sklearn.datasets._openml", "Request"), ("sklearn.utils._testing", "TempMemmap"),
    ("sklearn.datasets", "fetch_openml"), ("scipy.sparse", "load_npz"), ("collections", "namedtuple"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "name"), DANGEROUS)
def test_dangerous_callables_are_refused(module: str, name: str) -> None:
    assert not is_allowed(module, name)


def test_no_allowed_name_is_a_dotted_attribute_path() -> None:
    assert all("." not in name for _, name in allowed_globals())


def test_sklearn_snapshot_matches_the_installed_scikit_learn() -> None:
    snapshot = {module: set(names.split()) for module, names in CLASSES_BY_MODULE.items()}
    assert snapshot == defined_in_installed_sklearn()


def test_every_sklearn_entry_is_a_class_defined_in_scikit_learn_or_its_unpickle_helper() -> None:
    for module_name, names in CLASSES_BY_MODULE.items():
        module = importlib.import_module(module_name)
        for name in names.split():
            value = getattr(module, name)
            if isinstance(value, type):
                assert value.__module__ == module_name
                assert not issubclass(value, type)
            else:
                assert name == "newObj" or name.startswith("__pyx_unpickle_")


def test_every_estimator_is_allowed() -> None:
    from sklearn.utils import all_estimators

    for _, estimator in all_estimators():
        assert is_allowed(estimator.__module__, estimator.__name__), estimator
