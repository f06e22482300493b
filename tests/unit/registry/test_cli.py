"""``mloop models`` (registry), ``mloop users``, ``mloop keys`` and ``mloop audit``, run
in-process as the console script runs them.

The commands are thin over the library, which the other modules test on both backends;
here the promotion and audit flows run on both, the rest on SQLite (each invocation
rebuilds Typer's whole command tree, about 0.2 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.fixtures.registry import DIGESTS, drop_audit_triggers
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

from mloop.registry import (
    authenticate,
    get_trust_policy,
    list_audit_log,
    register_model_version,
    resolve,
)
from mloop.store import MetadataStore

Capsys = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _register_two_versions() -> None:
    register_model_version("churn", "runs:/r1/model", package_digest=DIGESTS[0])
    register_model_version("churn", "runs:/r2/model", package_digest=DIGESTS[1])


@pytest.fixture
def churn(db: str) -> None:
    _register_two_versions()


@pytest.fixture
def churn_local(sqlite_db: str) -> None:
    _register_two_versions()


def ok(capsys: Capsys, *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return out


def test_models_list_show_and_versions(churn_local: None, capsys: Capsys) -> None:
    assert "No registered models" not in ok(capsys, "models", "list")
    [model] = run_json(capsys, "models", "list")
    assert (model["name"], model["latest_version"], model["num_versions"]) == ("churn", 2, 2)
    ok(capsys, "models", "alias", "churn", "champion", "1")
    out = ok(capsys, "models", "list")
    assert "churn" in out
    assert "@champion → 1" in out
    shown = run_json(capsys, "models", "show", "churn")
    assert shown["aliases"] == {"champion": 1}
    assert shown["policy"] is None
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    out = ok(capsys, "models", "show", "churn")
    assert "Versions (2)" in out
    assert "runs:/r2/model" in out
    versions = run_json(capsys, "models", "versions", "churn")
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["champion"]), (2, [])]
    assert versions[0]["uri"] == "models:/churn/1"


def test_alias_moves_deletes_and_refuses_bad_input(churn_local: None, capsys: Capsys) -> None:
    assert "churn@champion → version 2" in ok(capsys, "models", "alias", "churn", "champion", "2")
    assert resolve("churn", "@champion").version == 2
    ok(capsys, "models", "alias", "churn", "champion", "--delete")
    for args, message in [
        (("champion",), "give the VERSION"),
        (("champion", "1", "--delete"), "either a VERSION"),
        (("latest", "1"), "reserved"),
        (("champion", "x"), "model version 'x' is not valid"),
        (("champion", "9"), "has no version 9"),
    ]:
        code, _, err = run_cli(capsys, "models", "alias", "churn", *args)
        assert code == 2
        assert message in one_error_line(err)
    code, _, err = run_cli(capsys, "models", "show", "ghost")
    assert code == 2
    assert "does not exist" in one_error_line(err)


def test_policy_approvals_and_promotion_from_the_cli(
    churn: None, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ok(capsys, "users", "create", "ada", "--role", "admin")
    ok(capsys, "users", "create", "bob")
    ok(capsys, "users", "grant", "bob", "approver", "--model", "churn")
    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "team.pub").write_bytes(public)
    policy = run_json(
        capsys, "models", "policy", "churn", "--approvals", "1", "--approver-not-uploader",
        "--trusted-key", str(tmp_path / "team.pub"),
    )  # fmt: skip
    assert (policy["required_approvals"], policy["approver_not_uploader"]) == (1, True)
    assert policy["trusted_keys"] == [public.decode()]
    ok(capsys, "models", "policy", "churn", "--require-evaluation")
    ok(capsys, "models", "policy", "churn", "--no-require-evaluation")
    stored = get_trust_policy("churn")
    assert stored is not None
    assert (stored.required_approvals, stored.require_evaluation) == (1, False)
    assert "approver is not uploader" in ok(capsys, "models", "policy", "churn")

    code, _, err = run_cli(capsys, "models", "alias", "churn", "champion", "2")
    assert code == 2
    assert "approvals: 1 needed from approvers other than the uploader 'ada'" in one_error_line(err)
    code, _, err = run_cli(capsys, "models", "approve", "churn", "2", "--alias", "champion")
    assert code == 2
    assert "'ada' registered version 2" in one_error_line(err)
    monkeypatch.setenv("MLOOP_USER", "bob")
    out = ok(capsys, "models", "approve", "churn", "2", "--alias", "champion", "-m", "AUC +2")
    assert "bob approved version 2 of churn for @champion" in out
    ok(capsys, "models", "alias", "churn", "champion", "2")
    assert resolve("churn", "@champion").version == 2

    for args, message in [
        (("--approvals", "-1"), "--approvals"),
        (("--trusted-key", str(tmp_path / "missing.pub")), "does not exist"),
        (("--require-signature", "--trusted-key", str(tmp_path / "x")), "does not exist"),
    ]:
        code, _, err = run_cli(capsys, "models", "policy", "churn", *args)
        assert code == 2
        assert message in one_error_line(err)
    (tmp_path / "junk.pub").write_text("junk")
    code, _, err = run_cli(
        capsys, "models", "policy", "churn", "--trusted-key", str(tmp_path / "junk.pub")
    )
    assert "not a PEM public key" in one_error_line(err)


def test_archive_and_restore(churn_local: None, capsys: Capsys) -> None:
    assert "Archived version 2 of churn" in ok(capsys, "models", "archive", "churn", "2")
    code, _, err = run_cli(capsys, "models", "alias", "churn", "champion", "2")
    assert code == 2
    assert "archived" in one_error_line(err)
    assert [v["version"] for v in run_json(capsys, "models", "versions", "churn", "--active")] == [
        1
    ]
    assert "Restored version 2" in ok(capsys, "models", "archive", "churn", "2", "--restore")


def test_users_and_roles(sqlite_db: str, capsys: Capsys) -> None:
    created = run_json(capsys, "users", "create", "ci-bot", "--service", "--role", "viewer")
    assert (created["kind"], created["roles"]) == (
        "service",
        [{"role": "viewer", "scope": "global"}],
    )
    ok(capsys, "users", "grant", "ci-bot", "editor", "--experiment", "nightly")
    out = ok(capsys, "users", "list")
    assert "editor (experiment:nightly)" in out
    ok(capsys, "users", "revoke", "ci-bot", "editor", "--experiment", "nightly")
    ok(capsys, "users", "disable", "ci-bot")
    [user] = run_json(capsys, "users", "list")
    assert (user["disabled"], user["roles"]) == (True, [{"role": "viewer", "scope": "global"}])
    ok(capsys, "users", "enable", "ci-bot")
    for args, message in [
        (("users", "grant", "ci-bot", "owner"), "role 'owner' does not exist"),
        (("users", "grant", "ci-bot", "viewer", "--model", "a", "--experiment", "b"), "not both"),
        (("users", "create", "ci-bot"), "already exists"),
        (("users", "create", "bad name"), "user name"),
        (("users", "disable", "nobody"), "does not exist"),
    ]:
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert message in one_error_line(err)


def test_keys_are_printed_once_and_work(sqlite_db: str, capsys: Capsys) -> None:
    ok(capsys, "users", "create", "ci-bot", "--service", "--role", "editor")
    code, out, err = run_cli(capsys, "keys", "create", "ci-bot", "-d", "nightly")
    assert code == 0, err
    key = out.strip()
    principal = authenticate(key)
    assert principal.name == "ci-bot"
    assert "store it now" in err
    assert key not in err
    listed = run_json(capsys, "keys", "list", "--user", "ci-bot")
    assert [k["key_id"] for k in listed] == [principal.key_id]
    assert key not in str(listed)
    out = ok(capsys, "keys", "list")
    assert principal.key_id is not None
    assert principal.key_id in out
    assert key not in out
    ok(capsys, "keys", "revoke", principal.key_id)
    assert "revoked" in ok(capsys, "keys", "list")
    as_json = run_json(capsys, "keys", "create", "ci-bot")
    assert as_json["key"].startswith(f"mloop_{as_json['key_id']}_")
    code, _, err = run_cli(capsys, "keys", "revoke", "ffff")
    assert code == 2
    assert "does not exist" in one_error_line(err)
    assert all(key not in str(e.to_dict()) for e in list_audit_log(limit=1000))


def test_audit_list_and_verify(churn: None, capsys: Capsys, store: MetadataStore) -> None:
    ok(capsys, "models", "alias", "churn", "champion", "1")
    entries = run_json(capsys, "audit", "list", "--target", "model:churn@champion")
    assert [(e["action"], e["after"]) for e in entries] == [("alias.set", {"version": 1})]
    out = ok(capsys, "audit", "list", "-n", "2")
    assert "alias.set" in out
    assert "version.create" in out
    assert "model.create" not in out
    verified = run_json(capsys, "audit", "verify")
    assert (verified["ok"], verified["checked"]) == (True, 4)
    out = ok(capsys, "audit", "verify", "--anchor", f"4:{verified['head_hash']}")
    assert "Audit log intact: 4 entries" in out

    drop_audit_triggers(store)
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET after = NULL WHERE seq = 2"))
    code, out, err = run_cli(capsys, "audit", "verify")
    assert code == 1
    assert err.startswith("audit log broken at entry 2: entry 2 was changed")
    assert len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "audit", "verify", "--anchor", "nonsense")
    assert code == 2
    assert "SEQ:HASH" in one_error_line(err)


def test_empty_store_messages(sqlite_db: str, capsys: Capsys) -> None:
    assert "No registered models yet" in ok(capsys, "models", "list")
    assert "No users yet" in ok(capsys, "users", "list")
    assert "The audit log is empty" in ok(capsys, "audit", "verify")
