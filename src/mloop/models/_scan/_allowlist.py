"""The globals a model pickle may import: deny by default, allow by exact name.

A pickle can import any importable object and call it with arguments it chooses, so every
entry here must be harmless to import, harmless to call with *any* arguments, and harmless
to have its result's state set by ``BUILD``. Each group says why it qualifies. Nothing is
allowed by module prefix alone: a family (scikit-learn, scipy.sparse, numpy scalar types,
PyTorch storages) is spelled out as exact ``(module, name)`` pairs, so a function that
happens to live next to an allowed class (``numpy.load``, ``numpy.testing``…,
``torch.storage._load_from_bytes``) stays refused.

Everything else is refused; :func:`refusal_reason` only words the refusal, it does not
decide it.
"""

from __future__ import annotations

from functools import cache

from mloop.models._scan._sklearn_classes import CLASSES_BY_MODULE

_BUILTIN_CONTAINERS = {
    # Constructors of plain data: calling them with any arguments builds a value and runs
    # no code of the caller's choosing (they iterate what they are given, and everything
    # iterable in a pickle was itself built from allowed globals). Protocol <= 2 pickles
    # rebuild bytes, sets and ranges through these.
    ("builtins", name)
    for name in (
        "set", "frozenset", "list", "dict", "tuple", "bytearray", "bytes", "slice", "complex",
        "range", "object",
    )
}  # fmt: skip

_STDLIB = {
    # copyreg._reconstructor(cls, base, state) is how protocol 0/1 rebuild any object:
    # ``base.__new__(cls)``; both classes are themselves globals in the stream, so each is
    # checked against this list. __newobj__/__newobj_ex__ are the same for ``cls.__new__``.
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("copyreg", "__newobj_ex__"),
    # Protocol <= 2 writes bytes as _codecs.encode(str, "latin1"). Encoding only looks up
    # codecs inside the ``encodings`` package and cannot import anything else.
    ("_codecs", "encode"),
    # Containers from ``collections``: data structures only. defaultdict's factory is a
    # global of the stream (checked here) and is only called by the caller's own code.
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("collections", "deque"),
    ("collections", "Counter"),
}

_NUMPY_CORE = {
    # Array, scalar and dtype reconstruction as numpy itself pickles them (numpy 1.x
    # ``numpy.core`` and numpy 2.x ``numpy._core``): they allocate and fill arrays and
    # check that the subtype is an ndarray subclass.
    (f"{core}.{module}", name)
    for core in ("numpy.core", "numpy._core")
    for module, name in (
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
        ("numeric", "_frombuffer"),
    )
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "matrix"),
    ("numpy.matrixlib.defmatrix", "matrix"),
    ("numpy.ma", "MaskedArray"),
    ("numpy.ma.core", "MaskedArray"),
    ("numpy.ma.core", "MaskedConstant"),
    ("numpy.ma.core", "_mareconstruct"),
}

_NUMPY_SCALAR_TYPES = {
    # Scalar types (classes); calling one converts a value, e.g. numpy.float64("1.5").
    ("numpy", name)
    for name in (
        "bool_", "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
        "uint64", "intc", "uintc", "intp", "uintp", "int_", "uint", "longlong", "ulonglong",
        "byte", "ubyte", "short", "ushort", "half", "single", "double", "longdouble",
        "float16", "float32", "float64", "complex64", "complex128", "csingle", "cdouble",
        "clongdouble", "str_", "bytes_", "void", "object_", "datetime64", "timedelta64",
    )
}  # fmt: skip

_NUMPY_RANDOM = {
    # Random state as scikit-learn estimators keep it (random_state=RandomState(…)). The
    # constructors take a bit-generator name or a class: a class is a global of the stream
    # and so is checked here too; the bit generators and SeedSequence hold integers.
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._generator", "Generator"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
}

_NUMPY_FUNCTIONS_AS_PARAMETERS = {
    # Functions scikit-learn stores as hyper-parameters (FeatureAgglomeration's default
    # pooling_func). Referenced, not called, while loading; they compute on arrays.
    ("numpy", "mean"),
}

_SCIPY = {
    # Sparse matrices and arrays: their __setstate__ sets index and data arrays.
    (module, f"{fmt}_{kind}")
    for fmt in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
    for kind in ("matrix", "array")
    for module in (f"scipy.sparse._{fmt}", f"scipy.sparse.{fmt}", "scipy.sparse._arrays")
} | {
    # SplineTransformer keeps fitted B-splines; BSpline holds knots and coefficients, and
    # scipy's array-API shim stores its ``asarray`` (array conversion) as an attribute.
    ("scipy.interpolate._bsplines", "BSpline"),
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
    ("scipy._lib.array_api_compat.array_api_compat.numpy._aliases", "asarray"),
}

_SKLEARN_FUNCTIONS_AS_PARAMETERS = {
    # Score functions of univariate feature selection and the k-means inner loops that
    # estimators keep as attributes: numeric functions, referenced, not called, on load.
    ("sklearn.feature_selection._univariate_selection", name)
    for name in ("f_classif", "f_regression", "f_oneway", "chi2", "r_regression")
} | {
    ("sklearn.feature_selection._mutual_info", "mutual_info_classif"),
    ("sklearn.feature_selection._mutual_info", "mutual_info_regression"),
    ("sklearn.cluster._kmeans", "_kmeans_single_lloyd"),
    ("sklearn.cluster._kmeans", "_kmeans_single_elkan"),
}

_JOBLIB = {
    # joblib.dump writes each array as this placeholder followed by the raw bytes; the
    # class only stores shape, dtype and order (the scanner skips the bytes it announces).
    # The pre-0.10 NDArrayWrapper is NOT here: it makes joblib np.load(..., allow_pickle=
    # True) a sibling file named inside the pickle.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
}

TORCH_STORAGE_ELEMENT_SIZES = {
    # Typed storages of a state dict, with the size of one element in bytes (the legacy
    # format writes ``count`` elements of this size after the pickles).
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1, "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8, "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4,
    "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip

_TORCH = {
    # Tensor and parameter rebuilding from storages, as in PyTorch's own weights_only
    # allow-list. _rebuild_tensor_v2 views a storage; _rebuild_parameter wraps a tensor
    # (its hooks dict holds globals of the stream, checked here). NOT allowed:
    # torch.storage._load_from_bytes, which runs a full, unrestricted torch.load of bytes
    # embedded in the pickle; torch._tensor._rebuild_from_type_v2, which calls a function
    # from the stream; and anything outside state dicts (modules, optimizers, code).
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("torch", "device"),
} | {
    (module, name)
    for name in TORCH_STORAGE_ELEMENT_SIZES
    for module in ("torch", "torch.storage", "torch.cuda")
} | {
    # The tensor classes the pre-1.0 tar layout records per tensor (original_tensor_type).
    ("torch", f"{kind}Tensor")
    for kind in ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
} | {
    ("torch", name)
    for name in (
        "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
        "uint8", "bool", "complex64", "complex128",
    )
}  # fmt: skip

_EXACT: frozenset[tuple[str, str]] = frozenset(
    _BUILTIN_CONTAINERS
    | _STDLIB
    | _NUMPY_CORE
    | _NUMPY_SCALAR_TYPES
    | _NUMPY_RANDOM
    | _NUMPY_FUNCTIONS_AS_PARAMETERS
    | _SCIPY
    | _SKLEARN_FUNCTIONS_AS_PARAMETERS
    | _JOBLIB
    | _TORCH
    | {(module, name) for module, names in CLASSES_BY_MODULE.items() for name in names.split()}
)


def is_allowed(module: str, name: str) -> bool:
    """Whether importing ``module.name`` from a pickle is known to be harmless."""
    return (module, name) in _EXACT


def allowed_globals() -> frozenset[tuple[str, str]]:
    """Every allowed ``(module, name)`` pair (for documentation and tests)."""
    return _EXACT


_KNOWN_DANGEROUS = {
    "os": "runs commands and touches files",
    "posix": "runs commands and touches files",
    "nt": "runs commands and touches files",
    "subprocess": "runs commands",
    "pty": "spawns a shell",
    "socket": "opens network connections",
    "shutil": "copies and deletes files",
    "importlib": "imports arbitrary modules",
    "runpy": "runs code",
    "code": "runs code",
    "ctypes": "calls native code",
    "pickle": "loads a nested pickle",
    "_pickle": "loads a nested pickle",
    "cPickle": "loads a nested pickle",
    "marshal": "loads code objects",
    "dill": "loads a nested pickle",
    "types": "builds code and function objects",
    "webbrowser": "opens URLs",
    "pydoc": "imports by name and pipes to commands",
    "timeit": "runs code",
    "idlelib": "runs code",
    "asyncio": "runs commands",
    "http": "opens network connections",
    "urllib": "opens URLs",
    "requests": "opens URLs",
    "sys": "changes the interpreter",
}
_DANGEROUS_BUILTINS = {"eval", "exec", "compile", "getattr", "setattr", "__import__", "open",
                       "globals", "locals", "vars", "breakpoint", "input", "delattr", "apply",
                       "execfile", "file", "reload"}  # fmt: skip
_DANGEROUS_OPERATOR = {"attrgetter", "methodcaller", "itemgetter"}


@cache
def refusal_reason(module: str, name: str) -> str:
    """Why ``module.name`` is refused, in words a user can act on (without the name)."""
    top = module.split(".", 1)[0]
    if top in {"builtins", "__builtin__"} and name in _DANGEROUS_BUILTINS:
        return "runs or reaches arbitrary code"
    if top in {"operator", "_operator"} and name in _DANGEROUS_OPERATOR:
        return "reaches arbitrary attributes of other objects"
    if module == "functools" and name == "partial":
        return "calls a function chosen by the pickle"
    if top in _KNOWN_DANGEROUS:
        return f"{top} {_KNOWN_DANGEROUS[top]}"
    if top == "numpy" and (".testing" in module or name in {"load", "loads", "fromfile"}):
        return "loads files or runs code"
    return "not on the allow-list of known-safe globals"
