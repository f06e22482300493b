"""Shared fixtures: every test gets its own stores and no configuration leaks in or out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.tracking import _fluent
from mloop.tracking._resolve import reset_backends

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.live_server",
    "tests.fixtures.s3",
    "tests.fixtures.redis",
    "tests.fixtures.registry",
    "tests.fixtures.monitoring",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear ``MLOOP_*`` settings, point the embedded stores at a temp folder, reset state."""
    for name in list(os.environ):
        if name.startswith("MLOOP_"):
            monkeypatch.delenv(name)
    home = tmp_path / "mloop-home"
    monkeypatch.setenv("MLOOP_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    _fluent._reset_for_tests()
    yield
    _fluent._reset_for_tests()
    reset_backends()
