"""The code digest of a step: what must change for a cached result to be thrown away.

The digest covers the step function's source as Python sees it (parsed and unparsed, so
comments, blank lines and the decorator line do not count), the source of the functions
and classes *of the same module* it refers to by name, transitively (its helpers), and
the values of plain constants it reads from its module (numbers, strings, tuples of them).

Not covered, on purpose or by necessity (see docs/pipelines.md, "What the code digest
sees"): code in other modules and installed libraries, mutable module state, files the
step reads by path, and environment variables. Pass what varies as a parameter or a
dataset input, or run with ``no_cache=True``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any

_CONSTANTS = (int, float, str, bytes, bool, type(None))


def code_digest(fn: Callable[..., Any]) -> str:
    """SHA-256 over the normalized source of ``fn`` and its same-module helpers."""
    return _Walk(_normalized_source).digest(fn)


def loaded_fingerprint(fn: Callable[..., Any]) -> str:
    """SHA-256 over the *loaded* bytecode of ``fn`` and its same-module helpers.

    Two processes agree on it only when they run the same code: a long-lived worker (a
    process-pool or Ray worker) whose copy of a module is older than the orchestrator's
    sees a different fingerprint and reloads the module before running the step.
    """
    return _Walk(_code_text).digest(fn)


class _Walk:
    """Collects a description of a function and what it uses from its module."""

    def __init__(self, describe: Callable[[Any], str]) -> None:
        self.describe = describe
        self.parts: list[str] = []
        self.seen: set[int] = set()

    def digest(self, fn: Callable[..., Any]) -> str:
        self.collect(fn, fn.__module__)
        return hashlib.sha256("\n\x00".join(self.parts).encode()).hexdigest()

    def collect(self, obj: Any, module: str) -> None:
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        inner = getattr(obj, "fn", None)  # a Step or Pipeline wrapper: its function
        if callable(inner) and not isinstance(obj, type):
            obj = inner
        self.parts.append(f"{getattr(obj, '__qualname__', '?')}:{self.describe(obj)}")
        if isinstance(obj, type):
            for value in vars(obj).values():
                if isinstance(value, types.FunctionType):
                    self.collect_globals(value, module)
            return
        code = getattr(obj, "__code__", None)
        if code is None:
            return
        closure = getattr(obj, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, closure, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.reference(name, value, module)
        self.collect_globals(obj, module)

    def collect_globals(self, fn: Any, module: str) -> None:
        namespace = getattr(fn, "__globals__", {})
        for name in sorted(_names(fn.__code__)):
            if name in namespace:
                self.reference(name, namespace[name], module)

    def reference(self, name: str, value: Any, module: str) -> None:
        if isinstance(value, _CONSTANTS) or (
            isinstance(value, tuple) and all(isinstance(v, _CONSTANTS) for v in value)
        ):
            self.parts.append(f"{name}={value!r}")
            return
        target = getattr(value, "fn", value)
        if getattr(target, "__module__", None) != module:
            return
        if isinstance(value, types.FunctionType | type) or hasattr(value, "fn"):
            self.collect(value, module)


def _code_text(obj: Any) -> str:
    if isinstance(obj, type):
        return ",".join(
            _code_text(v) for v in vars(obj).values() if isinstance(v, types.FunctionType)
        )
    code = getattr(obj, "__code__", None)
    return repr(obj) if code is None else _code_repr(code)


def _code_repr(code: types.CodeType) -> str:
    consts = [_code_repr(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}"


def _names(code: types.CodeType) -> set[str]:
    """Global names a code object and the functions nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _normalized_source(obj: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):  # defined in a REPL or built in: fall back to the bytecode
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() if code is not None else repr(obj)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        first.decorator_list = []
    return ast.unparse(tree)
