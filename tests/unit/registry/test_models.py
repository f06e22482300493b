"""Registered models and versions: numbering, lineage, resolving, descriptions, tags,
archiving — on SQLite and PostgreSQL."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlalchemy import select
from tests.fixtures.registry import DIGESTS

import mloop
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.registry import (
    archive_model_version,
    create_registered_model,
    delete_tag,
    get_model_version,
    get_registered_model,
    list_audit_log,
    list_model_versions,
    list_registered_models,
    register_model_version,
    resolve,
    restore_model_version,
    set_alias,
    set_description,
    set_tag,
)
from mloop.store import MetadataStore
from mloop.store import schema as s


def test_versions_are_numbered_per_model_and_the_model_is_created_on_first_use(db: str) -> None:
    first = register_model_version("churn", "runs:/r1/model", package_digest=DIGESTS[0])
    second = register_model_version("churn", "runs:/r2/model", package_digest=DIGESTS[1])
    other = register_model_version("fraud", "/models/fraud", package_digest=DIGESTS[2])
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.uri == "models:/churn/1"
    assert (first.uploader, first.status, first.source) == ("ada", "active", "runs:/r1/model")
    model = get_registered_model("churn")
    assert (model.latest_version, model.num_versions, model.aliases) == (2, 2, {})
    assert [m.name for m in list_registered_models()] == ["churn", "fraud"]
    assert [v.version for v in list_model_versions("churn")] == [1, 2]
    actions = [(e.action, e.target) for e in reversed(list_audit_log())]
    assert actions == [
        ("model.create", "model:churn"),
        ("version.create", "model:churn/1"),
        ("version.create", "model:churn/2"),
        ("model.create", "model:fraud"),
        ("version.create", "model:fraud/1"),
    ]


def test_registering_the_same_package_again_returns_its_version(db: str) -> None:
    first = register_model_version("churn", "runs:/r1/model", package_digest=DIGESTS[0])
    again = register_model_version("churn", "runs:/r1/model", package_digest=DIGESTS[0])
    assert again == first
    assert len(list_model_versions("churn")) == 1
    assert len(list_audit_log(action="version.create")) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad/name"}, "model name"),
        ({"name": "x@y"}, "model name"),
        ({"package_digest": "abc"}, "package digest"),
        ({"package_digest": "A" * 64}, "package digest"),
        ({"source": ""}, "model source"),
        ({"source": "models:/other/1"}, "points into the registry"),
        ({"dataset_versions": ["iris"]}, "NAME@VERSION"),
        ({"tags": {"k": 1}}, "tag value"),
    ],
)
def test_bad_registrations_say_what_is_wrong(
    sqlite_db: str, kwargs: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {
        "name": "churn",
        "source": "runs:/r/model",
        "package_digest": DIGESTS[0],
        **kwargs,
    }
    with pytest.raises(InvalidInput, match=message):
        register_model_version(**call)  # type: ignore[arg-type]
    assert list_audit_log() == []


def test_unknown_run_or_dataset_version_is_refused_and_nothing_is_written(db: str) -> None:
    with pytest.raises(NotFound, match="run 'nope' does not exist"):
        register_model_version("churn", "/p", package_digest=DIGESTS[0], run_id="nope")
    with pytest.raises(NotFound, match="dataset version iris@3 does not exist"):
        register_model_version(
            "churn", "/p", package_digest=DIGESTS[0], dataset_versions=["iris@3"]
        )
    assert list_registered_models() == []
    assert list_audit_log() == []


def _edges(store: MetadataStore) -> set[tuple[str, str, str, str, str]]:
    table = s.LineageEdge.__table__
    with store.read() as conn:
        rows = conn.execute(
            select(
                table.c.src_kind, table.c.src_id, table.c.dst_kind, table.c.dst_id, table.c.relation
            ).where(table.c.dst_kind == "model_version")
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


def test_a_version_is_linked_to_its_run_and_training_data(db: str, store: MetadataStore) -> None:
    train = mloop.data.register("iris", pa.table({"x": [1.0, 2.0, 3.0]}))
    holdout = mloop.data.register("holdout", pa.table({"x": [4.0, 5.0]}))
    with mloop.start_run() as run:
        mloop.log_input(train, context="training")
        mloop.log_input(holdout, context="evaluation")
        run_id = run.info.run_id
    derived = register_model_version("churn", "runs:/x/m", package_digest=DIGESTS[0], run_id=run_id)
    assert derived.run_id == run_id
    assert derived.dataset_versions == ("iris@1",)  # from the run's training inputs only
    explicit = register_model_version(
        "churn",
        "runs:/x/m2",
        package_digest=DIGESTS[1],
        run_id=run_id,
        dataset_versions=[holdout, "iris@latest"],
    )
    assert explicit.dataset_versions == ("holdout@1", "iris@1")
    assert _edges(store) == {
        ("run", run_id, "model_version", "churn/1", "produced"),
        ("dataset", "iris@1", "model_version", "churn/1", "trained_on"),
        ("run", run_id, "model_version", "churn/2", "produced"),
        ("dataset", "iris@1", "model_version", "churn/2", "trained_on"),
        ("dataset", "holdout@1", "model_version", "churn/2", "trained_on"),
    }
    assert get_model_version("churn", 2).dataset_versions == ("holdout@1", "iris@1")


def test_resolve_by_number_alias_and_latest(db: str) -> None:
    for digest in DIGESTS[:3]:
        register_model_version("churn", "/p", package_digest=digest)
    set_alias("churn", "champion", 2)
    assert resolve("churn", "3").version == 3
    assert resolve("churn", 1).version == 1
    assert resolve("churn", "@champion").version == 2
    assert resolve("churn", "champion").version == 2
    assert resolve("churn", "latest").version == 3
    archive_model_version("churn", 3)
    assert resolve("churn", "latest").version == 2  # the newest ACTIVE version
    assert resolve("churn", "3").archived  # pinned numbers still resolve
    with pytest.raises(NotFound, match=r"no alias 'challenger' \(its aliases: @champion\)"):
        resolve("churn", "@challenger")
    with pytest.raises(NotFound, match="has no version 9; it has versions 1 to 3"):
        resolve("churn", "9")
    with pytest.raises(NotFound, match="does not exist"):
        resolve("nope", "1")
    for bad in ("@", "1.5", "-1", "@3", "two words", 0):
        with pytest.raises(InvalidInput):
            resolve("churn", bad)


def test_descriptions_and_tags_are_audited_with_before_and_after(db: str) -> None:
    create_registered_model("churn", description="first", tags={"team": "growth"})
    register_model_version("churn", "/p", package_digest=DIGESTS[0], description="v1")
    set_description("churn", "predicts churn")
    set_tag("churn", "owner", "ada")
    set_tag("churn", "stage", "beta", version=1)
    set_description("churn", "better", version=1)
    delete_tag("churn", "team")
    set_tag("churn", "owner", "ada")  # unchanged: nothing recorded
    model = get_registered_model("churn")
    assert (model.description, model.tags) == ("predicts churn", {"owner": "ada"})
    version = get_model_version("churn", 1)
    assert (version.description, version.tags) == ("better", {"stage": "beta"})
    updates = [
        (e.target, e.before, e.after) for e in reversed(list_audit_log()) if "update" in e.action
    ]
    assert updates == [
        ("model:churn", {"description": "first"}, {"description": "predicts churn"}),
        ("model:churn", {"tags": {"team": "growth"}}, {"tags": {"owner": "ada", "team": "growth"}}),
        ("model:churn/1", {"tags": {}}, {"tags": {"stage": "beta"}}),
        ("model:churn/1", {"description": "v1"}, {"description": "better"}),
        ("model:churn", {"tags": {"owner": "ada", "team": "growth"}}, {"tags": {"owner": "ada"}}),
    ]
    with pytest.raises(NotFound, match="tag 'nope' is not set on model:churn/1"):
        delete_tag("churn", "nope", version=1)
    with pytest.raises(Conflict, match="already exists"):
        create_registered_model("churn")


def test_archived_versions_cannot_take_aliases_and_aliased_ones_cannot_be_archived(
    db: str,
) -> None:
    register_model_version("churn", "/p", package_digest=DIGESTS[0])
    register_model_version("churn", "/p", package_digest=DIGESTS[1])
    set_alias("churn", "champion", 1)
    with pytest.raises(Conflict, match="is @champion; move or delete the alias first"):
        archive_model_version("churn", 1)
    archived = archive_model_version("churn", 2)
    assert archived.archived
    with pytest.raises(Conflict, match="archived and cannot take alias 'champion'"):
        set_alias("churn", "champion", 2)
    assert resolve("churn", "@champion").version == 1
    assert [v.version for v in list_model_versions("churn", include_archived=False)] == [1]
    restored = restore_model_version("churn", 2)
    assert not restored.archived
    assert set_alias("churn", "champion", 2).aliases == ("champion",)
    statuses = [(e.action, e.after) for e in reversed(list_audit_log()) if "version." in e.action]
    assert statuses[-2:] == [
        ("version.archive", {"status": "archived"}),
        ("version.restore", {"status": "active"}),
    ]
