"""The git state of the working copy a run starts in.

Asking git costs milliseconds and run creation has to cost well under one, so the answer is
kept per working directory until something git would answer differently about changes: a
commit, checkout or staged file (git's own files), an edited tracked file, a file created or
removed next to tracked ones, a repository appearing around the directory. :mod:`._watch`
notices those between two runs cheaply. Git must never hang or fail a run, so every call has
a short timeout, never prompts, and any problem (no git binary, not a repository, detached
HEAD, no commit yet, a timeout) only means the matching fields are absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mloop.tracking._watch import Watch, WatchedDir, open_watch

GIT_TIMEOUT_SECONDS = 2.0
# A diff this large is almost always a tracked data file, not code: storing it with every
# run would cost more than it helps, so the run only records that it was left out.
MAX_DIFF_BYTES = 16 * 1024 * 1024

# Keep the user's git config (safe.directory, includes) but never wait for a password,
# never take the index lock behind a concurrent `git commit`, and read messages in English.
_GIT_ENV_OVERRIDES = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


@dataclass(frozen=True)
class GitState:
    """What git says about the working copy; ``None`` fields were not knowable."""

    root: str
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    untracked_count: int = 0
    remote: str | None = None
    diff: bytes | None = None
    diff_omitted: str | None = None


class _GitUnavailable(Exception):
    """Internal: git gave no usable answer; the caller records nothing for it."""


def _git(args: list[str], cwd: str) -> bytes:
    exe = shutil.which("git")
    if exe is None:
        raise _GitUnavailable("no git binary")
    try:
        done = subprocess.run(
            [exe, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            env={**os.environ, **_GIT_ENV_OVERRIDES},
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _GitUnavailable(str(exc)) from exc
    if done.returncode != 0:
        raise _GitUnavailable(done.stderr.decode("utf-8", "replace").strip())
    return done.stdout


# The snapshot fallback can be forced (tests run both ways; see :mod:`._watch`).
USE_INOTIFY = True
_cache_lock = threading.Lock()
_cache: dict[str, tuple[GitState | None, Watch]] = {}


def git_state(cwd: str) -> GitState | None:
    """The git state of ``cwd``, or ``None`` when it is not inside a usable repository.

    Answered from the cache while nothing watched has changed since git was last asked.
    """
    with _cache_lock:
        cached = _cache.get(cwd)
        if cached is not None:
            if not cached[1].changed():
                return cached[0]
            cached[1].close()
        watch = open_watch(use_inotify=USE_INOTIFY)
        try:
            state = _read_state(cwd, watch)
        except BaseException:
            watch.close()
            raise
        _cache[cwd] = (state, watch)
        return state


def clear_cache() -> None:
    """Forget every cached state (for tests)."""
    with _cache_lock:
        for _, watch in _cache.values():
            watch.close()
        _cache.clear()


def _read_state(cwd: str, watch: Watch) -> GitState | None:
    """Ask git, watching first what could change the answer, so no change slips in between."""
    watch.add(WatchedDir(d, frozenset({".git"}), any_entry=False) for d in _folders_up(cwd))
    try:
        root, git_dir, common_dir = (
            _git(["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"], cwd)
            .decode()
            .splitlines()
        )
        watch.add(_git_own_dirs(git_dir, os.path.join(cwd, common_dir)))
        watch.add(_tree_dirs(root, _git(["ls-files", "-z"], root)))
        status = _git(["status", "--porcelain=v2", "--branch"], root).decode("utf-8", "replace")
    except (_GitUnavailable, ValueError):
        return None
    commit: str | None = None
    branch: str | None = None
    dirty = False
    untracked = 0
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ")
            commit = oid if oid != "(initial)" else None
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ")
            branch = head if head != "(detached)" else None
        elif line.startswith(("1 ", "2 ", "u ")):
            dirty = True
        elif line.startswith("? "):
            untracked += 1
    try:
        remote: str | None = _git(["config", "--get", "remote.origin.url"], root).decode().strip()
    except _GitUnavailable:
        remote = None
    diff: bytes | None = None
    omitted: str | None = None
    if dirty and commit is not None:
        diff, omitted = _diff(root)
    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        dirty=dirty,
        untracked_count=untracked,
        remote=redact_url(remote) if remote else None,
        diff=diff,
        diff_omitted=omitted,
    )


def _folders_up(path: str) -> Iterator[str]:
    """``path`` and every folder above it: a ``.git`` appearing in any of them matters."""
    while True:
        if os.path.isdir(path):
            yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _git_own_dirs(git_dir: str, common_dir: str) -> list[WatchedDir]:
    """Where git records HEAD, the index, branches and the remote (worktrees included)."""
    common_dir = os.path.normpath(common_dir)
    dirs = [
        WatchedDir(git_dir, frozenset({"HEAD", "index"})),
        WatchedDir(common_dir, frozenset({"packed-refs", "config"})),
    ]
    reftable = os.path.join(common_dir, "reftable")
    if os.path.isdir(reftable):
        dirs.append(WatchedDir(reftable))
    try:
        with open(os.path.join(git_dir, "HEAD"), encoding="utf-8") as handle:
            head = handle.read().strip()
    except (OSError, ValueError):
        return dirs
    if head.startswith("ref: "):
        # The current branch's file, or the nearest folder holding it (a packed branch).
        ref = os.path.join(common_dir, *head.removeprefix("ref: ").split("/"))
        folder, name = os.path.split(ref)
        while not os.path.isdir(folder) and len(folder) > len(common_dir):
            folder, name = os.path.dirname(folder), ""
        if len(folder) > len(common_dir):
            dirs.append(WatchedDir(folder, frozenset({name} if name else ())))
    return dirs


def _tree_dirs(root: str, listing: bytes) -> list[WatchedDir]:
    """Every folder holding tracked files (or folders of them), with those files' names."""
    names: dict[str, set[str]] = {"": set()}
    for entry in os.fsdecode(listing).split("\0"):
        if not entry:
            continue
        folder, _, name = entry.rpartition("/")
        names.setdefault(folder, set()).add(name)
        while folder and (parent := folder.rpartition("/")[0]) not in names:
            names[parent] = set()
            folder = parent
    return [
        WatchedDir(
            os.path.join(root, *folder.split("/")) if folder else root,
            frozenset(found),
            tree=True,
        )
        for folder, found in names.items()
    ]


def _diff(root: str) -> tuple[bytes | None, str | None]:
    """Tracked changes against HEAD as a patch ``git apply`` accepts, or why there is none.

    Prefixes, textconv and external diff tools are pinned because a user's config
    (``diff.noprefix``, ``diff.external``) would otherwise produce a patch that does not apply;
    running at the top level makes ``diff.relative`` harmless.
    """
    try:
        diff = _git(
            [
                "diff",
                "HEAD",
                "--binary",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--src-prefix=a/",
                "--dst-prefix=b/",
            ],
            root,
        )
    except _GitUnavailable as exc:
        return None, f"git diff failed: {exc}"[:500]
    if len(diff) > MAX_DIFF_BYTES:
        return None, f"diff is {len(diff)} bytes, more than the {MAX_DIFF_BYTES} byte limit"
    return diff, None


_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def redact_url(url: str) -> str:
    """``url`` without credentials, so a remote never leaks a password or token into a tag.

    For http(s) the whole user part goes, because tokens are commonly passed as the user name
    (``https://ghp_xxx@github.com/...``), and so does the query string. For other schemes
    (``ssh://git@host/...``) only a password is removed: the user name is needed to connect.
    scp-like remotes (``git@host:org/repo``) cannot carry a password and are kept as they are.
    """
    if _SCP_LIKE.match(url) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<remote URL could not be parsed; not recorded>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.scheme in ("http", "https"):
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


__all__ = [
    "GIT_TIMEOUT_SECONDS",
    "MAX_DIFF_BYTES",
    "GitState",
    "clear_cache",
    "git_state",
    "redact_url",
]
