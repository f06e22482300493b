"""The demo's home: its own embedded stores, a signing key, and a tiny git project.

Everything the demo writes goes under one folder (a fresh temporary one unless the user
names it), so it never touches the user's ``.mloop`` and can be inspected afterwards with
``MLOOP_HOME=<folder> mloop …``. Settings are read from the environment on every call, so
pointing ``MLOOP_*`` at the folder for the demo's duration moves every component there
(and the previous values come back afterwards).

The training code lives in a git repository inside the home (``project/``), committed
before the first run, and the demo works from it: runs capture that commit like they
would in a user's project, so the lineage printed at the end ends in a real commit.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mloop.errors import InvalidInput

# Settings that would send the demo's writes somewhere else than its home.
_REDIRECTED = (
    "MLOOP_DB_URI",
    "MLOOP_ARTIFACT_URI",
    "MLOOP_TRACKING_URI",
    "MLOOP_PREDICTION_LOG_URI",
    "MLOOP_KEK_FILE",
    "MLOOP_API_KEY",
    "MLOOP_REDIS_URL",
    "MLOOP_EXPERIMENT_NAME",
)
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "mloop demo",
    "GIT_AUTHOR_EMAIL": "demo@mloop.invalid",
    "GIT_COMMITTER_NAME": "mloop demo",
    "GIT_COMMITTER_EMAIL": "demo@mloop.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass(frozen=True)
class DemoHome:
    """Where the demo keeps things; ``commit`` is ``None`` when git is not installed."""

    root: Path
    project: Path
    keys: Path
    reports: Path
    commit: str | None

    @property
    def env_hint(self) -> str:
        """The prefix that points other ``mloop`` commands at this home."""
        return f"MLOOP_HOME={self.root}"


@contextlib.contextmanager
def demo_home(root: Path | None, *, poll_interval: float) -> Iterator[DemoHome]:
    """Point mloop at ``root`` (a new temporary folder when ``None``) and work from its
    project folder until the block ends; the folder itself is kept."""
    from mloop import set_tracking_uri
    from mloop.tracking._resolve import reset_backends

    root = (root or Path(tempfile.mkdtemp(prefix="mloop-demo-"))).absolute()
    _check_fresh(root)
    root.mkdir(parents=True, exist_ok=True)
    project = root / "project"
    commit = _init_project(project)
    home = DemoHome(
        root=root,
        project=project,
        keys=root / "keys",
        reports=root / "reports",
        commit=commit,
    )
    home.reports.mkdir(exist_ok=True)
    overrides: dict[str, str | None] = dict.fromkeys(_REDIRECTED)
    overrides["MLOOP_HOME"] = str(root)
    overrides["MLOOP_DEPLOYMENT_POLL_INTERVAL"] = str(poll_interval)
    overrides["MLOOP_SERVER_AUTH"] = "off"
    overrides["MLOOP_USER"] = os.environ.get("MLOOP_USER") or "demo"
    saved = {name: os.environ.get(name) for name in overrides}
    cwd = os.getcwd()
    try:
        _set_environment(overrides)
        set_tracking_uri(None)
        os.chdir(project)
        yield home
    finally:
        os.chdir(cwd)
        _set_environment(saved)
        reset_backends()


def _check_fresh(root: Path) -> None:
    """The demo builds its story from nothing: an earlier run's models and deployment
    would change it, and the user's own files must never be mixed with the demo's."""
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"--home {root} is a file; give a folder that does not exist yet")
    if root.is_dir() and any(root.iterdir()):
        raise InvalidInput(
            f"--home {root} is not empty; give a new folder (or leave --home out for a "
            "temporary one)"
        )


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _init_project(project: Path) -> str | None:
    """A git repository holding the demo's training code, committed once; its commit."""
    from mloop.demo import _training

    project.mkdir(parents=True, exist_ok=True)
    (project / "train.py").write_text(inspect.getsource(_training), encoding="utf-8")
    (project / "README.md").write_text(
        "The mloop demo's training code. Runs made from here record this commit.\n",
        encoding="utf-8",
    )
    git = shutil.which("git")
    if git is None:
        return None
    env = {**os.environ, **_GIT_IDENTITY}

    def run(*args: str) -> str:
        done = subprocess.run(
            [git, "-c", "core.hooksPath=/dev/null", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    try:
        if not (project / ".git").exists():
            run("init", "--quiet")
        run("add", "train.py", "README.md")
        if run("status", "--porcelain"):
            run("commit", "--quiet", "--no-gpg-sign", "-m", "Demo training code")
        return run("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return None
