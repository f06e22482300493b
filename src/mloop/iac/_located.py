"""Turning the owners' validation errors into located problems.

Owners report bad input in two shapes: pydantic's ``ValidationError`` (a location tuple
per error) or :class:`~mloop.errors.InvalidInput` whose message starts with the field path
(``members[1].model: …``) or carries ``details["errors"]``. Both become a
:class:`~mloop.iac._documents.SpecError`, so the document can name the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from mloop.errors import InvalidInput, MloopError
from mloop.iac._documents import Loc, SpecError

T = TypeVar("T")
_PATH = re.compile(r"^((?:[A-Za-z_]\w*|\[\d+\])(?:\.[A-Za-z_]\w*|\[\d+\])*): (.+)$", re.DOTALL)
_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")
_PLAIN = {
    "Extra inputs are not permitted": "unknown field; check its spelling",
    "Field required": "required field is missing",
}


def parse_path(text: str) -> Loc:
    """``members[1].weight`` → ``("members", 1, "weight")``."""
    return tuple(int(index) if index else name for name, index in _PART.findall(text))


def humanize(message: str, error_type: str = "", given: Any = None) -> str:
    """A pydantic message as a sentence a user acts on."""
    message = message.removeprefix("Value error, ")
    if error_type == "extra_forbidden" or message in _PLAIN:
        return _PLAIN.get(message, _PLAIN["Extra inputs are not permitted"])
    if error_type == "missing":
        return _PLAIN["Field required"]
    if error_type == "literal_error":
        return f"{given!r} is not one of the choices: {message.removeprefix('Input should be ')}"
    return message


def from_validation_error(
    exc: ValidationError, *, rename: Mapping[str, Loc] | None = None
) -> SpecError:
    """Every error of ``exc`` with its location (``rename`` maps a top-level field that
    lives elsewhere in the document, e.g. ``name`` → ``("metadata", "name")``)."""
    located: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        if rename and loc and str(loc[0]) in rename:
            loc = rename[str(loc[0])] + loc[1:]
        message = humanize(str(error["msg"]), error["type"], error.get("input"))
        named = _PATH.match(message) if not loc else None
        if named is not None:  # a model-wide check naming the field: "steps[2]: …"
            loc, message = parse_path(named.group(1)), named.group(2)
        located.append((loc, message))
    if not located:
        return SpecError((), str(exc))
    return SpecError(located[0][0], located[0][1], *located[1:])


def from_invalid_input(exc: MloopError, *, prefix: Loc = ()) -> SpecError:
    """An owner's error, located by its ``details["errors"]`` or its leading field path."""
    if isinstance(exc, SpecError):
        return exc
    listed = exc.details.get("errors") if isinstance(exc.details, Mapping) else None
    located: list[tuple[Loc, str]] = []
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, Mapping) and "field" in item and "message" in item:
                loc = prefix + parse_path(str(item["field"]))
                located.append((loc, humanize(str(item["message"]))))
    if not located:
        match = _PATH.match(exc.message)
        if match is not None:
            located.append((prefix + parse_path(match.group(1)), match.group(2)))
        else:
            located.append((prefix, exc.message))
    return SpecError(located[0][0], located[0][1], *located[1:])


def located(call: Callable[[], T], *, prefix: Loc = ()) -> T:
    """``call()``, with its validation errors turned into a :class:`SpecError`."""
    try:
        return call()
    except SpecError:
        raise
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    except InvalidInput as exc:
        raise from_invalid_input(exc, prefix=prefix) from None


__all__ = ["from_invalid_input", "from_validation_error", "humanize", "located", "parse_path"]
