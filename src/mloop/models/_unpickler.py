"""``restricted_load``: unpickle a third-party model only through the scanner's allow-list.

Two locks, both from the same allow-list: the file is scanned first (nothing runs unless
every global it would import is allowed and it parses), then it is unpickled by an
unpickler whose ``find_class`` resolves allowed names only — so a gap between what the
scanner understood and what the unpickler does still cannot reach anything else.
joblib files (plain or compressed) go through a subclass of joblib's own unpickler, which
reads the raw array bytes joblib writes between opcodes and routes the nested pickles of
object arrays through the same ``find_class``.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput, UnsafeModel
from mloop.models._scan._allowlist import is_allowed, refusal_reason
from mloop.models._scan._report import GLOBAL, Finding, ScanReport
from mloop.models._scan._scanner import scan_path

_LOADABLE = {"pickle", "joblib"}
_COMPRESSIONS = {"gzip", "bz2", "xz", "lzma", "zlib", "lz4", "zstd"}


def restricted_load(path: str | Path) -> Any:
    """Load a pickle, joblib or object ``.npy`` file whose scan is clean, resolving only
    allow-listed globals. Raises :class:`~mloop.errors.UnsafeModel` naming the first
    refused global (or the reason the file cannot be parsed), and
    :class:`~mloop.errors.InvalidInput` for formats it does not load (archives, PyTorch
    checkpoints, plain data)."""
    source = Path(path)
    report = scan_path(source)
    if not report.safe:
        raise UnsafeModel(_unsafe_message(source, report), details=report.to_dict())
    if source.is_dir() or len(report.files) != 1:
        raise InvalidInput(
            f"{str(source)!r} is a folder or an archive; restricted_load reads one pickle, "
            "joblib or .npy file (scan the folder with `mloop models scan`)"
        )
    layers = report.files[0].format.split("+")
    kind = layers[-1]
    try:
        if kind.startswith("npy (object array"):
            return _load_npy(source)
        if kind in _LOADABLE and all(layer in _COMPRESSIONS for layer in layers[:-1]):
            return _load_joblib(source)
    except UnsafeModel:
        raise
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, ValueError) as error:
        raise InvalidInput(f"cannot load {str(source)!r}: {error}") from None
    raise InvalidInput(
        f"{str(source)!r} is {kind}: restricted_load reads pickle, joblib (optionally "
        "compressed) and object .npy files; a PyTorch checkpoint needs torch's own "
        "weights_only loader"
    )


def _unsafe_message(source: Path, report: ScanReport) -> str:
    first: Finding = next(
        (finding for finding in report.findings if finding.kind == GLOBAL), report.findings[0]
    )
    where = first.file if first.file != source.name else str(source)
    more = len(report.findings) - 1
    tail = f" (and {more} more finding{'s' if more > 1 else ''})" if more else ""
    if first.kind == GLOBAL:
        return f"{where}: refused to import {first.module}.{first.name}: {first.reason}{tail}"
    return f"{where}: {first.reason}{tail}"


def resolve_allowed(module: str, name: str) -> Any:
    """What ``find_class`` returns: the object, when ``module.name`` is allowed."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if not is_allowed(module, name):
        raise UnsafeModel(
            f"refused to import {module}.{name}: {refusal_reason(module, name)}",
            details={"module": module, "name": name},
        )
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle unpickler that imports only allow-listed globals and has no persistent
    ids (so no loader-specific objects either)."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_allowed(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeModel("refused a persistent id: plain model pickles have none")


def _load_npy(source: Path) -> Any:
    """The pickle after a ``.npy`` header (the scan has checked the header already)."""
    with open(source, "rb") as file:
        major = file.read(8)[6]
        size = int.from_bytes(file.read(2 if major == 1 else 4), "little")
        file.seek(size, io.SEEK_CUR)
        return RestrictedUnpickler(file).load()


def _load_joblib(source: Path) -> Any:
    from joblib.numpy_pickle import NumpyUnpickler  # type: ignore[import-untyped]
    from joblib.numpy_pickle_utils import (  # type: ignore[import-untyped]
        _validate_fileobject_and_memmap,
    )

    class RestrictedNumpyUnpickler(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            return resolve_allowed(module, name)

        def persistent_load(self, pid: Any) -> Any:
            raise UnsafeModel("refused a persistent id: joblib files have none")

    with (
        open(source, "rb") as file,
        _validate_fileobject_and_memmap(file, str(source), None) as (stream, _),
    ):
        if isinstance(stream, str):  # joblib < 0.10 keeps arrays in sibling files
            raise InvalidInput(f"{str(source)!r} uses joblib's pre-0.10 format; not loaded")
        return RestrictedNumpyUnpickler(str(source), stream, ensure_native_byte_order=True).load()
