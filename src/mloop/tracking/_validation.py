"""Checks on names and values before they reach a store, with messages that say the fix."""

from __future__ import annotations

import re
from typing import Any

from mloop.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 8000
MAX_TAG_VALUE = 65_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what every store keeps for steps and times
_KEY = re.compile(r"^[\w\-. /:]+$")


# Keys already found valid. Runs log the same few names over and over, and the same key is
# checked by the API, the buffer and the store on its way down; a set look-up is far
# cheaper than the checks. Bounded, so a program inventing keys cannot grow it forever.
_VALID_KEYS: set[str] = set()
_MAX_REMEMBERED_KEYS = 100_000


def check_key(kind: str, key: Any) -> str:
    if type(key) is str and key in _VALID_KEYS:
        return key
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{kind} name must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY:
        raise InvalidInput(f"{kind} name {key[:40]!r}… is {len(key)} characters; at most {MAX_KEY}")
    if not _KEY.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidInput(
            f"{kind} name {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'"
        )
    if type(key) is str:  # not a subclass, whose equality could differ
        if len(_VALID_KEYS) >= _MAX_REMEMBERED_KEYS:
            _VALID_KEYS.clear()
        _VALID_KEYS.add(key)
    return key


def check_value(kind: str, key: str, value: Any, limit: int) -> str:
    text = str(value)
    if len(text) > limit:
        raise InvalidInput(
            f"{kind} {key!r} has a value of {len(text)} characters; at most {limit} — "
            "log long text as an artifact instead (mloop.log_text)"
        )
    return text


def check_metric_value(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"metric {key!r} must be a number, got {type(value).__name__} {value!r}"
            ) from None
        return number
    return float(value)


def check_step(key: str, step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidInput(f"metric {key!r}: step must be an integer, got {step!r}")
    if not INT64_MIN <= step <= INT64_MAX:
        raise InvalidInput(
            f"metric {key!r}: step {step} does not fit in 64 bits; use a step from "
            f"{INT64_MIN} to {INT64_MAX}"
        )
    return step
