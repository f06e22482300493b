"""Hand-written pickles: the tricks are built opcode by opcode, never by unpickling.

``Ops`` appends raw opcodes; each method is one opcode of ``pickletools`` by name, so a
test reads like a disassembly. Nothing here imports the globals it names.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path


class Ops:
    def __init__(self, proto: int | None = 2) -> None:
        self.parts: list[bytes] = []
        if proto is not None and proto >= 2:
            self.parts.append(bytes([0x80, proto]))

    def raw(self, data: bytes) -> Ops:
        self.parts.append(data)
        return self

    def GLOBAL(self, module: str, name: str) -> Ops:
        return self.raw(b"c" + f"{module}\n{name}\n".encode())

    def INST(self, module: str, name: str) -> Ops:
        return self.raw(b"i" + f"{module}\n{name}\n".encode())

    def STRING(self, text: str) -> Ops:
        return self.raw(b"S" + repr(text).encode() + b"\n")

    def UNICODE(self, text: str) -> Ops:
        data = text.encode()
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def SHORT_BINUNICODE(self, text: str) -> Ops:
        data = text.encode()
        return self.raw(b"\x8c" + bytes([len(data)]) + data)

    def INT(self, value: int) -> Ops:
        return self.raw(b"J" + struct.pack("<i", value))

    def MARK(self) -> Ops:
        return self.raw(b"(")

    def TUPLE(self) -> Ops:
        return self.raw(b"t")

    def TUPLE1(self) -> Ops:
        return self.raw(b"\x85")

    def EMPTY_TUPLE(self) -> Ops:
        return self.raw(b")")

    def EMPTY_DICT(self) -> Ops:
        return self.raw(b"}")

    def NONE(self) -> Ops:
        return self.raw(b"N")

    def NEWFALSE(self) -> Ops:
        return self.raw(b"\x89")

    def SETITEM(self) -> Ops:
        return self.raw(b"s")

    def SETITEMS(self) -> Ops:
        return self.raw(b"u")

    def REDUCE(self) -> Ops:
        return self.raw(b"R")

    def BUILD(self) -> Ops:
        return self.raw(b"b")

    def OBJ(self) -> Ops:
        return self.raw(b"o")

    def NEWOBJ(self) -> Ops:
        return self.raw(b"\x81")

    def NEWOBJ_EX(self) -> Ops:
        return self.raw(b"\x92")

    def STACK_GLOBAL(self) -> Ops:
        return self.raw(b"\x93")

    def MEMOIZE(self) -> Ops:
        return self.raw(b"\x94")

    def BINPUT(self, index: int) -> Ops:
        return self.raw(b"q" + bytes([index]))

    def BINGET(self, index: int) -> Ops:
        return self.raw(b"h" + bytes([index]))

    def BINPERSID(self) -> Ops:
        return self.raw(b"Q")

    def POP(self) -> Ops:
        return self.raw(b"0")

    def EXT1(self, code: int) -> Ops:
        return self.raw(b"\x82" + bytes([code]))

    def STOP(self) -> Ops:
        return self.raw(b".")

    def call(self, module: str, name: str, *args: str) -> Ops:
        """``module.name(*args)`` through GLOBAL + TUPLE + REDUCE."""
        self.GLOBAL(module, name).MARK()
        for arg in args:
            self.UNICODE(arg)
        return self.TUPLE().REDUCE()

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def reduce_to(module: str, name: str, *args: str, proto: int = 2) -> bytes:
    """What ``pickle.dumps`` writes for an object whose ``__reduce__`` calls module.name."""
    return Ops(proto).call(module, name, *args).STOP().bytes()


# -- PyTorch layouts, written the way torch.save writes them (torch is not installed) -----

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def torch_state_dict_pickle(keys: list[str], numel: int, *, evil: bool = False) -> bytes:
    """An OrderedDict of tensors: _rebuild_tensor_v2(storage pid, 0, (numel,), (1,), False,
    OrderedDict()) per key, the storage a persistent id ('storage', torch.FloatStorage,
    key, 'cpu', numel) — the shape ``torch.save`` gives a state dict."""
    ops = Ops(2).GLOBAL("collections", "OrderedDict").EMPTY_TUPLE().REDUCE().MARK()
    for key in keys:
        ops.UNICODE(f"layer.{key}").GLOBAL("torch._utils", "_rebuild_tensor_v2").MARK()
        ops.MARK().UNICODE("storage").GLOBAL("torch", "FloatStorage").UNICODE(key)
        ops.UNICODE("cpu").INT(numel).TUPLE().BINPERSID()
        ops.INT(0).MARK().INT(numel).TUPLE().MARK().INT(1).TUPLE().NEWFALSE()
        ops.GLOBAL("collections", "OrderedDict").EMPTY_TUPLE().REDUCE().TUPLE().REDUCE()
    if evil:
        ops.UNICODE("hook").call("os", "system", "echo pwned")
    return ops.SETITEMS().STOP().bytes()


def torch_zip(path: Path, *, evil: bool = False, numel: int = 4) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", torch_state_dict_pickle(["0", "1"], numel, evil=evil))
        archive.writestr("archive/byteorder", "little")
        for key in ("0", "1"):
            archive.writestr(f"archive/data/{key}", struct.pack(f"<{numel}f", *range(numel)))
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/.data/serialization_id", "1234567890\n")
    return path


def torch_legacy_stream(*, evil: bool = False, numel: int = 4) -> bytes:
    keys = ["0", "1"]
    parts = [
        pickle.dumps(TORCH_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(
            {
                "protocol_version": 1001,
                "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4},
            },
            protocol=2,
        ),
        torch_state_dict_pickle(keys, numel, evil=evil),
        pickle.dumps(keys, protocol=2),
    ]
    for _ in keys:
        parts.append(struct.pack("<q", numel) + struct.pack(f"<{numel}f", *range(numel)))
    return b"".join(parts)


def torch_legacy_tar(path: Path, *, evil: bool = False) -> Path:
    storage_record = Ops(2).MARK().UNICODE("0").UNICODE("cpu")
    storage_record.GLOBAL("torch", "FloatStorage").TUPLE().STOP()
    storages = (
        pickle.dumps(1, protocol=2)
        + storage_record.bytes()
        + struct.pack("<q", 4)
        + struct.pack("<4f", 1, 2, 3, 4)
        + pickle.dumps([], protocol=2)
    )
    tensor_record = Ops(2).MARK().UNICODE("t0").UNICODE("0")
    tensor_record.GLOBAL("torch", "FloatTensor").TUPLE().STOP()
    tensors = (
        pickle.dumps(1, protocol=2)
        + tensor_record.bytes()
        + struct.pack("<i", 1)
        + b"\0" * 4
        + struct.pack("<q", 4)
        + struct.pack("<q", 1)
        + struct.pack("<q", 0)
    )
    obj = reduce_to("os", "system", "echo pwned") if evil else pickle.dumps({"w": 1}, 2)
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
        "pickle": obj,
        "storages": storages,
        "tensors": tensors,
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
