"""Users, service accounts, role grants and API keys: only a salted hash is stored, keys
are shown once, and authentication refuses anything revoked, disabled or malformed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from mloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from mloop.registry import (
    Principal,
    RoleGrant,
    _keys,
    authenticate,
    create_api_key,
    create_user,
    disable_user,
    enable_user,
    get_user,
    grant_role,
    list_api_keys,
    list_audit_log,
    list_users,
    principal_for,
    revoke_api_key,
    revoke_role,
)
from mloop.registry._identity import _verified
from mloop.store import MetadataStore
from mloop.store.schema import Base


def test_users_and_service_accounts_hold_scoped_roles(db: str) -> None:
    create_user("ada", roles=[("admin", "global")])
    create_user("ci-bot", kind="service", roles=[("editor", "experiment:nightly")])
    grant_role("ci-bot", "deployer", "model:churn")
    grant_role("ci-bot", "deployer", "model:churn")  # held already: no change
    bot = get_user("ci-bot")
    assert (bot.kind, bot.disabled) == ("service", False)
    assert bot.roles == (
        RoleGrant("editor", "experiment:nightly"),
        RoleGrant("deployer", "model:churn"),
    )
    assert [u.name for u in list_users()] == ["ada", "ci-bot"]
    revoke_role("ci-bot", "editor", "experiment:nightly")
    assert get_user("ci-bot").roles == (RoleGrant("deployer", "model:churn"),)
    with pytest.raises(NotFound, match="does not hold editor in scope experiment:nightly"):
        revoke_role("ci-bot", "editor", "experiment:nightly")
    assert disable_user("ci-bot").disabled
    assert not enable_user("ci-bot").disabled
    actions = [(e.action, e.target, e.after) for e in reversed(list_audit_log())]
    assert actions == [
        ("user.create", "user:ada", {"kind": "user", "name": "ada"}),
        ("role.grant", "user:ada", {"role": "admin", "scope": "global"}),
        ("user.create", "user:ci-bot", {"kind": "service", "name": "ci-bot"}),
        ("role.grant", "user:ci-bot", {"role": "editor", "scope": "experiment:nightly"}),
        ("role.grant", "user:ci-bot", {"role": "deployer", "scope": "model:churn"}),
        ("role.revoke", "user:ci-bot", None),
        ("user.disable", "user:ci-bot", {"disabled": True}),
        ("user.enable", "user:ci-bot", {"disabled": False}),
    ]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: create_user("bad name"), InvalidInput, "user name"),
        (lambda: create_user("x", kind="robot"), InvalidInput, "user kind"),
        (lambda: create_user("x", roles=[("owner", "global")]), InvalidInput, "role 'owner'"),
        (lambda: create_user("x", roles=[("viewer", "team:a")]), InvalidInput, "scope"),
        (lambda: create_user("x", roles=[("viewer", "model:a/b")]), InvalidInput, "model name"),
        (lambda: grant_role("nobody", "viewer"), NotFound, "create it with"),
        (lambda: create_api_key("nobody"), NotFound, "does not exist"),
        (lambda: revoke_api_key("0123456789abcdef"), NotFound, "does not exist"),
    ],
)
def test_bad_identity_input_is_refused(
    sqlite_db: str, call: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]
    assert list_audit_log() == []


def test_duplicate_users_conflict(sqlite_db: str) -> None:
    create_user("ada")
    with pytest.raises(Conflict, match="already exists"):
        create_user("ada", kind="service")


def _all_stored_text(store: MetadataStore) -> str:
    with store.read() as conn:
        return "\n".join(
            str(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in conn.execute(select(table))
        )


def test_api_keys_are_shown_once_and_only_a_salted_hash_is_stored(
    db: str, store: MetadataStore
) -> None:
    create_user("ci-bot", kind="service", roles=[("editor", "model:churn")])
    new = create_api_key("ci-bot", description="nightly training")
    assert new.key.startswith(f"mloop_{new.info.key_id}_")
    assert new.key not in repr(new)
    secret = new.key.split("_", 2)[2]
    assert len(secret) >= 43
    stored = _all_stored_text(store)
    assert new.info.key_id in stored
    assert secret not in stored
    assert hashlib.sha256(new.key.encode()).hexdigest() not in stored
    assert all(new.key not in str(e.to_dict()) for e in list_audit_log())
    [info] = list_api_keys("ci-bot")
    assert info == new.info
    assert "key" not in info.to_dict()

    other = create_api_key("ci-bot")
    assert other.key != new.key
    row_salts = {
        tuple(r)
        for r in store.engine.connect().execute(
            select(
                Base.metadata.tables["api_keys"].c.salt, Base.metadata.tables["api_keys"].c.key_hash
            )
        )
    }
    assert len({salt for salt, _ in row_salts}) == 2


def test_authenticate_returns_the_principal_with_its_roles(db: str) -> None:
    create_user("ci-bot", kind="service", roles=[("editor", "model:churn")])
    new = create_api_key("ci-bot")
    principal = authenticate(new.key)
    assert principal == Principal(
        "ci-bot", "service", (RoleGrant("editor", "model:churn"),), new.info.key_id
    )
    _verified.clear()  # the slow path (scrypt) and the remembered one agree
    assert authenticate(" " + new.key + "\n") == principal
    [info] = list_api_keys("ci-bot")
    assert info.last_used_time is not None


def test_authentication_refuses_wrong_revoked_disabled_and_malformed_keys(db: str) -> None:
    create_user("bob")
    new = create_api_key("bob")
    authenticate(new.key)  # remembered now: a wrong key must still fail
    key_id = new.info.key_id
    wrong = new.key[:-4] + ("AAAA" if not new.key.endswith("AAAA") else "BBBB")
    for bad, message in [
        (wrong, f"API key {key_id} is not valid"),
        (f"mloop_{'0' * 16}_{'x' * 43}", "is not valid"),
        ("mloop_nothex_" + "x" * 43, "malformed"),
        ("Bearer something", "malformed"),
        ("", "malformed"),
    ]:
        with pytest.raises(Unauthenticated, match=message) as refused:
            authenticate(bad)
        assert new.key[-20:] not in refused.value.message
    disable_user("bob")
    with pytest.raises(Unauthenticated, match="user 'bob' is disabled"):
        authenticate(new.key)
    with pytest.raises(Conflict, match="disabled"):
        create_api_key("bob")
    enable_user("bob")
    assert authenticate(new.key).name == "bob"
    revoked = revoke_api_key(key_id)
    assert revoked.revoked
    revoke_api_key(key_id)  # again: no change, no second entry
    with pytest.raises(Unauthenticated, match="was revoked"):
        authenticate(new.key)
    assert len(list_audit_log(action="api_key.revoke")) == 1


def test_principals_manage_their_own_keys_and_admins_everyone(db: str) -> None:
    create_user("bob")
    create_user("cy")
    bob = Principal("bob", "user", ())
    admin = Principal("root", "user", (RoleGrant("admin", "global"),))
    mine = create_api_key("bob", actor=bob)
    assert [k.key_id for k in list_api_keys("bob", actor=bob)] == [mine.info.key_id]
    with pytest.raises(PermissionDenied, match="may not admin global"):
        create_api_key("cy", actor=bob)
    with pytest.raises(PermissionDenied):
        list_api_keys(actor=bob)
    with pytest.raises(PermissionDenied):
        create_user("dee", actor=bob)
    theirs = create_api_key("cy", actor=admin)
    with pytest.raises(PermissionDenied):
        revoke_api_key(theirs.info.key_id, actor=bob)
    revoke_api_key(mine.info.key_id, actor=bob)
    assert {k.key_id for k in list_api_keys(actor=admin)} == {mine.info.key_id, theirs.info.key_id}


def test_principal_for_a_local_user(db: str) -> None:
    create_user("bob", roles=[("viewer", "global")])
    assert principal_for("bob").roles == (RoleGrant("viewer", "global"),)
    with pytest.raises(PermissionDenied, match="not a registered user"):
        principal_for("zed")
    disable_user("bob")
    with pytest.raises(PermissionDenied, match="disabled"):
        principal_for("bob")


# -- the key format (no store) ----------------------------------------------------------------

MALFORMED = (
    "the API key is malformed: mloop API keys look like mloop_<key id>_<secret>; "
    "create one with `mloop keys create USER`"
)


def test_new_keys_parse_back_to_their_id() -> None:
    for _ in range(20):
        key_id, key = _keys.new_key()
        assert _keys.key_id_of(key) == key_id


@given(st.text(max_size=80))
def test_anything_not_shaped_like_a_key_is_malformed_and_never_echoed(text: str) -> None:
    try:
        key_id = _keys.key_id_of(text)
    except Unauthenticated as exc:
        assert exc.message == MALFORMED  # noqa: PT017 (the same words whatever was passed)
    else:
        assert text.strip().startswith(f"mloop_{key_id}_")


def test_the_hash_depends_on_the_salt_and_the_scheme_is_recorded() -> None:
    _, key = _keys.new_key()
    salt_a, salt_b = _keys.new_salt(), _keys.new_salt()
    assert _keys.hash_key(key, salt_a) != _keys.hash_key(key, salt_b)
    assert _keys.hash_key(key, salt_a) == _keys.hash_key(key, salt_a)
    assert _keys.SCHEME.startswith("scrypt:n=")
    with pytest.raises(Unauthenticated, match="cannot check"):
        _keys.hash_key(key, salt_a, "md5:rounds=1")
