"""Opcodes that only build data: literals, strings, bytes, containers, the stack and marks.

They are mixed into :class:`~._walk.PickleWalker`, which handles what matters for safety
(imports, calls, ``BUILD``, the memo) and the hot loop. Each follows ``_pickle.c``: where
the C unpickler would fail, these fail; where it reads on (any line length, forms Python's
own parsers refuse), these read on too — a walk must never stop where a load continues.
"""

from __future__ import annotations

import codecs
import struct
from typing import Any

from mloop.models._scan._reader import StreamReader
from mloop.models._scan._values import LITERAL, LONG_STRING, CallResult, GlobalRef, Map, Seq

MAX_LINE = 1 << 16
"""Longest text argument kept: a longer literal is stepped over, a longer module name ends
the walk (no module can have one, so the import fails there)."""
SHORT_STRING = 1024
"""Strings longer than this are skipped undecoded: no module or qualified name is longer."""
INT4 = struct.Struct("<i").unpack_from


class Fail(Exception):
    """The real unpickler would stop at this opcode."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class DataOpcodes:
    """The data-only opcode handlers; the walker provides the state they work on."""

    stack: list[Any]
    metastack: list[list[Any]]
    reader: StreamReader
    cap: int
    proto: int

    def _pop(self) -> Any:
        if not self.stack:
            raise Fail("stack underflow")
        return self.stack.pop()

    def _pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise Fail("could not find MARK")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _top(self) -> Any:
        if not self.stack:
            raise Fail("stack underflow")
        return self.stack[-1]

    def _line(self) -> bytes | None:
        """A text argument without its newline; ``None`` when it is longer than
        :data:`MAX_LINE` (then skipped: CPython reads any length, so neither may we stop)."""
        line = self.reader.readline(MAX_LINE)
        if line is None:
            if not self.reader.skip_line():
                raise Fail("a text argument without its newline")
            return None
        return line[:-1]

    def _int_line(self) -> int:
        text = self._line()
        try:
            return int(text if text is not None else b"x")
        except ValueError:
            raise Fail("a memo index that is not an integer") from None

    def _uint(self, size: int) -> int:
        return int.from_bytes(self.reader.read(size), "little")

    def _push_string(self, size: int, *, unicode: bool) -> None:
        if size < 0:
            raise Fail("negative string length")
        if size > SHORT_STRING:
            self.reader.skip(size)
            self.stack.append(LONG_STRING)
            return
        data = self.reader.read(size)
        try:
            text = data.decode("utf-8", "surrogatepass") if unicode else data.decode("latin-1")
        except UnicodeDecodeError:
            raise Fail("a string that is not UTF-8") from None
        self.stack.append(text)

    def _op_proto(self) -> None:
        version = self._uint(1)
        if version > 5:
            raise Fail(f"unsupported pickle protocol {version}")
        self.proto = version

    def _op_int(self) -> None:
        text = self._line()
        if text in {b"00", b"01"}:
            self.stack.append(text == b"01")
            return
        try:  # int(x, 0) reads what _pickle.c's strtol/PyLong_FromString(x, 0) read, but
            self.stack.append(int(text if text is not None else b"x", 0))
        except ValueError:  # "010" (octal for strtol): keep it unknown rather than guess
            self.stack.append(LITERAL)

    def _op_long(self) -> None:
        text = self._line()
        if text is None:
            raise Fail("LONG argument with too many digits")
        try:
            self.stack.append(int(text[:-1] if text.endswith(b"L") else text, 0))
        except ValueError:
            raise Fail(f"LONG argument is not an integer: {text[:40]!r}") from None

    def _op_float(self) -> None:
        self._line()  # never refused: the C parser accepts forms Python's float() does not
        self.stack.append(LITERAL)

    def _op_long1(self) -> None:
        self._push_long(self._uint(1))

    def _op_long4(self) -> None:
        size = int.from_bytes(self.reader.read(4), "little", signed=True)
        if size < 0:
            raise Fail("LONG4 with a negative byte count")
        self._push_long(size)

    def _push_long(self, size: int) -> None:
        if size > 16:
            self.reader.skip(size)
            self.stack.append(LITERAL)
        else:
            self.stack.append(int.from_bytes(self.reader.read(size), "little", signed=True))

    def _op_string(self) -> None:
        text = self._line()
        if text is None:
            self.stack.append(LONG_STRING)
            return
        if len(text) < 2 or text[0] != text[-1] or text[0] not in b"'\"":
            raise Fail("the STRING opcode argument must be quoted")
        try:
            data = codecs.escape_decode(text[1:-1])[0]
        except ValueError:
            raise Fail("a STRING with a bad escape") from None
        self.stack.append(data.decode("latin-1") if len(data) <= SHORT_STRING else LONG_STRING)

    def _op_binstring(self) -> None:
        self._push_string(int.from_bytes(self.reader.read(4), "little", signed=True), unicode=False)

    def _op_short_binstring(self) -> None:
        self._push_string(self._uint(1), unicode=False)

    def _op_unicode(self) -> None:
        line = self._line()
        if line is None:
            self.stack.append(LONG_STRING)
            return
        try:
            text = line.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise Fail("a UNICODE argument that does not decode") from None
        self.stack.append(text if len(text) <= SHORT_STRING else LONG_STRING)

    def _op_binunicode(self) -> None:
        self._push_string(self._uint(4), unicode=True)

    def _op_binunicode8(self) -> None:
        self._push_string(self._uint(8), unicode=True)

    def _skip_bytes(self, size: int) -> None:
        self.reader.skip(size)
        self.stack.append(LITERAL)

    def _op_binbytes(self) -> None:
        self._skip_bytes(self._uint(4))

    def _op_short_binbytes(self) -> None:
        self._skip_bytes(self._uint(1))

    def _op_binbytes8(self) -> None:
        self._skip_bytes(self._uint(8))

    def _op_bytearray8(self) -> None:
        self._skip_bytes(self._uint(8))

    def _op_next_buffer(self) -> None:
        raise Fail("refers to an out-of-band buffer, which no file loader provides")

    def _op_readonly_buffer(self) -> None:
        self._top()

    def _op_empty_set(self) -> None:
        self.stack.append(Seq(None))

    def _op_frozenset(self) -> None:
        self._pop_mark()
        self.stack.append(LITERAL)

    def _op_additems(self) -> None:
        self._pop_mark()
        self._top()

    def _op_list(self) -> None:
        items = self._pop_mark()
        self.stack.append(Seq(items if len(items) <= self.cap else None))

    def _op_dict(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise Fail("DICT with an odd number of items")
        pairs = list(zip(items[::2], items[1::2], strict=True))
        self.stack.append(Map(pairs if len(pairs) <= self.cap else None))

    def _op_tuple(self) -> None:
        items = self._pop_mark()
        self.stack.append(tuple(items) if len(items) <= self.cap else LITERAL)

    def _op_append(self) -> None:
        value = self._pop()
        target = self._top()
        if isinstance(target, Seq) and target.items is not None:
            extend(target, [value], self.cap)

    def _op_setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        target = self._top()
        if isinstance(target, Map) and target.items is not None:
            extend(target, [(key, value)], self.cap)

    def _op_dup(self) -> None:
        self.stack.append(self._top())

    def _op_pop_mark(self) -> None:
        self._pop_mark()


def text_of(value: str | bytes) -> str:
    """A string operand: SHORT_BINUNICODE strings stay UTF-8 bytes until they are used."""
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # the unpickler failed when it read this string
        raise Fail("a string that is not UTF-8") from None


def surely_not_str(value: Any) -> bool:
    """Values that cannot be an exact ``str``: literals of other types, imported names
    (no allowed global is a string; any other is reported already) and what allowed
    callables return (numpy's str_ is a subclass, which STACK_GLOBAL refuses)."""
    return (
        value is None
        or value is LITERAL
        or isinstance(value, bool | int | tuple | Seq | Map | GlobalRef | CallResult)
    )


def extend(target: Seq | Map, items: list[Any], cap: int) -> None:
    held = target.items
    assert held is not None
    if len(held) + len(items) > cap:
        target.items = None
    else:
        held.extend(items)


SLOW_OPCODES = {
    0x80: "proto",
    ord("I"): "int",
    ord("L"): "long",
    ord("F"): "float",
    0x8A: "long1",
    0x8B: "long4",
    ord("S"): "string",
    ord("T"): "binstring",
    ord("U"): "short_binstring",
    ord("V"): "unicode",
    ord("X"): "binunicode",
    0x8D: "binunicode8",
    ord("B"): "binbytes",
    ord("C"): "short_binbytes",
    0x8E: "binbytes8",
    0x96: "bytearray8",
    0x97: "next_buffer",
    0x98: "readonly_buffer",
    0x8F: "empty_set",
    0x91: "frozenset",
    0x90: "additems",
    ord("l"): "list",
    ord("d"): "dict",
    ord("t"): "tuple",
    ord("a"): "append",
    ord("s"): "setitem",
    ord("2"): "dup",
    ord("1"): "pop_mark",
    ord("g"): "get",
    ord("j"): "long_binget",
    ord("p"): "put",
    ord("r"): "long_binput",
    ord("c"): "global",
    ord("i"): "inst",
    0x93: "stack_global",
    ord("R"): "reduce",
    ord("b"): "build",
    0x81: "newobj",
    0x92: "newobj_ex",
    ord("o"): "obj",
    0x82: "ext1",
    0x83: "ext2",
    0x84: "ext4",
    ord("P"): "persid",
    ord("Q"): "binpersid",
}
