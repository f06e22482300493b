"""The registry's way into the metadata store: which store, one lock, and who is acting.

Every registry write runs in one transaction that first takes the registry lock: on
SQLite the writer's ``BEGIN IMMEDIATE`` already is that lock, on PostgreSQL a
transaction-scoped advisory lock. Registry writes are rare, so serializing them costs
nothing measurable and buys three guarantees at once: version numbers never collide, an
alias move and the policy check that allowed it see the same state, and audit entries
form one unbroken chain (each reads the hash of the one before).
"""

from __future__ import annotations

import getpass
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

from sqlalchemy import Connection, Table, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from mloop.config import Settings, get_settings
from mloop.errors import Conflict
from mloop.registry import _roles
from mloop.registry._entities import Principal
from mloop.store import MetadataStore, open_store
from mloop.store import schema as s

T = TypeVar("T")
Actor = Principal | str | None

MODELS = cast(Table, s.RegisteredModel.__table__)
VERSIONS = cast(Table, s.ModelVersion.__table__)
ALIASES = cast(Table, s.ModelAlias.__table__)
APPROVALS = cast(Table, s.Approval.__table__)
POLICIES = cast(Table, s.TrustPolicy.__table__)
AUDIT = cast(Table, s.AuditEntry.__table__)
USERS = cast(Table, s.User.__table__)
API_KEYS = cast(Table, s.ApiKey.__table__)
ROLE_BINDINGS = cast(Table, s.RoleBinding.__table__)
LINEAGE = cast(Table, s.LineageEdge.__table__)
RUNS = cast(Table, s.Run.__table__)
RUN_INPUTS = cast(Table, s.RunInput.__table__)
DATASETS = cast(Table, s.Dataset.__table__)
DATASET_VERSIONS = cast(Table, s.DatasetVersion.__table__)

_PG_REGISTRY_LOCK = 0x6D6C6F6F7072  # "mloopr"


@contextmanager
def connect(
    store: MetadataStore | None = None, settings: Settings | None = None
) -> Iterator[MetadataStore]:
    """``store`` itself, or the metadata store ``settings`` (default: the configured ones)
    name (:attr:`Settings.metadata_uri`). It stays open for the next call (see
    :func:`_open`)."""
    if store is not None:
        yield store
        return
    yield _open((settings or get_settings()).metadata_uri)


_opened: OrderedDict[tuple[int, str], MetadataStore] = OrderedDict()
_opened_lock = threading.Lock()
_KEEP_OPEN = 4


def _open(uri: str) -> MetadataStore:
    """A store kept open per process and URI, the few most recent ones.

    Registry calls are small and frequent (``load_model("models:/…")`` resolves and reads
    a policy; a server answers many); reopening costs an engine, a connection and every
    statement's compilation each time, several times the call itself. Keyed by process id
    because pooled connections must not cross a fork.
    """
    key = (os.getpid(), uri)
    with _opened_lock:
        found = _opened.get(key)
        if found is not None:
            _opened.move_to_end(key)
            return found
    store = open_store(uri)
    evicted: list[MetadataStore] = []
    with _opened_lock:
        if key in _opened:  # another thread opened it meanwhile
            evicted.append(store)
            store = _opened[key]
        else:
            _opened[key] = store
        while len(_opened) > _KEEP_OPEN:
            evicted.append(_opened.popitem(last=False)[1])
    for old in evicted:
        old.close()  # checked-out connections finish their work, then are discarded
    return store


def write(store: MetadataStore, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction holding the registry lock (see the module doc)."""

    def locked(conn: Connection) -> T:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_REGISTRY_LOCK})
        return work(conn)

    try:
        return store.write(locked)
    except SAIntegrityError as exc:  # a constraint the checks above should have caught
        raise Conflict(
            f"the registry refused a write that conflicts with stored data: {exc.orig}; "
            "reload and try again"
        ) from exc


def actor_name(actor: Actor) -> str:
    """Who is acting: the principal's name, the name given, or the configured user
    (``MLOOP_USER`` / ``user`` in mloop.toml, else the login name)."""
    if isinstance(actor, Principal):
        return actor.name
    if actor:
        return actor
    return configured_user()


def configured_user() -> str:
    configured = get_settings().user
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check(actor: Actor, action: str, resource: _roles.Resource) -> None:
    """Authorize API callers (a :class:`Principal`); a local caller, who already holds the
    store itself, is trusted and only named in the audit log."""
    if isinstance(actor, Principal):
        _roles.authorize(actor, action, resource)
