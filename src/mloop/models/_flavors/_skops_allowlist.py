"""Our own allow-list for skops files, checked before skops builds anything.

skops loads a file by importing every type the file names and building it with ``__new__``
and ``__setstate__``; what it will do is decided by the type names in the file. Two checks
guard that, both against the list below and never against skops' own notion of what is
trusted:

1. the file's ``schema.json`` is walked as plain JSON (nothing imported): every node must
   use a loader we know (bound methods, ``functools.partial`` and ``operator`` callables —
   the shapes of past skops bypasses — are refused outright), every type must be on our
   list, every function one of NumPy's or SciPy's ufuncs;
2. ``skops.io.get_untrusted_types`` must report only types on our list, and exactly those
   are passed to ``skops.io.load(trusted=...)``. skops' list is never handed back to it
   unchecked: that was how a crafted file once got any type it named trusted.

The list: Python's primitives and containers; NumPy arrays, dtypes, scalar types and random
generators; SciPy sparse matrices; scikit-learn's public estimators and the few internal
types fitted estimators hold (trees, losses and their compiled halves, neighbour trees, distance metrics, kernels,
cross-validation splitters). HistGradientBoosting's ``TreePredictor`` is left out, as skops
leaves it out: its node arrays are used as raw indices without bounds checks.
"""

from __future__ import annotations

import functools
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mloop.errors import UnsafeModel

SCHEMA_NAME = "schema.json"
MAX_SCHEMA_BYTES = 256 << 20
_TYPE_LOADERS = frozenset(
    {
        "BytearrayNode",
        "BytesNode",
        "ConstructorFromReduceNode",
        "DTypeNode",
        "DefaultDictNode",
        "DictNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "MaskedArrayNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomGeneratorNode",
        "RandomStateNode",
        "SetNode",
        "SliceNode",
        "SparseMatrixNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
    }
)
_FUNCTION_LOADER = "FunctionNode"
_CACHED_LOADER = "CachedNode"
_REFUSED_LOADERS = {
    "MethodNode": "a bound method (calls a method chosen by the file)",
    "OperatorFuncNode": "an operator callable (attrgetter/itemgetter/methodcaller)",
    "PartialNode": "a functools.partial (calls a function with arguments from the file)",
}
_BUILTINS = (
    "bool",
    "bytearray",
    "bytes",
    "dict",
    "float",
    "frozenset",
    "int",
    "list",
    "NoneType",
    "set",
    "slice",
    "str",
    "tuple",
)


def trusted_types_for(path: Path) -> list[str]:
    """Check the skops file at ``path`` against our list and return the types to pass as
    ``trusted=`` to ``skops.io.load``; raise :class:`UnsafeModel` naming what is refused."""
    refused = sorted(set(_walk_schema(path)))
    if refused:
        raise _unsafe(path, refused)
    try:
        untrusted = skops_io().get_untrusted_types(file=path)
    except Exception as exc:  # skops raises many kinds on malformed files; fail closed
        raise UnsafeModel(
            f"{path.name} could not be audited by skops ({type(exc).__name__}: {exc}); "
            "refusing to load it",
            details={"findings": [str(exc)]},
        ) from None
    refused = sorted(name for name in untrusted if not is_allowed_type(name))
    if refused:
        raise _unsafe(path, refused)
    return sorted(set(untrusted))


def _unsafe(path: Path, refused: list[str]) -> UnsafeModel:
    return UnsafeModel(
        f"{path.name} names {len(refused)} type{'s' if len(refused) > 1 else ''} outside "
        f"mloop's allow-list, so it was not loaded: {', '.join(refused)}. Save models made "
        "only of scikit-learn, NumPy and SciPy objects, or export the model to ONNX",
        details={"findings": refused},
    )


def _walk_schema(path: Path) -> Iterator[str]:
    """Every node of the schema that our list refuses, described; imports nothing."""
    for node in _nodes(_read_schema(path)):
        loader = node.get("__loader__")
        name = f"{node.get('__module__')}.{node.get('__class__')}"
        if loader in _REFUSED_LOADERS:
            yield f"{name} ({_REFUSED_LOADERS[loader]})"
        elif loader == _FUNCTION_LOADER:
            if not _allowed_function(node.get("__module__"), node.get("__class__")):
                yield f"{name} (function)"
        elif loader == _CACHED_LOADER:
            continue  # a reference to a node checked where it first appears
        elif loader not in _TYPE_LOADERS:
            yield f"{name} (unknown skops loader {loader!r})"
        elif not is_allowed_type(name):
            yield name


def _read_schema(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(SCHEMA_NAME)
            if info.file_size > MAX_SCHEMA_BYTES:
                raise UnsafeModel(f"{path.name}: schema.json is {info.file_size} bytes; refused")
            return json.loads(archive.read(info))
    except UnsafeModel:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError) as exc:
        raise UnsafeModel(
            f"{path.name} is not a readable skops file ({type(exc).__name__}: {exc}); "
            "refusing to load it",
            details={"findings": [f"parse-error: {exc}"]},
        ) from None


def _nodes(document: Any) -> Iterator[dict[str, Any]]:
    """Every dict carrying a ``__loader__``, depth-first, without recursion."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _allowed_function(module: Any, name: Any) -> bool:
    if not isinstance(module, str) or not isinstance(name, str):
        return False
    if module == "numpy":
        return name in _numpy_ufuncs()
    if module == "scipy.special" or module.startswith("scipy.special._"):
        return name in _scipy_ufuncs()
    return False


@functools.cache
def _numpy_ufuncs() -> frozenset[str]:
    import numpy as np

    return frozenset(n for n in dir(np) if isinstance(getattr(np, n, None), np.ufunc))


@functools.cache
def _scipy_ufuncs() -> frozenset[str]:
    import numpy as np
    import scipy.special

    found = set()
    for name in dir(scipy.special):
        value = getattr(scipy.special, name, None)
        if isinstance(value, np.ufunc) or "ufunc" in type(value).__name__.lower():
            found.add(name)
    return frozenset(found)


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def skops_io() -> Any:
    """``skops.io``, imported without its own list of trusted estimators.

    At import skops lists every scikit-learn estimator (``all_estimators``, which imports
    every scikit-learn module: a quarter of a second at every server start) to build the
    types it trusts by default. mloop never relies on that list: every type a file names is
    checked against ours and exactly those are passed as ``trusted=``. So skops is imported
    with an empty list, which only makes it report more types for us to check. The same
    goes for SciPy's ufuncs, which skops finds by walking ``dir(scipy.special)`` and
    searching every loaded module for each of 400 names (0.12 s); mloop trusts none.
    """
    import sys

    if "skops.io" not in sys.modules:
        import scipy.special
        import sklearn.utils

        real = sklearn.utils.all_estimators
        special = vars(scipy.special)
        real_dir = special.get("__dir__")
        sklearn.utils.all_estimators = lambda *_args, **_kwargs: []
        special["__dir__"] = list  # dir(scipy.special) == []
        try:
            import skops.io  # noqa: F401
        finally:
            sklearn.utils.all_estimators = real
            if real_dir is None:
                del special["__dir__"]
            else:
                special["__dir__"] = real_dir
    return sys.modules["skops.io"]


def is_allowed_type(name: str) -> bool:
    """Whether a skops file may name the type ``name`` (fully qualified)."""
    return name in _fixed_type_names() or _is_public_estimator(name)


@functools.cache
def _fixed_type_names() -> frozenset[str]:
    """Every allowed type but scikit-learn's public estimators (checked one by one)."""
    return frozenset(
        {
            *(f"builtins.{name}" for name in _BUILTINS),
            "collections.OrderedDict",
            "collections.defaultdict",
            *_numpy_types(),
            *_scipy_types(),
            *_sklearn_types(),
        }
    )


def allowed_type_names() -> frozenset[str]:
    """Every type a skops file may name (imports every scikit-learn module: for tests and
    audits, not for loading, which checks names one by one)."""
    from sklearn.utils import all_estimators

    estimators = {
        _type_name(cls) for _, cls in all_estimators() if cls.__module__.startswith("sklearn.")
    }
    return _fixed_type_names() | estimators


_IGNORED_PARTS = frozenset(
    {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}
)


@functools.cache
def _is_public_estimator(name: str) -> bool:
    """What ``sklearn.utils.all_estimators`` lists, decided for one name: a concrete
    ``BaseEstimator`` subclass, public, defined in scikit-learn and exported by the public
    package above its module. Only ``sklearn.*`` modules outside tests are imported, so
    nothing outside scikit-learn runs; listing all estimators instead imports every
    scikit-learn module (a quarter of a second at every server start)."""
    import importlib
    import inspect

    module_name, _, class_name = name.rpartition(".")
    parts = module_name.split(".")
    if (
        parts[0] != "sklearn"
        or not class_name.isidentifier()
        or class_name.startswith("_")
        or any(part in _IGNORED_PARTS or not part.isidentifier() for part in parts)
    ):
        return False
    try:
        found = getattr(importlib.import_module(module_name), class_name, None)
        public = ".".join(
            parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))]
        )
        exported = getattr(importlib.import_module(public), class_name, None)
    except ImportError:
        return False
    from sklearn.base import BaseEstimator

    if not isinstance(found, type):
        return False
    cls: type = found
    return (
        cls is exported
        and _type_name(cls) == name
        and issubclass(cls, BaseEstimator)
        and cls is not BaseEstimator
        and not inspect.isabstract(cls)
    )


def _numpy_types() -> set[str]:
    import numpy as np

    names = {"numpy.ndarray", "numpy.dtype", "numpy.ma.core.MaskedArray"}
    names.update(_type_name(t) for t in np.sctypeDict.values())
    names.update(
        _type_name(t)
        for t in vars(np.dtypes).values()
        if isinstance(t, type) and issubclass(t, np.dtype)
    )
    names.update({_type_name(np.random.RandomState), _type_name(np.random.Generator)})
    for attr in dir(np.random):
        value = getattr(np.random, attr)
        if (
            isinstance(value, type)
            and issubclass(value, np.random.BitGenerator)
            and value is not np.random.BitGenerator
        ):
            names.update({f"numpy.random.{attr}", _type_name(value)})
    return names


def _scipy_types() -> set[str]:
    import scipy.sparse

    return {
        _type_name(value)
        for value in vars(scipy.sparse).values()
        if isinstance(value, type)
        and issubclass(value, scipy.sparse.spmatrix | scipy.sparse.sparray)
        and not value.__name__.startswith("_")
    }


def _sklearn_types() -> set[str]:
    import sklearn.gaussian_process.kernels as kernels
    import sklearn.model_selection as model_selection
    from sklearn._loss import _loss as cython_loss
    from sklearn._loss import link, loss
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.metrics._dist_metrics import DistanceMetric
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    names = {_type_name(cls) for cls in (Tree, _BinMapper, KDTree, BallTree)}
    for module, base in (
        (loss, loss.BaseLoss),
        (link, link.BaseLink),
        (kernels, kernels.Kernel),
    ):
        names.update(
            _type_name(value)
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, base) and value is not base
        )
    names.add(_type_name(link.Interval))
    names.update(  # the compiled halves of the losses (not subclasses in Python's sense)
        _type_name(value)
        for name, value in vars(cython_loss).items()
        if isinstance(value, type) and name.startswith("Cy")
    )
    names.update(_subclass_names(DistanceMetric))
    splitters = (model_selection.BaseCrossValidator, model_selection.BaseShuffleSplit)
    names.update(
        _type_name(value)
        for name, value in vars(model_selection).items()
        if isinstance(value, type) and issubclass(value, splitters) and not name.startswith("_")
    )
    return names


def _subclass_names(base: type) -> set[str]:
    found: set[str] = set()
    pending: list[type] = [base]
    while pending:
        cls = pending.pop()
        subclasses: list[type] = cls.__subclasses__()
        for sub in subclasses:
            if sub.__module__.startswith("sklearn.") and _type_name(sub) not in found:
                found.add(_type_name(sub))
                pending.append(sub)
    return found
