"""Many writers moving one alias at once: the alias always names exactly one version, every
move is audited once and in order, and the chain stays whole — on SQLite and PostgreSQL,
from threads and from separate processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from tests.fixtures.registry import DIGESTS

from mloop.registry import (
    list_audit_log,
    register_model_version,
    resolve,
    set_alias,
    verify_audit_log,
)
from mloop.store import MetadataStore, open_store
from mloop.store import schema as s

VERSIONS = 4
MOVES_PER_WRITER = 6


def _moves(writer: int) -> list[int]:
    """A writer's sequence of target versions, never the same twice in a row."""
    return [1 + (writer + i) % VERSIONS for i in range(MOVES_PER_WRITER)]


def _alias_rows(store: MetadataStore) -> int:
    table = s.ModelAlias.__table__
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.alias == "champion")
            ).scalar_one()
        )


def _check_history(store: MetadataStore) -> None:
    assert _alias_rows(store) == 1
    moves = list(reversed(list_audit_log(target="model:churn@champion", limit=1000)))
    assert moves[0].before is None
    for earlier, later in itertools.pairwise(moves):
        # each move starts where the previous one left the alias: nothing lost in between
        assert later.before == earlier.after
        assert later.before != later.after
    assert moves[-1].after == {"version": resolve("churn", "@champion").version}
    assert verify_audit_log().ok


@pytest.fixture
def churn(db: str) -> None:
    for digest in DIGESTS[:VERSIONS]:
        register_model_version("churn", "/p", package_digest=digest)


def _run_all(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported to the test below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_threads_moving_one_alias(churn: None, store: MetadataStore) -> None:
    set_alias("churn", "champion", 1)
    done = threading.Event()
    seen: list[int] = []

    def writer(n: int) -> Callable[[], None]:
        def move() -> None:
            for version in _moves(n):
                set_alias("churn", "champion", version)

        return move

    def reader() -> None:
        while not done.is_set():
            seen.append(resolve("churn", "@champion").version)

    reader_thread = threading.Thread(target=reader)
    reader_thread.start()
    try:
        _run_all([writer(n) for n in range(4)])
    finally:
        done.set()
        reader_thread.join()
    assert set(seen) <= set(range(1, VERSIONS + 1))  # always exactly one version
    _check_history(store)


def _process_writer(db_uri: str, writer: int) -> None:
    os.environ["MLOOP_DB_URI"] = db_uri
    os.environ["MLOOP_USER"] = f"writer-{writer}"
    for version in _moves(writer):
        set_alias("churn", "champion", version)


def test_processes_moving_one_alias(sqlite_db: str) -> None:
    """Separate processes share nothing but the database file and its lock. (On PostgreSQL
    the thread test already runs one connection per writer, which is all a process adds.)"""
    for digest in DIGESTS[:VERSIONS]:
        register_model_version("churn", "/p", package_digest=digest)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_process_writer, args=(sqlite_db, n)) for n in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    store = open_store(sqlite_db)
    try:
        _check_history(store)
    finally:
        store.close()
    actors = {e.actor for e in list_audit_log(action="alias.set", limit=1000)}
    assert actors == {"writer-0", "writer-1"}
