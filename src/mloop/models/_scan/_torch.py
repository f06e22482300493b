"""PyTorch's non-zip layouts, which mix pickles with raw tensor bytes.

The legacy ``torch.save`` stream (``_use_new_zipfile_serialization=False``) is five pickles
and then the storages: the magic number, the protocol version (1001), a dict of system
facts, the object itself (tensors refer to storages by persistent ids
``('storage', torch.FloatStorage, key, location, numel, …)``), the list of storage keys —
then, for each key in that order, an 8-byte little-endian element count and that many
elements. The older tar layout has members ``sys_info`` and ``pickle`` (plain pickles),
``storages`` (a count, then per storage a pickle ``(key, location, storage_type)``
followed by the same count-and-bytes record, then a pickle of views) and ``tensors`` (a
count, then per tensor a pickle and a binary header of sizes and strides).

Every pickle here goes through the opcode walk; the raw parts are stepped over by the
sizes the pickles announce, and anything that does not add up is rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mloop.models._scan._allowlist import TORCH_STORAGE_ELEMENT_SIZES
from mloop.models._scan._reader import StreamReader
from mloop.models._scan._values import GlobalRef, plain

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_STORAGE_MODULES = {"torch", "torch.storage", "torch.cuda"}
TAR_MEMBERS = {"sys_info", "pickle", "storages", "tensors"}
MAX_KEYS = 1 << 20

Walk = Callable[[StreamReader, Callable[[Any], None] | None, int], Any]
"""Walks one pickle from the reader (with a persistent-id callback and a container cap)
and returns its value, raising on failure."""


class LayoutError(ValueError):
    """The raw parts do not match what the pickles announce."""


def element_size(storage_type: Any) -> int:
    """Bytes per element of a storage class such as ``torch.FloatStorage``."""
    if isinstance(storage_type, GlobalRef) and storage_type.module in _STORAGE_MODULES:
        size = TORCH_STORAGE_ELEMENT_SIZES.get(storage_type.name)
        if size is not None:
            return size
    raise LayoutError(f"an unknown storage type {storage_type!r}")


def scan_legacy_stream(reader: StreamReader, walk: Walk) -> None:
    """After the magic-number pickle: the rest of a legacy ``torch.save`` stream."""
    protocol = plain(walk(reader, None, 64))
    if protocol != PROTOCOL_VERSION:
        raise LayoutError(f"legacy PyTorch protocol {protocol!r}, expected {PROTOCOL_VERSION}")
    walk(reader, None, 64)  # system facts
    sizes: dict[str, int] = {}

    def storage_reference(pid: Any) -> None:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            if not isinstance(pid[2], str):
                raise LayoutError("a storage key that is not a string")
            sizes[pid[2]] = element_size(pid[1])
            if len(sizes) > MAX_KEYS:
                raise LayoutError("more storages than the scanner tracks")

    walk(reader, storage_reference, 64)
    keys = plain(walk(reader, None, MAX_KEYS))
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise LayoutError("the storage keys are not a list of strings")
    for key in keys:
        if key not in sizes:
            raise LayoutError(f"storage {key!r} is not referenced by the object")
        _skip_storage(reader, sizes[key])
    if not reader.at_end():
        raise LayoutError("data after the last storage")


def scan_tar_storages(reader: StreamReader, walk: Walk) -> None:
    count = plain(walk(reader, None, 64))
    if not isinstance(count, int) or not 0 <= count <= MAX_KEYS:
        raise LayoutError(f"a storage count of {count!r}")
    for _ in range(count):
        args = plain(walk(reader, None, 64))
        if not isinstance(args, tuple) or len(args) != 3:
            raise LayoutError("a storage record that is not (key, location, storage_type)")
        _skip_storage(reader, element_size(args[2]))
    walk(reader, None, 64)  # storage views
    if not reader.at_end():
        raise LayoutError("data after the storage views")


def scan_tar_tensors(reader: StreamReader, walk: Walk) -> None:
    count = plain(walk(reader, None, 64))
    if not isinstance(count, int) or not 0 <= count <= MAX_KEYS:
        raise LayoutError(f"a tensor count of {count!r}")
    for _ in range(count):
        walk(reader, None, 64)  # (key, storage_id, original_tensor_type)
        ndim = int.from_bytes(reader.read(4), "little", signed=True)
        if not 0 <= ndim <= 64:
            raise LayoutError(f"a tensor with {ndim} dimensions")
        reader.skip(4 + 16 * ndim + 8)  # padding, sizes, strides, storage offset
    if not reader.at_end():
        raise LayoutError("data after the last tensor")


def _skip_storage(reader: StreamReader, size: int) -> None:
    count = int.from_bytes(reader.read(8), "little", signed=True)
    if count < 0:
        raise LayoutError("a storage with a negative element count")
    reader.skip(count * size)
