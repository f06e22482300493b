"""Configuration-as-code suites run on SQLite and a real PostgreSQL through ``db`` (the
registry's fixtures: the configured store points at the backend under test, ``ada``
acts), with registered iris versions to deploy."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from mloop.registry import register_model_version
from tests.fixtures.registry import DIGESTS

IRIS_VERSIONS = 6


def register_iris(count: int = IRIS_VERSIONS) -> None:
    for digest in DIGESTS[:count]:
        register_model_version("iris", "/p", package_digest=digest)


@pytest.fixture
def iris(db: str) -> str:
    """``db`` with iris versions 1-6 registered."""
    register_iris()
    return db


@pytest.fixture
def iris_sqlite(sqlite_db: str) -> str:
    """SQLite only, with iris versions 1-6: for checks that would test nothing new twice."""
    register_iris()
    return sqlite_db


def write(path: Path, text: str) -> Path:
    """Write a YAML file (dedented), creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def deployment_doc(name: str, body: str) -> str:
    """A Deployment document with ``body`` (already indented by four spaces) as its spec."""
    return f"apiVersion: mloop/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n{body}"
