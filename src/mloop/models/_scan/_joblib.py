"""Where joblib puts array bytes, so the walk can step over them without reading them.

``joblib.dump`` pickles each numpy array as a ``NumpyArrayWrapper`` (built with ``NEWOBJ``
or ``copyreg._reconstructor``, its attributes set by one ``BUILD`` of a dict) and writes,
right after that ``BUILD``:

- for an array of Python objects: a complete nested pickle (protocol 5) of the array, which
  ``joblib.load`` reads with a fresh unpickler — the walk scans it like any pickle;
- otherwise, when the wrapper's ``numpy_array_alignment_bytes`` is set (joblib >= 1.2,
  seekable files): one byte ``p`` then ``p`` padding bytes, so the data starts aligned;
- then ``prod(shape) * dtype.itemsize`` raw bytes.

The dtype inside the wrapper is itself pickled as ``numpy.dtype(code, False, True)`` plus a
``BUILD`` state ``(version, byteorder, subarray, names, fields, elsize, alignment, flags)``
(``elsize`` is set for flexible types such as ``U10`` or structured ``V16``; the
``0x01`` flag means "holds Python objects"). Anything that does not fit this shape is
refused, so the walk never skips bytes joblib would read as opcodes, nor the reverse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mloop.models._scan._values import CallResult, GlobalRef, plain

NUMPY_DTYPE = GlobalRef("numpy", "dtype")
_FIXED_SIZE = re.compile(r"^[<>|=]?([biufcmM])(\d+)(\[[A-Za-z0-9]+\])?$")
_FLEXIBLE = re.compile(r"^[<>|=]?([SUV])(\d*)$")
_NPY_ITEM_HASOBJECT = 0x01
_STATE_KEYS = {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}


class LayoutError(ValueError):
    """The wrapper does not describe an array joblib would read the usual way."""


@dataclass(frozen=True)
class ArrayLayout:
    holds_objects: bool
    nbytes: int
    alignment: int | None


def array_layout(state: Any) -> ArrayLayout:
    """Read the wrapper's ``BUILD`` state (a tracked dict) into the payload's layout."""
    fields = plain(state)
    if not isinstance(fields, dict) or not {"shape", "dtype"} <= set(fields) <= _STATE_KEYS:
        raise LayoutError("a joblib array wrapper whose attributes are not the usual ones")
    shape = fields["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise LayoutError(f"a joblib array wrapper with an unreadable shape {shape!r}")
    alignment = fields.get("numpy_array_alignment_bytes")
    if alignment is not None and (not isinstance(alignment, int) or not 0 < alignment <= 4096):
        raise LayoutError(f"a joblib array wrapper with alignment {alignment!r}")
    itemsize, holds_objects = dtype_itemsize(fields["dtype"])
    return ArrayLayout(holds_objects, math.prod(shape) * itemsize, alignment)


def dtype_itemsize(dtype: Any) -> tuple[int, bool]:
    """``(itemsize, holds_objects)`` of a pickled ``numpy.dtype``."""
    if not isinstance(dtype, CallResult) or dtype.func != NUMPY_DTYPE:
        raise LayoutError("a joblib array wrapper whose dtype is not a numpy.dtype")
    args = plain(dtype.args)
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        raise LayoutError("a numpy.dtype pickled with unusual arguments")
    code = args[0]
    state = plain(dtype.state)
    elsize = flags = -1
    if state is not None:
        if not isinstance(state, tuple) or len(state) < 8 or not isinstance(state[5], int):
            raise LayoutError("a numpy.dtype with an unreadable state")
        elsize, flags = state[5], state[7] if isinstance(state[7], int) else -1
    if code in {"O", "O8", "O4", "|O", "|O8"}:
        return 8, True
    fixed = _FIXED_SIZE.match(code)
    if fixed and elsize <= 0:
        return int(fixed.group(2)), False
    if (fixed or _FLEXIBLE.match(code)) and elsize >= 0:
        return elsize, flags >= 0 and bool(flags & _NPY_ITEM_HASOBJECT)
    raise LayoutError(f"a numpy.dtype {code!r} whose size the scanner cannot tell")
