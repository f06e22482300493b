"""The opcode walk: what a pickle would import and call, found without running it.

:class:`PickleWalker` reads one pickle, opcode by opcode, and replays what CPython's
unpickler (``_pickle.c``) does with its stack, marks and memo — but with markers instead of
objects (see :mod:`._values`), so nothing is imported or called. Every ``GLOBAL``,
``STACK_GLOBAL`` and ``INST`` is checked against the allow-list; every call (``REDUCE``,
``OBJ``, ``NEWOBJ``, ``NEWOBJ_EX``, ``INST``) must call an imported name; ``BUILD`` must not
set attributes on an imported object; ``EXT*`` codes are refused. Where the real unpickler
would fail (bad opcode, stack underflow, missing memo entry, truncated data), the walk
raises :class:`WalkError` with the offset: what came before has been reported already.

Memory stays bounded whatever the stream size: the buffer is fixed, big payloads are
skipped, containers keep at most a few items, and the memo keeps a window of recent entries
plus the few that matter later (imported names, strings used as module names, dtypes).
The loop is written for speed — the common opcodes are handled inline with local
variables, the rest in one method per opcode.
"""

from __future__ import annotations

import _compat_pickle
import re
from collections.abc import Callable
from typing import Any

from mloop.models._scan import _joblib
from mloop.models._scan._allowlist import is_allowed, refusal_reason
from mloop.models._scan._opcodes import (
    INT4,
    SLOW_OPCODES,
    DataOpcodes,
    Fail,
    extend,
    surely_not_str,
    text_of,
)
from mloop.models._scan._reader import StreamReader, Truncated
from mloop.models._scan._report import (
    BUILD,
    CALL,
    EXTENSION,
    GLOBAL,
    PARSE_ERROR,
    UNRESOLVED,
    FileFindings,
)
from mloop.models._scan._values import (
    LITERAL,
    LONG_STRING,
    UNKNOWN,
    CallResult,
    GlobalRef,
    Map,
    Pid,
    Seq,
    never_callable,
    plain,
)

CONTAINER_CAP = 64
MEMO_WINDOW = 1 << 15
MAX_PINNED = 1 << 20
MAX_MEMO_INDEX = 1 << 31

_STYLE_NONE, _STYLE_MEMOIZE, _STYLE_PUT = 0, 1, 2
_MISSING = object()
_MODULE_NAME = re.compile(r"^[^\W\d]\w*(\.[^\W\d]\w*)*$")
JOBLIB_WRAPPER = GlobalRef("joblib.numpy_pickle", "NumpyArrayWrapper")
_RECONSTRUCTOR = GlobalRef("copyreg", "_reconstructor")
_NEWOBJ = GlobalRef("copyreg", "__newobj__")
_OBJECT = GlobalRef("builtins", "object")
_NUMPY_DTYPE = _joblib.NUMPY_DTYPE
_KEEP_ARGS = {_NUMPY_DTYPE, _RECONSTRUCTOR}


class WalkError(Exception):
    """The real unpickler would stop here: malformed, truncated or impossible input."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.message = message
        self.offset = offset


class PickleWalker(DataOpcodes):
    """Walks pickles from ``reader``, reporting into ``findings``.

    ``joblib_aware`` steps over the array bytes ``joblib.dump`` writes after each array
    wrapper; ``on_pid`` receives every persistent id (PyTorch storage references).
    After :meth:`walk`, ``acted`` tells whether the pickle imported or called anything
    before it ended or failed, and ``skipped_payloads`` how many joblib arrays it skipped.
    """

    def __init__(
        self,
        reader: StreamReader,
        findings: FileFindings,
        *,
        joblib_aware: bool = False,
        container_cap: int = CONTAINER_CAP,
        on_pid: Callable[[Any], None] | None = None,
    ) -> None:
        self.reader = reader
        self.findings = findings
        self.joblib_aware = joblib_aware
        self.cap = container_cap
        self.on_pid = on_pid
        self.acted = False
        self.flagged = False
        self.skipped_payloads = 0
        self._pinned_strings: set[str | bytes] = set()
        self._refs: dict[tuple[str, str], GlobalRef] = {}
        self._reset()
        self._handlers: dict[int, Callable[[], None]] = {
            opcode: getattr(self, f"_op_{name}") for opcode, name in SLOW_OPCODES.items()
        }

    def _reset(self) -> None:
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.young: dict[int, Any] = {}
        self.old: dict[int, Any] = {}
        self.pinned: dict[int, Any] = {}
        self.count = 0
        self.style = _STYLE_NONE
        self.put_high = -1
        self.proto = 0
        self.result: Any = _MISSING
        self.op_offset = 0

    # -- the loop -------------------------------------------------------------------------

    def walk(self) -> Any:
        """Walk one pickle up to its ``STOP``; return (a marker of) the value it builds."""
        self._reset()
        reader = self.reader
        try:
            return self._run()
        except Fail as failure:
            offset = failure.offset if failure.offset is not None else self.op_offset
            raise WalkError(failure.message, offset) from None
        except Truncated as truncated:
            raise WalkError(f"the data is truncated: {truncated}", reader.offset) from None
        except RecursionError:
            raise WalkError("nested joblib arrays too deep", reader.offset) from None

    def _run(self) -> Any:  # one flat loop: the fast way to dispatch opcodes in Python
        r = self.reader
        stack = self.stack
        push = stack.append
        young = self.young
        count = self.count
        style = self.style
        dispatch = self._dispatch
        literal, int4, seq, mapping = LITERAL, INT4, Seq, Map
        memoize_style, put_style, window_mask = _STYLE_MEMOIZE, _STYLE_PUT, MEMO_WINDOW - 1
        buf = r.buf
        pos = r.pos
        end = len(buf)
        refill_at = end - 16
        while True:
            if pos > refill_at:
                r.pos = pos
                r.fill(16)
                buf = r.buf
                pos = r.pos
                end = len(buf)
                refill_at = end - 16
                if pos >= end:
                    raise Fail("the data ends before the pickle's STOP opcode", r.base + pos)
            op = buf[pos]
            pos += 1
            if op == 0x94:  # MEMOIZE
                if not stack or style == put_style:
                    self._memoize_failure(bool(stack), r.base + pos - 1)
                style = memoize_style
                young[count] = stack[-1]
                count += 1
                if not count & window_mask:
                    self._retire()
                    young = self.young
            elif op == 0x8C:  # SHORT_BINUNICODE, kept as UTF-8 bytes until needed
                if pos >= end:
                    raise Fail("truncated SHORT_BINUNICODE", r.base + pos - 1)
                n = buf[pos]
                pos += 1
                if end - pos < n:
                    r.pos = pos
                    if not r.fill(n):
                        raise Fail("a string runs past the end of the data", r.base + pos - 2)
                    buf = r.buf
                    pos = r.pos
                    end = len(buf)
                    refill_at = end - 16
                text = buf[pos : pos + n]
                push(text)
                pos += n
                if pos < end and buf[pos] == 0x94 and style != put_style:  # + MEMOIZE
                    pos += 1
                    style = memoize_style
                    young[count] = text
                    count += 1
                    if not count & window_mask:
                        self._retire()
                        young = self.young
            elif op == 0x4A:  # BININT
                if end - pos < 4:
                    raise Fail("truncated BININT", r.base + pos - 1)
                push(int4(buf, pos)[0])
                pos += 4
            elif op == 0x4B:  # BININT1
                if pos >= end:
                    raise Fail("truncated BININT1", r.base + pos - 1)
                push(buf[pos])
                pos += 1
            elif op == 0x47:  # BINFLOAT
                if end - pos < 8:
                    raise Fail("truncated BINFLOAT", r.base + pos - 1)
                push(literal)
                pos += 8
            elif op == 0x28:  # MARK
                self.metastack.append(stack)
                stack = []
                push = stack.append
            elif op == 0x75 or op == 0x65:  # SETITEMS, APPENDS
                if not self.metastack:
                    raise Fail("SETITEMS/APPENDS without a MARK", r.base + pos - 1)
                items = stack
                stack = self.metastack.pop()
                push = stack.append
                if not stack:
                    raise Fail("SETITEMS/APPENDS with nothing to add to", r.base + pos - 1)
                target = stack[-1]
                if op == 0x75:
                    if len(items) % 2:
                        raise Fail("SETITEMS with an odd number of items", r.base + pos - 1)
                    if isinstance(target, mapping) and target.items is not None:
                        extend(target, list(zip(items[::2], items[1::2], strict=True)), self.cap)
                elif isinstance(target, seq) and target.items is not None:
                    extend(target, items, self.cap)
            elif op == 0x71 or op == 0x68:  # BINPUT, BINGET
                if pos >= end:
                    raise Fail("truncated memo index", r.base + pos - 1)
                index = buf[pos]
                pos += 1
                self.count = count
                self.style = style
                if op == 0x71:
                    if not stack:
                        raise Fail("BINPUT on an empty stack", r.base + pos - 2)
                    self._put(index, stack[-1], r.base + pos - 2)
                else:
                    push(self._get(index, r.base + pos - 2))
                young = self.young
                style = self.style
            elif op == 0x86 or op == 0x85 or op == 0x87:  # TUPLE2, TUPLE1, TUPLE3
                size = op - 0x84
                if len(stack) < size:
                    raise Fail("TUPLE1/2/3 with too few items", r.base + pos - 1)
                values = tuple(stack[-size:])
                del stack[-size:]
                push(values)
            elif op == 0x4E:  # NONE
                push(None)
            elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                push(op == 0x88)
            elif op == 0x5D:  # EMPTY_LIST
                push(seq([]))
            elif op == 0x7D:  # EMPTY_DICT
                push(mapping([]))
            elif op == 0x29:  # EMPTY_TUPLE
                push(())
            elif op == 0x4D:  # BININT2
                if end - pos < 2:
                    raise Fail("truncated BININT2", r.base + pos - 1)
                push(buf[pos] | buf[pos + 1] << 8)
                pos += 2
            elif op == 0x95:  # FRAME (the frame length is not needed to walk)
                if end - pos < 8:
                    raise Fail("truncated FRAME", r.base + pos - 1)
                pos += 8
            elif op == 0x30:  # POP
                if stack:
                    stack.pop()
                elif self.metastack:
                    stack = self.metastack.pop()
                    push = stack.append
                else:
                    raise Fail("POP on an empty stack", r.base + pos - 1)
            elif op == 0x2E:  # STOP
                if not stack:
                    raise Fail("STOP on an empty stack", r.base + pos - 1)
                r.pos = pos
                self.count = count
                return stack.pop()
            else:
                r.pos = pos
                self.stack = stack
                self.count = count
                self.style = style
                self.op_offset = r.base + pos - 1
                dispatch(op)
                buf = r.buf
                pos = r.pos
                end = len(buf)
                refill_at = end - 16
                stack = self.stack
                push = stack.append
                young = self.young
                count = self.count
                style = self.style

    def _memoize_failure(self, has_value: bool, offset: int) -> None:
        if not has_value:
            raise Fail("MEMOIZE on an empty stack", offset)
        problem = "mixes MEMOIZE with PUT, which no pickler writes"
        self._flag(PARSE_ERROR, problem, offset=offset)
        raise Fail(problem, offset)

    def _dispatch(self, op: int) -> None:
        handler = self._handlers.get(op)
        if handler is None:
            raise Fail(f"invalid opcode 0x{op:02x}")
        handler()

    # -- memo -----------------------------------------------------------------------------

    def _flag(self, kind: str, reason: str, **where: Any) -> None:
        self.flagged = True
        self.findings.add(kind, reason, **where)

    def _retire(self) -> None:
        """Drop the older half of the memo window, keeping what later opcodes may need."""
        for index, value in self.old.items():
            if (
                isinstance(value, GlobalRef)
                or (isinstance(value, bytes | str) and value in self._pinned_strings)
                or (isinstance(value, CallResult) and value.func == _NUMPY_DTYPE)
            ):
                self.pinned[index] = value
        if len(self.pinned) > MAX_PINNED:
            self._flag(PARSE_ERROR, "too many imported names and dtypes to track")
            raise Fail("too many imported names and dtypes to track")
        self.old = self.young
        self.young = {}

    def _put(self, index: int, value: Any, offset: int) -> None:
        if index < 0:
            raise Fail("negative PUT argument", offset)
        if self.style == _STYLE_MEMOIZE or index >= MAX_MEMO_INDEX:
            # CPython accepts both, so refusing only to stop is not enough: flag the file
            problem = "mixes MEMOIZE with PUT" if index < MAX_MEMO_INDEX else "a huge memo index"
            self._flag(PARSE_ERROR, f"{problem}, which no pickler writes", offset=offset)
            raise Fail(problem, offset)
        self.style = _STYLE_PUT
        if index <= self.put_high:
            self.old.pop(index, None)
            self.pinned.pop(index, None)
        else:
            self.put_high = index
        self.young[index] = value
        if len(self.young) >= MEMO_WINDOW:
            self._retire()

    def _get(self, index: int, offset: int) -> Any:
        value = self.young.get(index, _MISSING)
        if value is _MISSING:
            value = self.old.get(index, _MISSING)
            if value is _MISSING:
                value = self.pinned.get(index, _MISSING)
        if value is not _MISSING:
            return value
        known = self.count if self.style == _STYLE_MEMOIZE else self.put_high + 1
        if 0 <= index < known:
            return UNKNOWN
        raise Fail(f"memo entry {index} was never stored", offset)

    # -- what matters: imports, calls, BUILD --------------------------------------------

    def _import(self, module: str, name: str) -> GlobalRef:
        if self.proto < 3:  # the unpickler maps Python 2 names for protocols 0-2
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if not _MODULE_NAME.match(module):
            raise Fail(f"imports {module!r}, which is not a module name (the import fails)")
        self.acted = True
        self.findings.saw_global(module, name)
        if not is_allowed(module, name):
            self._flag(
                GLOBAL, refusal_reason(module, name), module=module, name=name,
                offset=self.op_offset,
            )  # fmt: skip
        ref = self._refs.get((module, name))
        if ref is None:
            ref = self._refs[(module, name)] = GlobalRef(module, name)
        return ref

    def _call(self, func: Any, args: Any, *, new_instance: bool = False) -> CallResult:
        if isinstance(func, GlobalRef):
            self.acted = True
            cls: GlobalRef | None = func
            kept = args if func in _KEEP_ARGS else None
            if func == _RECONSTRUCTOR:
                cls = args[0] if isinstance(args, tuple) and args else None
                cls = cls if isinstance(cls, GlobalRef) else None
            fresh = new_instance and args == ()  # cls.__new__(cls): no __init__ sets attributes
            return CallResult(_NEWOBJ if fresh else func, cls, kept)
        if never_callable(func):
            raise Fail("calls a value that cannot be called (the load fails here)")
        self.acted = True
        self._flag(
            CALL,
            "calls a value that is not an allow-listed name: the result of another call or "
            "a value the scanner cannot follow",
            offset=self.op_offset,
        )
        return CallResult(func, None)

    def _build(self, instance: Any, state: Any) -> None:
        if isinstance(instance, GlobalRef):
            self.acted = True
            self._flag(
                BUILD,
                f"BUILD sets attributes of {instance.module}.{instance.name} itself, which "
                "can swap an allowed name for anything",
                module=instance.module, name=instance.name, offset=self.op_offset,
            )  # fmt: skip
        elif isinstance(instance, CallResult):
            if instance.func == _NUMPY_DTYPE:
                instance.state = state
            elif instance.cls == JOBLIB_WRAPPER:
                if self.joblib_aware:
                    self._joblib_array(instance, state)
                elif _holds_objects(state):
                    # Read by plain pickle.load, the nested pickle of an object array runs
                    # with the outer memo: every memo reference is garbage, for real files
                    # too. The joblib-aware walk scans that pickle as joblib reads it.
                    raise Fail("a joblib object array, read as plain pickle (stops here)")

    def _joblib_array(self, wrapper: CallResult, state: Any) -> None:
        """Step over the array joblib writes after this wrapper (see :mod:`._joblib`)."""
        usual = wrapper.func == _NEWOBJ or (
            wrapper.func == _RECONSTRUCTOR and wrapper.args == (JOBLIB_WRAPPER, _OBJECT, None)
        )
        if not usual:
            raise Fail("a joblib array wrapper built in an unusual way")
        try:
            layout = _joblib.array_layout(state)
        except _joblib.LayoutError as error:
            raise Fail(str(error)) from None
        self.stack[-1] = LITERAL  # joblib replaces the wrapper with the array
        self.skipped_payloads += 1
        if layout.holds_objects:
            nested = PickleWalker(self.reader, self.findings, joblib_aware=True)
            nested._pinned_strings = self._pinned_strings
            try:
                nested.walk()
            finally:
                self.acted = self.acted or nested.acted
            return
        if layout.alignment is not None:
            padding = self.reader.read(1)[0]
            if padding > layout.alignment:
                raise Fail(f"joblib padding of {padding} bytes, more than the alignment")
            self.reader.skip(padding)
        self.reader.skip(layout.nbytes)

    def _text_pair(self) -> tuple[str, str]:
        module_line = self._line()
        if not module_line:  # _pickle.c: an empty (or endless) module name fails the load
            raise Fail("an empty or endless module name")
        name_line = self._line()
        if name_line == b"":
            raise Fail("an empty name")
        try:
            module = module_line.decode("utf-8")
            name = "<a name longer than 64 KiB>" if name_line is None else name_line.decode("utf-8")
        except UnicodeDecodeError:
            raise Fail("a module or name that is not UTF-8") from None
        return module, name

    def _op_get(self) -> None:
        self.stack.append(self._get(self._int_line(), self.op_offset))

    def _op_long_binget(self) -> None:
        self.stack.append(self._get(self._uint(4), self.op_offset))

    def _op_put(self) -> None:
        index = self._int_line()
        self._put(index, self._top(), self.op_offset)

    def _op_long_binput(self) -> None:
        index = self._uint(4)
        self._put(index, self._top(), self.op_offset)

    def _op_global(self) -> None:
        module, name = self._text_pair()
        self.stack.append(self._import(module, name))

    def _op_inst(self) -> None:
        if not self.metastack:  # _pickle.c looks for the MARK before reading the names
            raise Fail("could not find MARK")
        module, name = self._text_pair()
        cls = self._import(module, name)
        args = self._pop_mark()
        self.stack.append(self._call(cls, tuple(args), new_instance=True))

    def _op_stack_global(self) -> None:
        name = self._pop()
        module = self._pop()
        if isinstance(module, str | bytes) and isinstance(name, str | bytes):
            self._pinned_strings.add(module)
            self._pinned_strings.add(name)
            self.stack.append(self._import(text_of(module), text_of(name)))
            return
        if surely_not_str(module) or surely_not_str(name):
            raise Fail("STACK_GLOBAL requires str module and name (the load fails here)")
        self.acted = True
        self._flag(
            UNRESOLVED,
            "STACK_GLOBAL imports a name the scanner cannot know without running the pickle",
            offset=self.op_offset,
        )
        self.stack.append(UNKNOWN)

    def _op_reduce(self) -> None:
        args = self._pop()
        func = self._pop()
        self.stack.append(self._call(func, args))

    def _op_build(self) -> None:
        state = self._pop()
        self._build(self._top(), state)

    def _op_newobj(self) -> None:
        self._pop()  # NEWOBJ never runs __init__: no attribute comes from its arguments
        cls = self._pop()
        self.stack.append(self._call(cls, (), new_instance=True))

    def _op_newobj_ex(self) -> None:
        self._pop()
        self._pop()
        cls = self._pop()
        self.stack.append(self._call(cls, (), new_instance=True))

    def _op_obj(self) -> None:
        items = self._pop_mark()
        if not items:
            raise Fail("OBJ without a class")
        self.stack.append(self._call(items[0], tuple(items[1:]), new_instance=True))

    def _extension(self, size: int) -> None:
        code = self._uint(size)
        if code <= 0:
            raise Fail("EXT specifies code <= 0")
        self.acted = True
        self._flag(
            EXTENSION,
            f"extension code {code} imports whatever the copyreg extension registry maps "
            "it to; the scanner cannot know that",
            offset=self.op_offset,
        )
        self.stack.append(UNKNOWN)

    def _op_ext1(self) -> None:
        self._extension(1)

    def _op_ext2(self) -> None:
        self._extension(2)

    def _op_ext4(self) -> None:
        self._extension(4)

    def _op_persid(self) -> None:
        line = self._line()
        try:
            pid: Any = LONG_STRING if line is None else line.decode("ascii")
        except UnicodeDecodeError:
            raise Fail("a persistent id that is not ASCII") from None
        self._persistent(pid)

    def _op_binpersid(self) -> None:
        self._persistent(self._pop())

    def _persistent(self, pid: Any) -> None:
        if self.on_pid is not None:
            self.on_pid(plain(pid))
        self.stack.append(Pid(pid))


def _holds_objects(state: Any) -> bool:
    try:
        return _joblib.array_layout(state).holds_objects
    except _joblib.LayoutError:
        return False
