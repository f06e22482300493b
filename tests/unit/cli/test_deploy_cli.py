"""``mloop deploy create | update | show | list | history | rollback`` and ``mloop users
grant --deployment``, run in-process as the console script runs them. The library they call
is tested on both backends in tests/unit/serving/test_deployments.py; here the commands'
parsing, rendering and one-line errors, on SQLite, with one flow on PostgreSQL too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mloop.registry import get_user, list_audit_log, register_model_version, set_alias
from mloop.serving._deployments import deployment_history, get_deployment
from mloop.serving._spec import RateLimit
from tests.fixtures.registry import DIGESTS
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

Capsys = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _iris() -> None:
    for digest in DIGESTS[:4]:
        register_model_version("iris", "/p", package_digest=digest)
    set_alias("iris", "champion", 2)


@pytest.fixture
def iris(sqlite_db: str) -> None:
    _iris()


def ok(capsys: Capsys, *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return out


def error(capsys: Capsys, *args: str) -> str:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    return one_error_line(err)


def test_create_show_update_rollback(db: str, capsys: Capsys) -> None:
    _iris()
    out = ok(
        capsys, "deploy", "create", "fraud", "--model", "iris@champion", "--canary", "iris:3=10",
        "--shadow", "iris:4", "--guard", "output=label", "--guard", "rate_limit_per_key=5:10",
        "--reason", "first",
    )  # fmt: skip
    assert out.strip() == (
        "Created fraud revision 1: iris:2 (90%), iris:3 canary (10%), iris:4 shadow (copy)"
    )
    made = get_deployment("fraud")
    assert made.spec.guards.output == "label"
    assert made.spec.guards.rate_limit_per_key == RateLimit(rate=5, burst=10)
    shown = ok(capsys, "deploy", "show", "fraud")
    for expected in ("Revision    1", "Reason      first", "canary   iris         3      10%"):
        assert expected in shown
    assert "5/s, burst 10" in shown

    ok(capsys, "deploy", "update", "fraud", "--canary", "iris:3=30")
    out = ok(capsys, "deploy", "update", "fraud", "--model", "iris:3", "--no-canary")
    assert out.strip() == "Updated fraud revision 3: iris:3 (100%), iris:4 shadow (copy)"
    assert get_deployment("fraud").spec.guards.output == "label"  # kept from revision 1

    back = run_json(capsys, "deploy", "rollback", "fraud")
    assert (back["revision"], back["reason"]) == (4, "rollback to 2")
    assert [m["weight"] for m in back["spec"]["members"]] == [0.0, 30.0, 0.0]
    history = ok(capsys, "deploy", "history", "fraud")
    assert "4 *" in history
    assert "rollback to 2" in history
    assert [d.revision for d in deployment_history("fraud")] == [1, 2, 3, 4]
    assert [e.actor for e in list_audit_log(target="deployment:fraud")] == ["ada"] * 4


def test_show_an_earlier_revision_and_json(iris: None, capsys: Capsys) -> None:
    ok(capsys, "deploy", "create", "fraud", "--model", "iris:1")
    ok(capsys, "deploy", "update", "fraud", "--model", "iris:2", "--reason", "newer")
    old = run_json(capsys, "deploy", "show", "fraud", "--revision", "1")
    assert (old["revision"], old["spec"]["members"][0]["version"]) == (1, 1)
    assert old["spec"]["format_version"] == 1
    now = run_json(capsys, "deploy", "show", "fraud")
    assert (now["revision"], now["reason"], now["created_by"]) == (2, "newer", "ada")
    listed = run_json(capsys, "deploy", "list")
    assert [d["name"] for d in listed] == ["fraud"]
    assert "fraud" in ok(capsys, "deploy", "list")
    assert len(run_json(capsys, "deploy", "history", "fraud")) == 2


def test_create_from_a_file_and_what_show_json_prints_is_a_valid_file(
    iris: None, capsys: Capsys, tmp_path: Path
) -> None:
    spec_file = tmp_path / "deployment.yaml"
    spec_file.write_text(
        "name: fraud\n"
        "members:\n"
        "  - model: iris@champion\n"
        "  - {model: iris, version: 3, role: shadow}\n"
        "guards: {atypical: flag}\n"
    )
    ok(capsys, "deploy", "create", "fraud", "--file", str(spec_file), "--guard", "top_k=3")
    made = get_deployment("fraud")
    assert [m.ref for m in made.spec.members] == ["iris:2", "iris:3"]
    assert (made.spec.guards.atypical, made.spec.guards.top_k) == ("flag", 3)
    exported = tmp_path / "copy.json"
    exported.write_text(ok(capsys, "deploy", "show", "fraud", "--json"))
    error(capsys, "deploy", "create", "copy", "--file", str(exported))  # has name 'fraud'
    shown = run_json(capsys, "deploy", "show", "fraud")
    exported.write_text(json.dumps(shown["spec"]))
    ok(capsys, "deploy", "create", "copy", "--file", str(exported))
    assert get_deployment("copy").spec == made.spec


def test_an_ensemble_from_the_command_line(iris: None, capsys: Capsys) -> None:
    out = ok(
        capsys, "deploy", "create", "vote", "--model", "iris:1", "--model", "iris:2",
        "--combine", "vote",
    )  # fmt: skip
    assert out.strip() == "Created vote revision 1: iris:1 (100% (vote)), iris:2 (100% (vote))"
    assert get_deployment("vote").spec.combine == "vote"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "fraud"), "error: give the primary with --model NAME:VERSION"),
        (("create", "fraud", "--model", "iris:9"), "has no version 9; it has versions 1 to 4"),
        (("create", "fraud", "--model", "iris@nope"), "has no alias 'nope'"),
        (
            ("create", "fraud", "--model", "iris"),
            "members[0]: model 'iris' names no version; add version: N, or write iris:N",
        ),
        (
            ("create", "fraud", "--model", "iris:1", "--canary", "iris:2"),
            "canary 'iris:2' is not NAME:VERSION=PERCENT",
        ),
        (
            ("create", "fraud", "--model", "iris:1", "--canary", "iris:2=120"),
            "members[1].weight: canary weight 120.0 is not valid",
        ),
        (("create", "fraud", "--model", "iris:1", "--guard", "speed=9"), "guard 'speed' does"),
        (
            ("create", "fraud", "--model", "iris:1", "--guard", "rate_limit_per_key=5"),
            "is not RATE:BURST",
        ),
        (
            ("create", "fraud", "--model", "iris:1", "--model", "iris:2"),
            "needs exactly one primary member (found iris:1, iris:2)",
        ),
        (("create", "bad/name", "--model", "iris:1"), "deployment name 'bad/name' is not valid"),
        (("show", "ghost"), "deployment 'ghost' does not exist"),
        (("update", "ghost", "--model", "iris:1"), "deployment 'ghost' does not exist"),
        (("history", "ghost"), "deployment 'ghost' does not exist"),
        (("rollback", "ghost"), "deployment 'ghost' does not exist"),
    ],
)
def test_errors_are_one_line_with_exit_2(
    iris: None, capsys: Capsys, args: tuple[str, ...], message: str
) -> None:
    assert message in error(capsys, "deploy", *args)


def test_update_refuses_contradictions_and_stale_revisions(iris: None, capsys: Capsys) -> None:
    ok(capsys, "deploy", "create", "fraud", "--model", "iris:1", "--canary", "iris:2=5")
    assert "not both" in error(
        capsys, "deploy", "update", "fraud", "--canary", "iris:2=9", "--no-canary"
    )
    ok(capsys, "deploy", "update", "fraud", "--canary", "iris:2=9", "--expect-revision", "1")
    assert "is at revision 2, not 1" in error(
        capsys, "deploy", "update", "fraud", "--canary", "iris:2=20", "--expect-revision", "1"
    )
    assert "is at revision 2 already" in error(capsys, "deploy", "rollback", "fraud", "--to", "2")
    assert "nothing to change" in error(capsys, "deploy", "update", "fraud")
    assert "leave out --no-canary" in error(
        capsys, "deploy", "update", "fraud", "--file", "x.yaml", "--no-canary"
    )
    same = ok(capsys, "deploy", "update", "fraud", "--canary", "iris:2=9")
    assert same.strip() == "fraud is at revision 2 with that spec already; nothing changed"


def test_empty_list(sqlite_db: str, capsys: Capsys) -> None:
    assert "No deployments yet" in ok(capsys, "deploy", "list")
    assert run_json(capsys, "deploy", "list") == []


def test_users_grant_and_revoke_on_a_deployment(sqlite_db: str, capsys: Capsys) -> None:
    ok(capsys, "users", "create", "scorer", "--service")
    out = ok(capsys, "users", "grant", "scorer", "viewer", "--deployment", "fraud")
    assert "scorer holds viewer (deployment:fraud)" in out
    assert [(r.role, r.scope) for r in get_user("scorer").roles] == [("viewer", "deployment:fraud")]
    ok(capsys, "users", "revoke", "scorer", "viewer", "--deployment", "fraud")
    assert get_user("scorer").roles == ()
    assert "not both" in error(
        capsys, "users", "grant", "scorer", "viewer", "--deployment", "a", "--model", "b"
    )
    assert "deployment name '-x' is not valid" in error(
        capsys, "users", "grant", "scorer", "viewer", "--deployment=-x"
    )
