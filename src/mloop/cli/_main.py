"""Running a command of the ``mloop`` tree with the CLI's error handling.

Every expected failure becomes one line on stderr (``error: …``) and an exit code: 2 for
bad input (usage errors and :class:`~mloop.errors.MloopError`), 130 for Ctrl-C.
Unexpected exceptions are bugs and keep their stack trace.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer

from mloop.errors import MloopError


def run(command: Callable[..., Any], argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a Click command's ``main`` with ``argv`` (default: the process's arguments) and
    return the exit code."""
    try:
        result = command(
            args=list(argv) if argv is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except MloopError as exc:
        return _fail(exc.message or str(exc), 2)
    except _USAGE_ERRORS as exc:
        message = str(exc.format_message())  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mloop` or `mloop runs` alone
            if message:  # empty when Rich already printed the help
                sys.stderr.write(message + "\n")
            return 2
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return _fail(message + hint, 2)
    except typer.Abort:
        sys.stderr.write("\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    return result if isinstance(result, int) else 0


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Typer >= 0.26 vendors Click and raises ``typer.TyperException``; older Typer raises
    Click's own ``ClickException``. Either way they are usage errors (bad input)."""
    found: list[type[Exception]] = []
    vendored = getattr(typer, "TyperException", None)
    if isinstance(vendored, type) and issubclass(vendored, Exception):
        found.append(vendored)
    try:
        from click import ClickException
    except ImportError:
        pass
    else:
        found.append(ClickException)
    return tuple(found)


_USAGE_ERRORS = _usage_error_types()


def _fail(message: str, code: int) -> int:
    from mloop.cli._render import one_line

    sys.stdout.flush()
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return code
