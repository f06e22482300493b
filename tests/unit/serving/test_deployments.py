"""Deployments in the store, on SQLite and a real PostgreSQL: revisions, rollback, write-time
registry checks, roles, the audit log, concurrent writers and migration 0004."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import inspect

from mloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mloop.registry import (
    Principal,
    RoleGrant,
    archive_model_version,
    list_audit_log,
    register_model_version,
    set_alias,
    verify_audit_log,
)
from mloop.serving._deployments import (
    create_deployment,
    current_revision,
    deployment_history,
    get_deployment,
    implicit_deployment,
    list_deployments,
    rollback_deployment,
    update_deployment,
)
from mloop.serving._spec import DeploymentSpec, Guards, Member, RateLimit
from mloop.store import MetadataStore, head_revision
from mloop.store import current_revision as schema_revision
from mloop.store._engine import _alembic_config
from tests.fixtures.registry import DIGESTS


def _spec(primary: int, canary: int | None = None, weight: float = 10.0) -> DeploymentSpec:
    members = [Member(model="iris", version=primary)]
    if canary is not None:
        members.append(Member(model="iris", version=canary, role="canary", weight=weight))
    return DeploymentSpec(members=tuple(members))


@pytest.fixture
def iris(db: str) -> str:
    for digest in DIGESTS[:4]:
        register_model_version("iris", "/p", package_digest=digest)
    return db


def test_create_stores_revision_one_and_audits_it(iris: str) -> None:
    made = create_deployment("fraud", _spec(1, 2), reason="first")
    assert (made.name, made.revision, made.created_by, made.reason) == ("fraud", 1, "ada", "first")
    assert get_deployment("fraud") == made
    assert current_revision("fraud") == 1
    assert [d.name for d in list_deployments()] == ["fraud"]
    assert deployment_history("fraud") == [made]
    (entry,) = list_audit_log(target="deployment:fraud")
    assert (entry.action, entry.actor, entry.before) == ("deployment.create", "ada", None)
    assert entry.after["revision"] == 1
    assert DeploymentSpec.from_json(entry.after["spec"]) == made.spec
    with pytest.raises(Conflict, match="already exists; change it with `mloop deploy update"):
        create_deployment("fraud", _spec(2))


def test_every_change_is_a_new_revision_and_history_keeps_all(iris: str) -> None:
    create_deployment("fraud", _spec(1))
    second = update_deployment("fraud", _spec(1, 2), reason="canary 2")
    third = update_deployment("fraud", _spec(1, 2, weight=50))
    assert (second.revision, third.revision) == (2, 3)
    assert update_deployment("fraud", _spec(1, 2, weight=50)) == third  # no change, no revision
    assert current_revision("fraud") == 3
    history = deployment_history("fraud")
    assert [h.revision for h in history] == [1, 2, 3]
    assert history[1].reason == "canary 2"
    assert get_deployment("fraud", revision=2).spec == _spec(1, 2)
    entries = list(reversed(list_audit_log(target="deployment:fraud")))
    assert [e.action for e in entries] == ["deployment.create", *["deployment.update"] * 2]
    for earlier, later in itertools.pairwise(entries):
        assert later.before == {k: v for k, v in earlier.after.items() if k != "reason"}
    assert verify_audit_log().ok


def test_expected_revision_refuses_a_stale_change(iris: str) -> None:
    create_deployment("fraud", _spec(1))
    update_deployment("fraud", _spec(2), expected_revision=1)
    with pytest.raises(Conflict, match="is at revision 2, not 1: someone changed it"):
        update_deployment("fraud", _spec(3), expected_revision=1)
    assert get_deployment("fraud").spec == _spec(2)


def test_rollback_makes_a_new_revision_with_an_earlier_spec(iris: str) -> None:
    create_deployment("fraud", _spec(1))
    update_deployment("fraud", _spec(2))
    update_deployment("fraud", _spec(3))
    back = rollback_deployment("fraud")
    assert (back.revision, back.reason, back.spec) == (4, "rollback to 2", _spec(2))
    again = rollback_deployment("fraud", to_revision=1)
    assert (again.revision, again.reason, again.spec) == (5, "rollback to 1", _spec(1))
    assert [d.revision for d in deployment_history("fraud")] == [1, 2, 3, 4, 5]
    assert list_audit_log(target="deployment:fraud", limit=1)[0].action == "deployment.rollback"
    with pytest.raises(Conflict, match="at revision 5 already"):
        rollback_deployment("fraud", to_revision=5)
    with pytest.raises(Conflict, match="same spec as the current revision 5"):
        rollback_deployment("fraud", to_revision=1)
    with pytest.raises(NotFound, match="has no revision 9; it has 1 to 5"):
        rollback_deployment("fraud", to_revision=9)
    with pytest.raises(InvalidInput, match="revision 0 is not valid"):
        rollback_deployment("fraud", to_revision=0)


def test_a_first_revision_has_nothing_to_roll_back_to(iris: str) -> None:
    create_deployment("fraud", _spec(1))
    with pytest.raises(Conflict, match="only revision 1"):
        rollback_deployment("fraud")


def test_aliases_are_resolved_when_the_spec_is_stored(iris: str) -> None:
    set_alias("iris", "champion", 2)
    made = create_deployment(
        "fraud",
        {
            "members": [
                {"model": "iris@champion"},
                {"model": "iris", "version": "latest", "role": "shadow"},
            ],
            "preprocessing": "models:/iris@champion",
        },
    )
    assert [m.version for m in made.spec.members] == [2, 4]
    assert made.spec.preprocessing == "models:/iris/2"
    set_alias("iris", "champion", 3)
    assert get_deployment("fraud").spec.primary.version == 2  # the stored revision stays put
    with pytest.raises(NotFound, match="no alias 'nope'"):
        update_deployment("fraud", {"members": [{"model": "iris", "version": "@nope"}]})


def test_members_must_exist_and_be_active(iris: str) -> None:
    archive_model_version("iris", 4)
    with pytest.raises(Conflict, match=r"version 4 of 'iris' \(canary\) is archived"):
        create_deployment("fraud", _spec(1, 4))
    with pytest.raises(NotFound, match="has no version 7; it has versions 1 to 4"):
        create_deployment("fraud", _spec(7))
    with pytest.raises(NotFound, match="registered model 'wine' does not exist"):
        create_deployment("fraud", DeploymentSpec(members=(Member(model="wine", version=1),)))
    with pytest.raises(NotFound, match="deployment 'fraud' does not exist"):
        get_deployment("fraud")
    assert list_audit_log(target="deployment:fraud") == []


def test_reading_what_does_not_exist_says_how_to_make_it(iris: str) -> None:
    for call in (get_deployment, current_revision, deployment_history, rollback_deployment):
        with pytest.raises(NotFound, match="`mloop deploy create ghost --model NAME:VERSION`"):
            call("ghost")
    with pytest.raises(NotFound, match="does not exist"):
        update_deployment("ghost", _spec(1))
    with pytest.raises(InvalidInput, match="deployment name 'a/b' is not valid"):
        get_deployment("a/b")


def test_changing_a_deployment_needs_deploy_on_it(iris: str) -> None:
    viewer = Principal("scorer", "service", (RoleGrant("viewer", "global"),))
    other = Principal("bob", "user", (RoleGrant("deployer", "deployment:churn"),))
    mine = Principal("carol", "user", (RoleGrant("deployer", "deployment:fraud"),))
    model_deployer = Principal("dan", "user", (RoleGrant("deployer", "model:iris"),))
    for who in (viewer, other, model_deployer):
        with pytest.raises(PermissionDenied, match="may not deploy deployment:fraud"):
            create_deployment("fraud", _spec(1), actor=who)
    made = create_deployment("fraud", _spec(1), actor=mine)
    assert made.created_by == "carol"
    with pytest.raises(PermissionDenied, match="--deployment fraud"):
        rollback_deployment("fraud", actor=viewer)
    update_deployment("fraud", _spec(2), actor=mine)
    assert rollback_deployment("fraud", actor=mine).created_by == "carol"
    assert {e.actor for e in list_audit_log(target="deployment:fraud")} == {"carol"}


def test_concurrent_updates_never_lose_a_revision(iris: str, store: MetadataStore) -> None:
    create_deployment("fraud", _spec(1))
    writers, changes = 4, 5
    errors: list[BaseException] = []

    def writer(n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                for i in range(changes):
                    update_deployment(
                        "fraud", _spec(1, 2, weight=1 + n * changes + i), actor=f"w{n}"
                    )
            except BaseException as exc:  # reported below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=writer(n)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = deployment_history("fraud")
    assert [d.revision for d in history] == list(range(1, writers * changes + 2))
    weights = sorted(d.spec.canaries[0].weight for d in history[1:])
    assert weights == [float(w) for w in range(1, writers * changes + 1)]  # every change kept
    assert current_revision("fraud") == len(history)
    entries = list(reversed(list_audit_log(target="deployment:fraud", limit=1000)))
    assert [e.after["revision"] for e in entries] == [d.revision for d in history]
    for earlier, later in itertools.pairwise(entries):
        assert later.before["revision"] == earlier.after["revision"]
    assert verify_audit_log().ok


def test_concurrent_creates_of_one_name_make_one_deployment(iris: str) -> None:
    outcomes: list[str] = []

    def create(n: int) -> None:
        try:
            create_deployment("fraud", _spec(1 + n % 4), actor=f"w{n}")
            outcomes.append("made")
        except Conflict as exc:
            outcomes.append("conflict" if "already exists" in exc.message else exc.message)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["made"]
    assert [d.revision for d in deployment_history("fraud")] == [1]
    assert len(list_audit_log(target="deployment:fraud")) == 1


def _process_writer(db_uri: str, writer: int, changes: int) -> None:
    os.environ["MLOOP_DB_URI"] = db_uri
    os.environ["MLOOP_USER"] = f"writer-{writer}"
    for i in range(changes):
        update_deployment("fraud", _spec(1, 2, weight=1 + writer * changes + i))


def test_processes_updating_one_deployment_lose_nothing(sqlite_db: str) -> None:
    """Separate processes share nothing but the database file and its lock."""
    for digest in DIGESTS[:2]:
        register_model_version("iris", "/p", package_digest=digest)
    create_deployment("fraud", _spec(1))
    changes = 4
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_process_writer, args=(sqlite_db, n, changes)) for n in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    history = deployment_history("fraud")
    assert [d.revision for d in history] == list(range(1, 2 * changes + 2))
    assert sorted(d.spec.canaries[0].weight for d in history[1:]) == [
        float(w) for w in range(1, 2 * changes + 1)
    ]
    assert {d.created_by for d in history[1:]} == {"writer-0", "writer-1"}
    assert verify_audit_log().ok


def test_the_implicit_deployment_of_a_model_uri(iris: str) -> None:
    set_alias("iris", "champion", 3)
    by_number = implicit_deployment("models:/iris/1")
    assert (by_number.name, by_number.revision) == ("iris", 0)
    assert by_number.spec.members == (Member(model="iris", version=1),)
    assert by_number.spec.guards == Guards()
    assert implicit_deployment("models:/iris@champion").spec.primary.version == 3
    assert implicit_deployment("models:/iris/latest").spec.primary.version == 4
    archive_model_version("iris", 2)
    assert implicit_deployment("models:/iris/2").spec.primary.version == 2
    with pytest.raises(NotFound, match="deployment 'iris' does not exist"):
        get_deployment("iris")  # never stored
    with pytest.raises(InvalidInput, match="not a registered model URI"):
        implicit_deployment("runs:/abc/model")
    with pytest.raises(InvalidInput, match="names no version"):
        implicit_deployment("models:/iris")


def test_guards_and_ensembles_round_trip_through_the_store(iris: str) -> None:
    spec = DeploymentSpec(
        members=(
            Member(model="iris", version=1),
            Member(model="iris", version=2),
            Member(model="iris", version=3, role="shadow"),
        ),
        combine="vote",
        guards=Guards(
            auth="on",
            rate_limit_per_key=RateLimit(rate=5.5, burst=10),
            output="top_k",
            top_k=2,
            atypical="reject",
            review_threshold=0.6,
        ),
    )
    create_deployment("ensemble", spec)
    assert get_deployment("ensemble").spec == spec
    assert list_deployments()[0].spec == spec


def test_migration_0004_goes_down_and_up(store: MetadataStore) -> None:
    tables = {"deployments", "deployment_revisions"}
    assert tables <= set(inspect(store.engine).get_table_names())
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0003")
    assert not tables & set(inspect(store.engine).get_table_names())
    assert schema_revision(store.engine) == "0003"
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    assert schema_revision(store.engine) == head_revision()
    assert tables <= set(inspect(store.engine).get_table_names())
