"""Opening the metadata store: engine set-up per backend and automatic migrations.

SQLite is tuned for many writers on one machine: WAL (readers never block writers), a
busy timeout, and ``BEGIN IMMEDIATE`` for writes so a writer waits for the lock up front
instead of failing half-way when it upgrades a read lock ("database is locked"). WAL
checkpoints, whose ``fsync``s were half of what creating a run cost, run on a background
thread (see :class:`_Checkpointer`). Every opened store is migrated to the newest schema
first; concurrent openers serialize on a file lock (SQLite) or an advisory lock
(PostgreSQL) so only one of them migrates.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from mloop.errors import ConfigError, InvalidInput, StoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

T = TypeVar("T")
_MIGRATIONS = str(Path(__file__).with_name("migrations"))
_PG_MIGRATION_LOCK = 0x6D6C6F6F70  # "mloop"
# A safety net only: the background checkpointer normally keeps the WAL far below this
# many pages; if it cannot (stopped, or one huge batch), the committing writer checkpoints.
_WAL_AUTOCHECKPOINT_PAGES = 8192
_NO_WAIT: ContextVar[bool] = ContextVar("mloop_store_no_wait", default=False)
_BUSY_TIMEOUT_MS = 60_000
_SCHEMES = {
    "sqlite": "sqlite:///path/to/mloop.db",
    "postgresql": "postgresql+psycopg://user@host:5432/dbname",
}


class WriteWouldWait(Exception):
    """Raised by :meth:`MetadataStore.write_driver` inside :func:`writes_without_waiting`
    when another writer holds SQLite's write lock: nothing was done; try again elsewhere."""


@contextmanager
def writes_without_waiting() -> Iterator[None]:
    """Within this block, a SQLite driver write raises :class:`WriteWouldWait` at once
    instead of waiting for the write lock.

    For a server's event loop: a write that can start right away takes a millisecond and is
    cheaper to run there than to hand to a worker thread, but waiting there for another
    process's lock would stall every request; the caller then hands the write to a thread.
    """
    token = _NO_WAIT.set(True)
    try:
        yield
    finally:
        _NO_WAIT.reset(token)


class MetadataStore:
    """A migrated connection pool to the metadata store, shared by every repository."""

    def __init__(self, uri: str, engine: Engine) -> None:
        self.uri = uri
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_engine: Engine = engine
        self._checkpointer: _Checkpointer | None = None
        if self.dialect == "sqlite":
            self._write_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
            database = engine.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                self._checkpointer = _Checkpointer(database)
        driver = engine.dialect.loaded_dbapi
        self._driver_errors: tuple[type[Exception], type[Exception]] = (
            driver.Error,
            driver.OperationalError,
        )

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, retrying while the store is busy.

        All of ``work`` commits or none of it does; ``work`` must therefore be safe to run
        again from the start, which holds for every caller as each builds its statements
        from its arguments alone.
        """
        return self._retrying(lambda: self._sqlalchemy_transaction(work))

    def write_driver(self, work: Callable[[Any], T]) -> T:
        """:meth:`write` for the hot paths: ``work`` gets the database driver's own connection.

        Setting up a SQLAlchemy transaction (pool check-out, events, a ``BEGIN`` run through
        the statement machinery) cost more than the few statements of creating a run; here
        the transaction is begun and committed on the driver's connection directly. Driver
        errors come out as the SQLAlchemy exceptions :meth:`write` would raise, with the
        same retries while the store is busy.
        """
        return self._retrying(lambda: self._driver_transaction(work))

    def _sqlalchemy_transaction(self, work: Callable[[Connection], T]) -> T:
        with self._write_engine.begin() as conn:
            return work(conn)

    def _driver_transaction(self, work: Callable[[Any], T]) -> T:
        pooled = self.engine.raw_connection()
        try:
            connection: Any = pooled.dbapi_connection
            assert connection is not None
            try:
                if self.dialect == "sqlite":
                    _begin_immediate(connection, wait=not _NO_WAIT.get())
                result = work(connection)
                connection.commit()
            except BaseException:
                with contextlib.suppress(*self._driver_errors):
                    connection.rollback()
                raise
            return result
        except self._driver_errors as exc:  # BEGIN or COMMIT itself failed
            raise DBAPIError.instance(
                "BEGIN/COMMIT", None, exc, self._driver_errors[0], dialect=self.engine.dialect
            ) from exc
        finally:
            pooled.close()

    def _retrying(self, transaction: Callable[[], T]) -> T:
        delay = 0.005
        deadline = time.monotonic() + 60.0
        while True:
            try:
                result = transaction()
            except DataError as exc:
                raise InvalidInput(
                    f"the metadata store refused a value: {exc.orig}; shorten the value or "
                    "remove control characters (NUL) from it"
                ) from exc
            except OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(
                        f"the metadata store at {self.safe_uri} failed: {exc.orig}; "
                        "check that it is reachable and not full"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)
                continue
            if self._checkpointer is not None:
                self._checkpointer.committed()
            return result

    @property
    def writes_in_process(self) -> bool:
        """Whether a write is work in this process (SQLite) rather than waiting on a
        database server, so that running it on an event loop costs no concurrency."""
        return self.dialect == "sqlite"

    @property
    def safe_uri(self) -> str:
        """The URI with any password hidden, for messages and logs."""
        return make_url(self.uri).render_as_string(hide_password=True)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()


def _begin_immediate(connection: sqlite3.Connection, *, wait: bool) -> None:
    if wait:
        connection.execute("BEGIN IMMEDIATE")
        return
    connection.execute("PRAGMA busy_timeout=0")
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            raise WriteWouldWait(str(exc)) from exc
        raise
    finally:
        connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


class _Checkpointer:
    """Runs SQLite's WAL checkpoints on a background thread instead of in a writer's commit.

    By default the commit that grows the write-ahead log past 1,000 pages copies it back
    into the database file and ``fsync``s both: every ~15 runs one commit took tens of
    milliseconds, which averaged out to half of a run's creation time. SQLite's documented
    alternative is used instead: writers leave checkpoints alone (up to a safety net of
    :data:`_WAL_AUTOCHECKPOINT_PAGES`), and this thread runs a ``PASSIVE`` checkpoint (one
    that never waits for, or blocks, readers and writers) after every :attr:`EVERY` commits
    of this process, or :attr:`IDLE` seconds after a commit when fewer came. The ``fsync``
    then waits off the writer's thread, with the interpreter lock released.

    Durability is unchanged: a commit is in the WAL before it returns, as before, and the
    checkpoint only moves it into the main file. A checkpoint refused because another
    process is checkpointing just waits for the next turn.
    """

    EVERY = 32
    IDLE = 0.5

    def __init__(self, path: str) -> None:
        self._path = path
        self._count = 0
        self._pending = threading.Event()  # something was committed since the last checkpoint
        self._due = threading.Event()  # enough was committed to checkpoint now
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    def committed(self) -> None:
        """Count one commit (cheap: called after every write transaction)."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._count += 1
        if self._count == 1:
            self._pending.set()
        if self._count >= self.EVERY:
            self._due.set()

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._thread = os.getpid(), None
                self._pending, self._due = threading.Event(), threading.Event()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mloop-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        pending, due = self._pending, self._due
        connection: sqlite3.Connection | None = None
        try:
            while True:
                pending.wait()
                due.wait(self.IDLE)
                if self._closed or self._pid != os.getpid():
                    return
                pending.clear()
                due.clear()
                self._count = 0
                try:
                    if connection is None:
                        connection = sqlite3.connect(
                            self._path, isolation_level=None, check_same_thread=False
                        )
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # another process is checkpointing, or the file is gone: next turn
        finally:
            if connection is not None:
                connection.close()

    def close(self) -> None:
        """Stop the thread; closing the store's last connection checkpoints what is left."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._pending.set()
        self._due.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _is_busy(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message or "deadlock" in message


def _parse(uri: str) -> URL:
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise ConfigError(
            f"metadata store URI {uri!r} is not a database URI; use one of: "
            + ", ".join(_SCHEMES.values())
        ) from exc
    if url.get_backend_name() not in _SCHEMES:
        raise ConfigError(
            f"metadata store URI scheme {url.drivername!r} is not supported; use one of: "
            + ", ".join(_SCHEMES.values())
        )
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN itself, below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}")

    return engine


def _alembic_config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = conn
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    return ScriptDirectory.from_config(config)


@functools.cache
def head_revision() -> str:
    """The newest schema revision this version of mloop knows.

    Revisions are numbered in order and each file is named after its number
    (``0004_deployments.py``), so the head is the highest number: reading it from the
    folder spares every command the ~0.1 s of importing Alembic when the store is current.
    A test pins that Alembic's own walk agrees.
    """
    numbers = (
        entry.name.partition("_")[0]
        for entry in Path(_MIGRATIONS, "versions").iterdir()
        if entry.suffix == ".py" and entry.name[:1].isdigit()
    )
    return max(numbers)


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision, read from Alembic's table without importing Alembic;
    None for a new, empty database."""
    with engine.connect() as conn:
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except SQLAlchemyError:
            conn.rollback()
            return None
    if len(rows) > 1:  # several heads: never written by mloop, let Alembic explain
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return rows[0][0] if rows else None


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def upgrade(store: MetadataStore) -> None:
    """Bring the store's schema to the newest revision; a no-op when it is there already."""
    head = head_revision()
    if current_revision(store.engine) == head:
        return
    from alembic import command

    with _migrate_lock, _cross_process_lock(store):
        current = current_revision(store.engine)
        if current == head:
            return
        known = {rev.revision for rev in _scripts().walk_revisions()}
        if current is not None and current not in known:
            raise StoreError(
                f"the metadata store at {store.safe_uri} has schema revision {current}, "
                "newer than this mloop knows; upgrade mloop (pip install -U mloop)"
            )
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")


@contextmanager
def _cross_process_lock(store: MetadataStore) -> Iterator[None]:
    if store.dialect == "sqlite":
        database = store.engine.url.database or ""
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()


def open_store(uri: str, *, migrate: bool = True) -> MetadataStore:
    """Open (creating and migrating as needed) the metadata store at ``uri``."""
    url = _parse(uri)
    try:
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot open {uri!r}: {exc}; install the database driver") from exc
    store = MetadataStore(url.render_as_string(hide_password=False), engine)
    if migrate:
        try:
            if store.uri not in _migrated:
                upgrade(store)
                _migrated.add(store.uri)
        except SQLAlchemyError as exc:
            store.close()
            raise StoreError(
                f"cannot open the metadata store at {store.safe_uri}: {exc}; "
                "check the URI and that the database server is running"
            ) from exc
        except BaseException:  # a store too new for this mloop, Ctrl-C: no pooled leftovers
            store.close()
            raise
    return store


__all__ = [
    "MetadataStore",
    "WriteWouldWait",
    "current_revision",
    "head_revision",
    "open_store",
    "upgrade",
    "writes_without_waiting",
]
