"""Automatic run capture: what a run needs to be reproduced, recorded without user code.

At run start :func:`capture_start` records the code version (git commit, branch, dirty
flag, the uncommitted diff), how the program was started (entry point, argv, cwd), the
interpreter and the installed packages. At run end a :class:`ResourceMeter` records what the
run cost. :func:`reproduce_steps` turns those records back into shell lines.

Everything expensive is cached, because creating a run must stay cheap (well under a
millisecond of capture): the interpreter and packages once per process, the git state until
git would answer differently (see :mod:`._capture_git`); ``_clear_caches`` resets that for
tests.
Nothing captured here may fail a run: what cannot be learnt is simply left out, and
credentials (remote URL passwords, secret-looking arguments) are never stored.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mloop.errors import InvalidInput
from mloop.tracking import _capture_env, _capture_git
from mloop.tracking._resources import ResourceMeter, gpu_info

DIFF_ARTIFACT = "_mloop/git.diff"
LOCK_ARTIFACT = "_mloop/requirements.lock"
MAX_SEED = 2**32 - 1
_MAX_TAG_VALUE = 65_000  # the tag limit in _validation; captured tags must fit it

REDACTED = "***"
_SECRET_OPTION = re.compile(
    r"(?:^|[-_])(?:password|passwd|secret|token|api[-_]?key|access[-_]?key|credentials?)(?:$|[-_])",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/@\s:]+):[^/@\s]+@")


@dataclass(frozen=True)
class StartCapture:
    """What :func:`capture_start` learnt: tags for the run, and artifacts to store with it."""

    tags: dict[str, str]
    artifacts: dict[str, bytes]


def _clear_caches() -> None:
    """Forget everything cached per process (git state, packages, GPU), for tests."""
    global _last_capture
    _last_capture = None
    _capture_git.clear_cache()
    _capture_env.clear_caches()
    gpu_info.cache_clear()


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with secret-looking values replaced by ``***``.

    Catches ``--api-key X``, ``--db-password=X`` and passwords inside URLs
    (``postgresql://user:pw@host``). It cannot know every secret, so the docs also say:
    pass secrets through the environment, which is never recorded.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        if arg.startswith("-") and len(arg) > 1:
            option, eq, _ = arg.lstrip("-").partition("=")
            if _SECRET_OPTION.search(option):
                if eq:
                    arg = arg[: arg.index("=") + 1] + REDACTED
                else:
                    hide_next = True
        out.append(_URL_PASSWORD.sub(rf"\1:{REDACTED}@", arg))
    return out


def _main_module() -> str | None:
    """The module name when the program was started with ``python -m``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or name == "__main__":
        return None
    return name.removesuffix(".__main__")


def _source_tags(
    argv: Sequence[str], cwd: str, root: str | None, module: str | None
) -> dict[str, str]:
    first = argv[0] if argv else ""
    if module is not None:
        kind, entry = "module", module
    elif first == "-c":
        kind, entry = "command", "-c"
    elif first in ("", "-") or os.path.basename(first).startswith("ipykernel_launcher"):
        kind, entry = "interactive", first or "<interactive>"
    else:
        kind, entry = "script", first
        if root is not None:
            absolute = os.path.normpath(os.path.join(cwd, first))
            relative = os.path.relpath(absolute, root)
            if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
                entry = relative.replace(os.sep, "/")
    tags = {
        "mloop.source.kind": kind,
        "mloop.source.entry_point": entry,
        "mloop.source.cwd": cwd,
    }
    argv_json = json.dumps(redact_argv(argv))
    if len(argv_json) <= _MAX_TAG_VALUE:
        tags["mloop.source.argv"] = argv_json
    if root is not None:
        subdir = os.path.relpath(cwd, root)
        tags["mloop.source.repo_subdir"] = subdir.replace(os.sep, "/")
    return tags


def _git_tags(state: _capture_git.GitState) -> tuple[dict[str, str], dict[str, bytes]]:
    tags: dict[str, str] = {}
    artifacts: dict[str, bytes] = {}
    if state.commit is not None:
        tags["mloop.git.commit"] = state.commit
    if state.branch is not None:
        tags["mloop.git.branch"] = state.branch
    if state.remote is not None:
        tags["mloop.git.remote"] = state.remote
    tags["mloop.git.dirty"] = "true" if state.dirty else "false"
    tags["mloop.git.untracked_count"] = str(state.untracked_count)
    if state.diff is not None:
        artifacts[DIFF_ARTIFACT] = state.diff
    if state.diff_omitted is not None:
        tags["mloop.git.diff_omitted"] = state.diff_omitted
    return tags, artifacts


# The last capture and what it was built from: a program starting many runs from one place
# gets the same answer every time, and building it (argv redaction, JSON) is not free.
_last_capture: tuple[_capture_git.GitState | None, tuple[object, ...], StartCapture] | None = None


def capture_start(
    *, argv: Sequence[str] | None = None, cwd: str | os.PathLike[str] | None = None
) -> StartCapture:
    """Tags and artifacts describing how this run was started (see the module docstring).

    ``argv`` and ``cwd`` default to the running program's; passing them is for callers that
    start runs on someone else's behalf, and for tests. Only ``python -m`` is detected from
    the interpreter, so it needs the default ``argv``.
    """
    global _last_capture
    if cwd is None and os.name == "posix":
        where = os.getcwd()  # already free of symbolic links on POSIX
    else:
        where = os.path.realpath(os.fspath(cwd) if cwd is not None else os.getcwd())
    module = _main_module() if argv is None else None
    args = tuple(sys.argv if argv is None else argv)
    state = _capture_git.git_state(where)
    key = (args, where, module)
    last = _last_capture
    if last is not None and last[0] is state and last[1] == key:
        return StartCapture(tags=dict(last[2].tags), artifacts=dict(last[2].artifacts))
    tags: dict[str, str] = {}
    artifacts: dict[str, bytes] = {}
    if state is not None:
        tags, artifacts = _git_tags(state)
    tags.update(_source_tags(args, where, state.root if state else None, module))
    tags.update(_capture_env.python_info())
    tags["mloop.env.lock_digest"] = _capture_env.lock_digest()
    artifacts[LOCK_ARTIFACT] = _capture_env.requirements_lock()
    captured = StartCapture(tags=tags, artifacts=artifacts)
    _last_capture = (state, key, captured)
    return StartCapture(tags=dict(tags), artifacts=dict(artifacts))


def seed_everything(seed: int) -> dict[str, str]:
    """Seed every random generator mloop knows of and return the tags that record it.

    Seeds :mod:`random`, NumPy's global generator when NumPy is installed, and torch (CPU and
    CUDA) only when the program already imported it: importing torch here would cost seconds.
    ``PYTHONHASHSEED`` is set too; it only affects child processes (data-loader workers), so
    ``mloop runs reproduce`` exports it before the command. Generators the program creates
    itself (``np.random.default_rng()``) still need the seed passed explicitly.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInput(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInput(
            f"seed {seed} is out of range; use an integer from 0 to {MAX_SEED} (2**32 - 1), "
            "the range every supported library accepts"
        )
    seeded = ["random"]
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        np.random.seed(seed)
        seeded.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available():
            cuda.manual_seed_all(seed)
        seeded.append("torch")
    os.environ["PYTHONHASHSEED"] = str(seed)
    return {"mloop.seed": str(seed), "mloop.seed.libraries": ",".join(seeded)}


def _clone_dir(remote: str) -> str:
    name = remote.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return name or "repo"


def _code_steps(tags: Mapping[str, str], paths: set[str], run_id: str) -> list[str]:
    commit = tags.get("mloop.git.commit")
    if commit is None:
        return ["# unknown: git commit was not recorded (run was not in a git repository)"]
    lines: list[str] = []
    remote = tags.get("mloop.git.remote")
    if remote:
        folder = _clone_dir(remote)
        lines.append(f"git clone {shlex.quote(remote)} {shlex.quote(folder)}")
        lines.append(f"cd {shlex.quote(folder)}")
    else:
        lines.append("# unknown: git remote was not recorded; run these steps in a clone")
    branch = tags.get("mloop.git.branch")
    lines.append(f"git checkout {commit}" + (f"  # was on branch {branch}" if branch else ""))
    if tags.get("mloop.git.dirty") == "true":
        if DIFF_ARTIFACT in paths:
            lines.append(f"mloop runs download-artifact {run_id} {DIFF_ARTIFACT}")
            lines.append("git apply git.diff")
        else:
            why = tags.get("mloop.git.diff_omitted", f"{DIFF_ARTIFACT} is missing")
            lines.append(f"# unknown: the run had uncommitted changes that were not stored ({why})")
    untracked = tags.get("mloop.git.untracked_count", "0")
    if untracked not in ("", "0"):
        lines.append(
            f"# warning: {untracked} untracked file(s) were present and are not captured; "
            "copy them over if the run needed them"
        )
    return lines


def _env_steps(tags: Mapping[str, str], paths: set[str], run_id: str) -> list[str]:
    version = tags.get("mloop.python.version")
    lines: list[str] = []
    if version:
        lines.append(f"python{'.'.join(version.split('.')[:2])} -m venv .venv")
    else:
        lines.append("# unknown: Python version was not recorded")
        lines.append("python3 -m venv .venv")
    lines.append(". .venv/bin/activate")
    if LOCK_ARTIFACT in paths:
        lines.append(f"mloop runs download-artifact {run_id} {LOCK_ARTIFACT}")
        lines.append("pip install -r requirements.lock")
    else:
        lines.append("# unknown: installed packages were not recorded")
    if "mloop.seed" in tags:
        lines.append(f"export PYTHONHASHSEED={shlex.quote(tags['mloop.seed'])}")
    return lines


def _command_steps(tags: Mapping[str, str]) -> list[str]:
    try:
        argv = json.loads(tags["mloop.source.argv"])
    except (KeyError, ValueError):
        return ["# unknown: the command line was not recorded"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return ["# unknown: the command line was not recorded"]
    kind = tags.get("mloop.source.kind", "script")
    entry = tags.get("mloop.source.entry_point", argv[0])
    lines: list[str] = []
    subdir = tags.get("mloop.source.repo_subdir")
    if subdir and subdir != "." and "mloop.git.commit" in tags:
        lines.append(f"cd {shlex.quote(subdir)}")
    if kind == "command":
        return [*lines, "# unknown: the run was started with python -c; the code was not recorded"]
    if kind == "interactive":
        return [*lines, "# unknown: the run was started interactively; there is no command"]
    if kind == "module":
        command = ["python", "-m", entry, *argv[1:]]
    else:
        script = argv[0]
        inside_repo = not posixpath.isabs(entry) and not entry.startswith("..")
        if os.path.isabs(script) and inside_repo and subdir:
            script = posixpath.relpath(entry, subdir)
        command = ["python", script, *argv[1:]]
    if REDACTED in tags["mloop.source.argv"]:
        lines.append(f"# note: secret-looking arguments were recorded as {REDACTED}; fill them in")
    return [*lines, shlex.join(command)]


def reproduce_steps(
    tags: Mapping[str, str], artifact_paths: Iterable[str], run_id: str
) -> list[str]:
    """The shell lines that recreate a run: code version, environment, seed, command.

    Whatever the run did not record becomes a ``# unknown: …`` comment instead of an error,
    so old runs and runs outside git still give every step that can be known.
    """
    paths = set(artifact_paths)
    return [
        f"# reproduce run {run_id}",
        *_code_steps(tags, paths, run_id),
        *_env_steps(tags, paths, run_id),
        *_command_steps(tags),
    ]


__all__ = [
    "DIFF_ARTIFACT",
    "LOCK_ARTIFACT",
    "ResourceMeter",
    "StartCapture",
    "capture_start",
    "redact_argv",
    "reproduce_steps",
    "seed_everything",
]
