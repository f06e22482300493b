"""Write transactions of the metadata store: on the driver's connection, and checkpoints
moved off the writers (SQLite), on SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mloop.errors import InvalidInput
from mloop.store import open_store
from mloop.store._engine import WriteWouldWait, _Checkpointer, writes_without_waiting


def _insert_experiment(conn: Any, name: str, dialect: str) -> None:
    mark = "?" if dialect == "sqlite" else "%s"
    conn.cursor().execute(
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage, creation_time, "
        f"last_update_time) VALUES ({mark}, {mark}, 'active', 0, 0)",
        (name, name),
    )


def _names(store: Any) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(text("SELECT name FROM experiments")).scalars())


def test_driver_transactions_commit_whole_or_not_at_all(db_uri: str) -> None:
    store = open_store(db_uri)
    try:
        store.write_driver(lambda conn: _insert_experiment(conn, "kept", store.dialect))

        def half_then_fail(conn: Any) -> None:
            _insert_experiment(conn, "dropped", store.dialect)
            raise RuntimeError("user code failed half-way")

        with pytest.raises(RuntimeError, match="half-way"):
            store.write_driver(half_then_fail)
        assert _names(store) == ["kept"]
        # The connection went back to the pool clean: the next transaction works.
        store.write_driver(lambda conn: _insert_experiment(conn, "next", store.dialect))
        assert _names(store) == ["kept", "next"]
    finally:
        store.close()


def test_driver_errors_become_the_store_errors(db_uri: str) -> None:
    store = open_store(db_uri)
    try:
        if store.dialect == "postgresql":  # PostgreSQL text cannot hold NUL
            with pytest.raises(InvalidInput, match="refused a value"):
                store.write_driver(lambda conn: _insert_experiment(conn, "a\x00b", "postgresql"))
        # Other failures surface as the same exception as through an ordinary transaction.
        with pytest.raises(Exception, match="no_such_table") as ordinary:
            store.write(lambda conn: conn.exec_driver_sql("SELECT * FROM no_such_table"))
        with pytest.raises(Exception, match="no_such_table") as driver:
            store.write_driver(lambda conn: conn.cursor().execute("SELECT * FROM no_such_table"))
        assert type(driver.value) is type(ordinary.value)
    finally:
        store.close()


def test_a_writer_waits_for_another_holding_the_sqlite_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_soon() -> None:
        time.sleep(0.3)
        other.execute("COMMIT")
        released.set()

    threading.Thread(target=release_soon).start()
    try:
        store.write_driver(lambda conn: _insert_experiment(conn, "after", "sqlite"))
        assert released.is_set()  # it did wait, and was not refused with "locked"
        assert _names(store) == ["after"]
    finally:
        other.close()
        store.close()


def _rows_in_main_file(path: Path, copy: Path) -> int:
    """Rows the database file itself holds, ignoring what is still only in its WAL."""
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM experiments").fetchone()[0])
    except sqlite3.DatabaseError:  # not even the tables yet, or copied mid-checkpoint
        return -1
    finally:
        conn.close()


def test_commits_reach_the_main_sqlite_file_through_the_background_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    store = open_store(f"sqlite:///{path}")
    try:
        count = _Checkpointer.EVERY + 8
        for i in range(count):
            store.write_driver(lambda conn, i=i: _insert_experiment(conn, f"e{i}", "sqlite"))
        # Writers no longer checkpoint (their safety net is thousands of pages away), so
        # the rows can only reach the file through the checkpointer thread.
        deadline = time.monotonic() + 30
        while _rows_in_main_file(path, tmp_path / "copy.db") < count:
            assert time.monotonic() < deadline, "the background checkpoint never ran"
            time.sleep(0.05)
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 8192
    finally:
        store.close()


def test_a_few_commits_are_checkpointed_once_the_store_is_idle(tmp_path: Path) -> None:
    path = tmp_path / "idle.db"
    store = open_store(f"sqlite:///{path}")
    try:
        # An ordinary (SQLAlchemy) write transaction counts as much as a driver one.
        store.write(
            lambda conn: _insert_experiment(conn.connection.dbapi_connection, "x", "sqlite")
        )
        deadline = time.monotonic() + 30
        while _rows_in_main_file(path, tmp_path / "copy.db") < 1:
            assert time.monotonic() < deadline, "the idle checkpoint never ran"
            time.sleep(0.05)
    finally:
        store.close()


def test_closing_the_store_stops_its_checkpoint_thread(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'close.db'}")
    store.write_driver(lambda conn: _insert_experiment(conn, "one", "sqlite"))
    checkpointer = store._checkpointer
    assert checkpointer is not None
    thread = checkpointer._thread
    store.close()
    assert thread is not None
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_without_waiting_a_locked_sqlite_write_gives_way_at_once(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = open_store(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with writes_without_waiting(), pytest.raises(WriteWouldWait):
            store.write_driver(lambda conn: _insert_experiment(conn, "no", "sqlite"))
        other.execute("COMMIT")
        with writes_without_waiting():  # the lock is free: it just writes
            store.write_driver(lambda conn: _insert_experiment(conn, "yes", "sqlite"))
        assert _names(store) == ["yes"]
        # The connection that gave way waits as usual again outside the block.
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
    finally:
        other.close()
        store.close()
