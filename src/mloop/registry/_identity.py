"""Users, service accounts, their roles and API keys, and :func:`authenticate`.

Users are disabled rather than deleted, so approvals and audit entries keep naming them.
Managing users and roles needs a global ``admin``; anyone may create, list and revoke
their own API keys. Every change is audited in the transaction that makes it, and no key
or key hash ever reaches the audit log, an error message or a log line.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from mloop._ids import new_id, now_ms
from mloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from mloop.registry import _audit, _keys, _names
from mloop.registry._db import (
    API_KEYS,
    ROLE_BINDINGS,
    USERS,
    Actor,
    actor_name,
    check,
    connect,
    write,
)
from mloop.registry._entities import ApiKeyInfo, NewApiKey, Principal, RoleGrant, User
from mloop.registry._roles import GLOBAL
from mloop.store import MetadataStore

_verified = _keys.VerifiedKeys()
_LAST_USED_RESOLUTION_MS = 60_000  # record use at most once a minute per key


# -- users ------------------------------------------------------------------------------------


def create_user(
    name: str,
    *,
    kind: str = "user",
    roles: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> User:
    """Create a user (``kind="user"``) or a service account (``kind="service"``), holding
    ``roles`` given as ``(role, scope)`` pairs."""
    _names.user_name(name)
    _names.user_kind(kind)
    grants = [(_names.role(r), _names.scope(sc)) for r, sc in roles]
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)

    def work(conn: Connection) -> User:
        if _user_row(conn, name) is not None:
            raise Conflict(f"user {name!r} already exists; `mloop users list` shows them")
        user_id, now = new_id(), now_ms()
        conn.execute(
            USERS.insert(),
            {
                "user_id": user_id,
                "name": name,
                "kind": kind,
                "disabled": False,
                "creation_time": now,
            },
        )
        _audit.append(
            conn,
            actor=who,
            action="user.create",
            target=f"user:{name}",
            before=None,
            after={"name": name, "kind": kind},
        )
        for role, scope in dict.fromkeys(grants):
            _grant(conn, who, user_id, name, role, scope)
        return _load_user(conn, name)

    with connect(store) as db:
        return write(db, work)


def get_user(name: str, *, store: MetadataStore | None = None) -> User:
    with connect(store) as db, db.read() as conn:
        return _load_user(conn, name)


def list_users(*, store: MetadataStore | None = None) -> list[User]:
    with connect(store) as db, db.read() as conn:
        names = conn.execute(select(USERS.c.name).order_by(USERS.c.name)).scalars().all()
        return [_load_user(conn, n) for n in names]


def disable_user(name: str, *, actor: Actor = None, store: MetadataStore | None = None) -> User:
    """Disable ``name``: its API keys stop working and its approvals stop counting."""
    return _set_disabled(name, True, actor, store)


def enable_user(name: str, *, actor: Actor = None, store: MetadataStore | None = None) -> User:
    return _set_disabled(name, False, actor, store)


def _set_disabled(name: str, disabled: bool, actor: Actor, store: MetadataStore | None) -> User:
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)

    def work(conn: Connection) -> User:
        row = _require_user(conn, name)
        if bool(row.disabled) != disabled:
            conn.execute(
                update(USERS).where(USERS.c.user_id == row.user_id).values(disabled=disabled)
            )
            _audit.append(
                conn,
                actor=who,
                action="user.disable" if disabled else "user.enable",
                target=f"user:{name}",
                before={"disabled": bool(row.disabled)},
                after={"disabled": disabled},
            )
        return _load_user(conn, name)

    with connect(store) as db:
        return write(db, work)


# -- roles ------------------------------------------------------------------------------------


def grant_role(
    user: str,
    role: str,
    scope: str = "global",
    *,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> User:
    """Let ``user`` hold ``role`` within ``scope`` (``global``, ``experiment:<id or name>``,
    ``model:<name>``); granting a role held already changes nothing."""
    role, scope = _names.role(role), _names.scope(scope)
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)

    def work(conn: Connection) -> User:
        row = _require_user(conn, user)
        _grant(conn, who, row.user_id, user, role, scope)
        return _load_user(conn, user)

    with connect(store) as db:
        return write(db, work)


def _grant(conn: Connection, who: str, user_id: str, user: str, role: str, scope: str) -> None:
    held = conn.execute(
        select(ROLE_BINDINGS.c.id).where(
            ROLE_BINDINGS.c.user_id == user_id,
            ROLE_BINDINGS.c.role == role,
            ROLE_BINDINGS.c.scope == scope,
        )
    ).first()
    if held is not None:
        return
    conn.execute(
        ROLE_BINDINGS.insert(),
        {"user_id": user_id, "role": role, "scope": scope, "creation_time": now_ms()},
    )
    _audit.append(
        conn,
        actor=who,
        action="role.grant",
        target=f"user:{user}",
        before=None,
        after={"role": role, "scope": scope},
    )


def revoke_role(
    user: str,
    role: str,
    scope: str = "global",
    *,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> User:
    role, scope = _names.role(role), _names.scope(scope)
    check(actor, "admin", GLOBAL)
    who = actor_name(actor)

    def work(conn: Connection) -> User:
        row = _require_user(conn, user)
        removed = conn.execute(
            ROLE_BINDINGS.delete().where(
                ROLE_BINDINGS.c.user_id == row.user_id,
                ROLE_BINDINGS.c.role == role,
                ROLE_BINDINGS.c.scope == scope,
            )
        ).rowcount
        if not removed:
            raise NotFound(
                f"user {user!r} does not hold {role} in scope {scope}; "
                f"`mloop users list` shows the roles each user holds"
            )
        _audit.append(
            conn,
            actor=who,
            action="role.revoke",
            target=f"user:{user}",
            before={"role": role, "scope": scope},
            after=None,
        )
        return _load_user(conn, user)

    with connect(store) as db:
        return write(db, work)


# -- API keys ---------------------------------------------------------------------------------


def create_api_key(
    user: str,
    *,
    description: str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> NewApiKey:
    """A new API key for ``user``; the returned ``key`` is shown once and kept nowhere."""
    _names.description(description)
    _check_own_or_admin(actor, user)
    who = actor_name(actor)
    salt = _keys.new_salt()
    key_id, key = _keys.new_key()
    key_hash = _keys.hash_key(key, salt)  # slow: computed before the transaction

    def work(conn: Connection) -> NewApiKey:
        row = _require_user(conn, user)
        if row.disabled:
            raise Conflict(f"user {user!r} is disabled; enable it before giving it keys")
        now = now_ms()
        conn.execute(
            API_KEYS.insert(),
            {
                "key_id": key_id,
                "user_id": row.user_id,
                "description": description,
                "salt": salt,
                "key_hash": key_hash,
                "hash_scheme": _keys.SCHEME,
                "creation_time": now,
                "last_used_time": None,
                "revoked_time": None,
            },
        )
        _audit.append(
            conn,
            actor=who,
            action="api_key.create",
            target=f"api_key:{key_id}",
            before=None,
            after={"key_id": key_id, "user": user, "description": description},
        )
        return NewApiKey(ApiKeyInfo(key_id, user, description, now, None, None), key)

    with connect(store) as db:
        return write(db, work)


def list_api_keys(
    user: str | None = None, *, actor: Actor = None, store: MetadataStore | None = None
) -> list[ApiKeyInfo]:
    """Keys (never their secrets), newest first; ``user`` narrows to one user's keys."""
    if user is None:
        check(actor, "admin", GLOBAL)
    else:
        _check_own_or_admin(actor, user)
    query = (
        select(API_KEYS, USERS.c.name)
        .select_from(API_KEYS.join(USERS))
        .order_by(API_KEYS.c.creation_time.desc(), API_KEYS.c.key_id)
    )
    with connect(store) as db, db.read() as conn:
        if user is not None:
            _require_user(conn, user)
            query = query.where(USERS.c.name == user)
        return [_key_info(row) for row in conn.execute(query)]


def revoke_api_key(
    key_id: str, *, actor: Actor = None, store: MetadataStore | None = None
) -> ApiKeyInfo:
    """Revoke a key for good (its owner or a global admin may)."""

    def work(conn: Connection) -> ApiKeyInfo:
        row = conn.execute(
            select(API_KEYS, USERS.c.name)
            .select_from(API_KEYS.join(USERS))
            .where(API_KEYS.c.key_id == key_id)
        ).first()
        if row is None:
            raise NotFound(f"API key {key_id!r} does not exist; `mloop keys list` shows them")
        _check_own_or_admin(actor, row.name)
        if row.revoked_time is None:
            conn.execute(
                update(API_KEYS).where(API_KEYS.c.key_id == key_id).values(revoked_time=now_ms())
            )
            _audit.append(
                conn,
                actor=actor_name(actor),
                action="api_key.revoke",
                target=f"api_key:{key_id}",
                before={"revoked": False},
                after={"revoked": True},
            )
        return _key_info(
            conn.execute(
                select(API_KEYS, USERS.c.name)
                .select_from(API_KEYS.join(USERS))
                .where(API_KEYS.c.key_id == key_id)
            ).one()
        )

    if not isinstance(key_id, str) or not key_id:
        raise InvalidInput(f"API key id {key_id!r} is not valid; `mloop keys list` shows them")
    with connect(store) as db:
        return write(db, work)


def _check_own_or_admin(actor: Actor, user: str) -> None:
    if isinstance(actor, Principal) and actor.name != user:
        check(actor, "admin", GLOBAL)


# -- authentication ---------------------------------------------------------------------------


def authenticate(api_key: str, *, store: MetadataStore | None = None) -> Principal:
    """The principal an API key stands for, with the roles it holds now.

    Raises :class:`~mloop.errors.Unauthenticated` for a malformed, unknown or revoked key
    or a disabled user. The key is never repeated in a message.
    """
    key_id = _keys.key_id_of(api_key)
    with connect(store) as db:
        with db.read() as conn:
            row = conn.execute(
                select(API_KEYS, USERS.c.name, USERS.c.kind, USERS.c.disabled)
                .select_from(API_KEYS.join(USERS))
                .where(API_KEYS.c.key_id == key_id)
            ).first()
            valid = row is not None and _verified.matches(
                api_key, key_id, row.key_hash, row.salt, row.hash_scheme
            )
            if row is None or not valid:
                raise Unauthenticated(
                    f"API key {key_id} is not valid; check it was copied whole, or create a "
                    "new one with `mloop keys create USER`"
                )
            if row.revoked_time is not None:
                raise Unauthenticated(f"API key {key_id} was revoked; use or create another")
            if row.disabled:
                raise Unauthenticated(f"user {row.name!r} is disabled; its keys do not work")
            principal = Principal(row.name, row.kind, _roles_of(conn, row.user_id), key_id)
        now = now_ms()
        if row.last_used_time is None or now - row.last_used_time > _LAST_USED_RESOLUTION_MS:
            db.write(
                lambda c: c.execute(
                    update(API_KEYS).where(API_KEYS.c.key_id == key_id).values(last_used_time=now)
                )
            )
    return principal


def principal_for(name: str, *, store: MetadataStore | None = None) -> Principal:
    """The principal of a registered, enabled user, for acting locally under its name."""
    with connect(store) as db, db.read() as conn:
        return principal_in(conn, name)


def principal_in(conn: Connection, name: str) -> Principal:
    row = _user_row(conn, name)
    if row is None:
        raise PermissionDenied(
            f"{name!r} is not a registered user; an admin creates it with "
            f"`mloop users create {name}` (set MLOOP_USER to act as another user)"
        )
    if row.disabled:
        raise PermissionDenied(f"user {name!r} is disabled")
    return Principal(row.name, row.kind, _roles_of(conn, row.user_id))


# -- reading ----------------------------------------------------------------------------------


def _user_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(USERS).where(USERS.c.name == name)).first()


def _require_user(conn: Connection, name: str) -> Any:
    row = _user_row(conn, name)
    if row is None:
        raise NotFound(f"user {name!r} does not exist; create it with `mloop users create {name}`")
    return row


def _roles_of(conn: Connection, user_id: str) -> tuple[RoleGrant, ...]:
    rows = conn.execute(
        select(ROLE_BINDINGS.c.role, ROLE_BINDINGS.c.scope)
        .where(ROLE_BINDINGS.c.user_id == user_id)
        .order_by(ROLE_BINDINGS.c.scope, ROLE_BINDINGS.c.role)
    )
    return tuple(RoleGrant(r.role, r.scope) for r in rows)


def _load_user(conn: Connection, name: str) -> User:
    row = _require_user(conn, name)
    return User(
        name=row.name,
        kind=row.kind,
        disabled=bool(row.disabled),
        roles=_roles_of(conn, row.user_id),
        creation_time=row.creation_time,
    )


def _key_info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        user=row.name,
        description=row.description,
        creation_time=row.creation_time,
        last_used_time=row.last_used_time,
        revoked_time=row.revoked_time,
    )
