"""The ``.npy`` header: an object dtype means a pickle follows, any other is plain data.

Format (numpy.lib.format): ``\\x93NUMPY``, major and minor version bytes, the header length
(2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), then a Python dict
literal ``{'descr': …, 'fortran_order': …, 'shape': (…)}`` padded with spaces and a
newline. ``numpy.load(allow_pickle=True)`` unpickles everything after the header when the
dtype holds Python objects; otherwise it reads ``prod(shape) * itemsize`` raw bytes.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from mloop.models._scan._reader import StreamReader

MAX_HEADER = 10_000  # numpy.load's own default limit (max_header_size)


class NpyError(ValueError):
    """Not a well-formed ``.npy`` header."""


@dataclass(frozen=True)
class NpyHeader:
    holds_objects: bool
    nbytes: int


def read_header(reader: StreamReader) -> NpyHeader:
    """Read the header from ``reader`` (left at the first data byte)."""
    prefix = reader.read(8)
    major = prefix[6]
    if major not in {1, 2, 3}:
        raise NpyError(f"unknown .npy format version {major}.{prefix[7]}")
    size = int.from_bytes(reader.read(2 if major == 1 else 4), "little")
    if size > MAX_HEADER:
        raise NpyError(f"a .npy header of {size} bytes (numpy refuses more than {MAX_HEADER})")
    text = reader.read(size).decode("utf-8" if major == 3 else "latin-1")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise NpyError("the .npy header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise NpyError("the .npy header does not have exactly descr, fortran_order, shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise NpyError(f"the .npy shape {shape!r} is not a tuple of sizes")
    descr = header["descr"]
    if _holds_objects(descr):
        return NpyHeader(True, 0)
    return NpyHeader(False, math.prod(shape) * _itemsize(descr))


def _holds_objects(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(
            isinstance(field, tuple) and len(field) >= 2 and _holds_objects(field[1])
            for field in descr
        )
    return False


def _itemsize(descr: Any) -> int:
    import numpy as np  # a core dependency; only .npy files need it

    try:
        return int(np.lib.format.descr_to_dtype(descr).itemsize)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        raise NpyError(f"the .npy dtype {descr!r} is not understood") from None
