"""How step outputs travel: by reference to a content-addressed artifact, never by pickle.

Each output becomes a small JSON *reference* recorded with the step execution:

==============  ==============================================  =======================
value           stored as                                       reference ``kind``
==============  ==============================================  =======================
pandas / Arrow  Parquet blob                                    ``pandas`` / ``arrow``
/ Polars frame                                                  / ``polars``
numpy array     ``.npy`` blob (no object arrays)                ``numpy``
JSON value      canonical JSON blob (metrics are JSON too)      ``json``
bytes           the bytes                                       ``bytes``
DatasetVersion  nothing: its ``name@version``                   ``dataset``
ModelInfo       nothing: its model URI and manifest             ``model``
scikit-learn    ``mloop.log_model`` in the step's run           ``model``
anything else   not stored: kept in memory, moved between       ``memory``
                processes by the executor's own transport
==============  ==============================================  =======================

A ``memory`` output cannot be cached or resumed (nothing was stored), so the step that
makes it, and every step consuming it, runs every time.
"""

from __future__ import annotations

import io
import json
import typing
from collections.abc import Mapping
from typing import Any

from mloop.artifacts import ArtifactStore
from mloop.errors import InvalidInput

Ref = dict[str, Any]
STORED_KINDS = ("pandas", "arrow", "polars", "numpy", "json", "bytes")


def store_value(value: Any, artifacts: ArtifactStore, *, model_name: str) -> tuple[Ref, Any]:
    """Store ``value`` and return its reference, and the value itself when it can only
    travel in memory (else ``None``)."""
    kind = _frame_kind(value)
    if kind is not None:
        return {"kind": kind, "digest": artifacts.put_bytes(_parquet(value, kind)).digest}, None
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        import numpy as np

        if value.dtype.hasobject:
            return {"kind": "memory"}, value
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"kind": "numpy", "digest": artifacts.put_bytes(buffer.getvalue()).digest}, None
    if isinstance(value, bytes):
        return {"kind": "bytes", "digest": artifacts.put_bytes(value).digest}, None
    name = type(value).__name__
    if name == "DatasetVersion" and hasattr(value, "ref"):
        return {"kind": "dataset", "ref": value.ref, "digest": value.digest}, None
    if name == "ModelInfo" and hasattr(value, "model_uri"):
        return _model_ref(value), None
    if type(value).__module__.split(".")[0] == "sklearn":
        import mloop

        return _model_ref(mloop.log_model(value, model_name)), None
    try:
        data = canonical_json(value)
    except (TypeError, ValueError):
        return {"kind": "memory"}, value
    return {"kind": "json", "digest": artifacts.put_bytes(data).digest}, None


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, no NaN: equal values always give equal bytes (and digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _model_ref(info: Any) -> Ref:
    return {
        "kind": "model",
        "uri": info.model_uri,
        "digest": info.package_digest,
        "run_id": info.run_id,
        "artifact_path": info.artifact_path,
        "manifest": info.manifest.to_dict(),
        "registered_model_name": info.registered_model_name,
        "registered_version": info.registered_version,
    }


def _frame_kind(value: Any) -> str | None:
    module, name = type(value).__module__.split(".")[0], type(value).__name__
    if module == "pandas" and name == "DataFrame":
        return "pandas"
    if module == "pyarrow" and name == "Table":
        return "arrow"
    if module == "polars" and name == "DataFrame":
        return "polars"
    return None


def _parquet(value: Any, kind: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    if kind == "polars":
        value.write_parquet(buffer)
    else:
        table = pa.Table.from_pandas(value) if kind == "pandas" else value
        # Fixed metadata-free writer settings: the same frame gives the same bytes.
        pq.write_table(table, buffer, compression="zstd", write_statistics=False)
    return buffer.getvalue()


def digest_of(ref: Ref) -> str | None:
    """What identifies the value for caching; ``None`` for memory values."""
    if ref["kind"] == "dataset":
        return f"dataset:{ref['ref']}:{ref['digest']}"
    if ref["kind"] == "model":
        return f"model:{ref['digest']}"
    digest = ref.get("digest")
    return None if digest is None else f"{ref['kind']}:{digest}"


def load_value(ref: Ref, artifacts: ArtifactStore, hint: Any, memory: Any = None) -> Any:
    """The value a reference stands for, in the form the consumer's type ``hint`` asks for
    (a model as its URI, ``ModelInfo``, ``LoadedModel`` or the native estimator)."""
    kind = ref["kind"]
    if kind == "memory":
        return memory
    if kind == "dataset":
        if hint is str:
            return ref["ref"]
        from mloop.data import get_dataset_version

        return get_dataset_version(ref["ref"])
    if kind == "model":
        return _load_model(ref, hint)
    data = artifacts.get_bytes(ref["digest"])
    if kind == "json":
        return json.loads(data)
    if kind == "bytes":
        return data
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    import pyarrow.parquet as pq

    if kind == "polars":
        import polars as pl

        return pl.read_parquet(io.BytesIO(data))
    table = pq.read_table(io.BytesIO(data))
    return table.to_pandas() if kind == "pandas" else table


def _load_model(ref: Ref, hint: Any) -> Any:
    if hint is str:
        return ref["uri"]
    name = getattr(hint, "__name__", "")
    if name == "ModelInfo":
        from mloop.models import Manifest, ModelInfo

        manifest = Manifest.from_json(json.dumps(ref["manifest"]).encode())
        return ModelInfo(
            model_uri=ref["uri"],
            run_id=ref["run_id"],
            artifact_path=ref["artifact_path"],
            package_digest=ref["digest"],
            manifest=manifest,
            registered_model_name=ref.get("registered_model_name"),
            registered_version=ref.get("registered_version"),
        )
    from mloop.models import load_model

    loaded = load_model(ref["uri"])
    return loaded if name == "LoadedModel" else loaded.model


def select(value: Any, keys: tuple[str | int, ...], where: str) -> Any:
    """``value[k1][k2]…``, with an error naming the step when a key is missing."""
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise InvalidInput(f"{where} has no item {key!r}") from None
    return value


def wants_dataset(hint: Any) -> bool:
    """True for a ``DatasetVersion`` hint (or ``DatasetVersion | None``): a string given
    for it is a dataset reference to load."""
    if typing.get_origin(hint) in (typing.Union, _union_type()):
        return any(wants_dataset(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) == "DatasetVersion"


# -- type checks ------------------------------------------------------------------------------


def check_type(value: Any, hint: Any, where: str) -> None:
    """Refuse a value that does not match a step's type hint, naming where it went wrong.

    Checks classes, ``X | None``, ``Literal``, and one level of ``list``/``dict``/``tuple``
    items; hints it cannot judge (protocols, type variables) are accepted.
    """
    if not _matches(value, hint):
        raise InvalidInput(
            f"{where} expects {_describe(hint)}, got {type(value).__name__}; fix the step's "
            "type hint or what it is given"
        )


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, _union_type()):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is typing.Annotated:
        return _matches(value, args[0])
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is None:
        return not isinstance(hint, type) or _is_instance(value, hint)
    if not isinstance(origin, type):
        return True
    if not _is_instance(value, origin):
        return False
    if origin in (list, set, frozenset) and args:
        return all(_matches(v, args[0]) for v in value)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _matches(v, a) for v, a in zip(value, args, strict=True)
        )
    if issubclass(origin, Mapping) and len(args) == 2:
        return all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    return True


def _is_instance(value: Any, cls: type) -> bool:
    try:
        return isinstance(value, cls)
    except TypeError:  # a protocol that is not runtime-checkable
        return True


def _union_type() -> Any:
    import types

    return types.UnionType


def _describe(hint: Any) -> str:
    name = getattr(hint, "__name__", None)
    return name if isinstance(name, str) and typing.get_origin(hint) is None else str(hint)
