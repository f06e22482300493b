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
    parts: list[str] = []
    seen: set[int] = set()
    _collect(fn, fn.__module__, parts, seen)
    return hashlib.sha256("\n\x00".join(parts).encode()).hexdigest()


def _collect(obj: Any, module: str, parts: list[str], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    inner = getattr(obj, "fn", None)  # a Step or Pipeline wrapper: its function
    if callable(inner) and not isinstance(obj, type):
        obj = inner
    parts.append(f"{getattr(obj, '__qualname__', '?')}:{_normalized_source(obj)}")
    code = getattr(obj, "__code__", None)
    if isinstance(obj, type):
        for value in vars(obj).values():
            if isinstance(value, types.FunctionType):
                _collect_globals(value, module, parts, seen)
        return
    if code is None:
        return
    closure = getattr(obj, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, closure, strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        _reference(name, value, module, parts, seen)
    _collect_globals(obj, module, parts, seen)


def _collect_globals(fn: Any, module: str, parts: list[str], seen: set[int]) -> None:
    namespace = getattr(fn, "__globals__", {})
    for name in sorted(_names(fn.__code__)):
        if name in namespace:
            _reference(name, namespace[name], module, parts, seen)


def _reference(name: str, value: Any, module: str, parts: list[str], seen: set[int]) -> None:
    if isinstance(value, _CONSTANTS) or (
        isinstance(value, tuple) and all(isinstance(v, _CONSTANTS) for v in value)
    ):
        parts.append(f"{name}={value!r}")
        return
    target = getattr(value, "fn", value)
    if getattr(target, "__module__", None) != module:
        return
    if isinstance(value, types.FunctionType | type) or hasattr(value, "fn"):
        _collect(value, module, parts, seen)


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
