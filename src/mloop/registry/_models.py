"""Registered models and their versions: registering, reading, resolving, describing,
tagging and archiving.

A version is registered in one transaction with its lineage edges (run → version, each
training dataset version → version) and its audit entry. Registering the same package
(the same manifest digest) under a model again returns the version that holds it, so a
retried upload never makes a second version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update

from mloop._ids import new_id, now_ms
from mloop._lineage import link_lineage, produced_by
from mloop.errors import Conflict, NotFound
from mloop.registry import _audit, _names
from mloop.registry._db import (
    ALIASES,
    DATASET_VERSIONS,
    DATASETS,
    LINEAGE,
    MODELS,
    RUN_INPUTS,
    RUNS,
    VERSIONS,
    Actor,
    actor_name,
    check,
    connect,
    write,
)
from mloop.registry._entities import ACTIVE, ARCHIVED, ModelVersion, RegisteredModel
from mloop.registry._roles import Resource
from mloop.store import MetadataStore

LINEAGE_KIND = "model_version"
TRAINING_CONTEXTS = ("", "train", "training")


def lineage_id(name: str, version: int) -> str:
    """How lineage edges name a model version: ``NAME/VERSION``."""
    return f"{name}/{version}"


# -- registered models ------------------------------------------------------------------------


def create_registered_model(
    name: str,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> RegisteredModel:
    """Create an empty registered model (registering a first version does this too)."""
    _names.model_name(name)
    description = _names.description(description)
    clean_tags = _names.tags(tags)
    check(actor, "write", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> RegisteredModel:
        if _model_row(conn, name) is not None:
            raise Conflict(f"registered model {name!r} already exists")
        _insert_model(conn, who, name, description, clean_tags)
        return _load_model(conn, name)

    with connect(store) as db:
        return write(db, work)


def _insert_model(
    conn: Connection, who: str, name: str, description: str | None, tags: dict[str, str]
) -> str:
    model_id, now = new_id(), now_ms()
    conn.execute(
        MODELS.insert(),
        {
            "model_id": model_id,
            "name": name,
            "description": description,
            "tags": tags,
            "creation_time": now,
            "last_update_time": now,
        },
    )
    _audit.append(
        conn,
        actor=who,
        action="model.create",
        target=f"model:{name}",
        before=None,
        after={"name": name, "description": description, "tags": tags},
    )
    return model_id


def get_registered_model(name: str, *, store: MetadataStore | None = None) -> RegisteredModel:
    _names.model_name(name)
    with connect(store) as db, db.read() as conn:
        return _load_model(conn, name)


def list_registered_models(*, store: MetadataStore | None = None) -> list[RegisteredModel]:
    """Every registered model, by name."""
    with connect(store) as db, db.read() as conn:
        names = conn.execute(select(MODELS.c.name).order_by(MODELS.c.name)).scalars().all()
        return [_load_model(conn, n) for n in names]


# -- versions ---------------------------------------------------------------------------------


def register_model_version(
    name: str,
    source: str,
    *,
    run_id: str | None = None,
    package_digest: str,
    dataset_versions: Sequence[Any] = (),
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> ModelVersion:
    """Register the package at ``source`` as the next version of ``name`` (created on
    first use) and link it to its run and training data.

    ``package_digest`` is the SHA-256 of the package's manifest file. ``dataset_versions``
    (``"name@3"`` or ``DatasetVersion`` objects) default to the dataset versions the run
    recorded as inputs with context ``training`` (or no context).
    """
    _names.model_name(name)
    _names.source_uri(source)
    _names.package_digest(package_digest)
    description = _names.description(description)
    clean_tags = _names.tags(tags)
    refs = [_names.dataset_ref(d) for d in dataset_versions]
    check(actor, "write", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> ModelVersion:
        if (
            run_id is not None
            and conn.execute(select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first() is None
        ):
            raise NotFound(
                f"run {run_id!r} does not exist; pass the id of a run in this store "
                "(`mloop runs list`) or leave run_id out"
            )
        datasets = [_dataset_version(conn, n, v) for n, v in refs]
        if not refs and run_id is not None:
            datasets = _training_inputs(conn, run_id)
        model = _model_row(conn, name)
        model_id = (
            _insert_model(conn, who, name, None, {}) if model is None else str(model.model_id)
        )
        same = conn.execute(
            select(VERSIONS.c.version).where(
                VERSIONS.c.model_id == model_id, VERSIONS.c.package_digest == package_digest
            )
        ).first()
        if same is not None:
            return load_version(conn, name, int(same.version))
        number = (
            conn.execute(
                select(func.max(VERSIONS.c.version)).where(VERSIONS.c.model_id == model_id)
            ).scalar()
            or 0
        ) + 1
        now = now_ms()
        record = {
            "version_id": new_id(),
            "model_id": model_id,
            "version": number,
            "source": source,
            "run_id": run_id,
            "package_digest": package_digest,
            "uploader": who,
            "status": ACTIVE,
            "description": description,
            "tags": clean_tags,
            "creation_time": now,
            "last_update_time": now,
        }
        conn.execute(VERSIONS.insert(), record)
        conn.execute(
            update(MODELS).where(MODELS.c.model_id == model_id).values(last_update_time=now)
        )
        _link(conn, lineage_id(name, number), run_id, datasets, now)
        _audit.append(
            conn,
            actor=who,
            action="version.create",
            target=f"model:{name}/{number}",
            before=None,
            after={
                "version": number,
                "source": source,
                "package_digest": package_digest,
                "run_id": run_id,
                "dataset_versions": datasets,
                "description": description,
                "tags": clean_tags,
            },
        )
        return load_version(conn, name, number)

    with connect(store) as db:
        return write(db, work)


def _dataset_version(conn: Connection, name: str, number: int | None) -> str:
    query = (
        select(func.max(DATASET_VERSIONS.c.version))
        if number is None
        else select(DATASET_VERSIONS.c.version).where(DATASET_VERSIONS.c.version == number)
    )
    found = conn.execute(
        query.select_from(DATASET_VERSIONS.join(DATASETS)).where(DATASETS.c.name == name)
    ).scalar()
    if found is None:
        ref = f"{name}@{'latest' if number is None else number}"
        raise NotFound(
            f"dataset version {ref} does not exist; `mloop data list {name}` shows its versions"
        )
    return f"{name}@{found}"


def _training_inputs(conn: Connection, run_id: str) -> list[str]:
    refs = conn.execute(
        select(RUN_INPUTS.c.ref)
        .where(
            RUN_INPUTS.c.run_id == run_id,
            RUN_INPUTS.c.kind == "dataset",
            RUN_INPUTS.c.context.in_(TRAINING_CONTEXTS),
        )
        .order_by(RUN_INPUTS.c.ref)
    ).scalars()
    found = []
    for ref in refs:
        name, sep, number = ref.rpartition("@")
        if sep and number.isdigit():
            exists = conn.execute(
                select(DATASET_VERSIONS.c.version)
                .select_from(DATASET_VERSIONS.join(DATASETS))
                .where(DATASETS.c.name == name, DATASET_VERSIONS.c.version == int(number))
            ).first()
            if exists is not None:
                found.append(ref)
    return found


def _link(
    conn: Connection,
    version_ref: str,
    run_id: str | None,
    datasets: list[str],
    now: int,
) -> None:
    trained_on = [("dataset", ref, "trained_on") for ref in datasets]
    link_lineage(conn, LINEAGE_KIND, version_ref, [*trained_on, *produced_by(run_id)], now)


def get_model_version(
    name: str, version: int | str, *, store: MetadataStore | None = None
) -> ModelVersion:
    _names.model_name(name)
    number = _names.version_number(version)
    with connect(store) as db, db.read() as conn:
        return load_version(conn, name, number)


def list_model_versions(
    name: str, *, include_archived: bool = True, store: MetadataStore | None = None
) -> list[ModelVersion]:
    """The versions of ``name``, oldest first."""
    _names.model_name(name)
    with connect(store) as db, db.read() as conn:
        model = require_model(conn, name)
        query = select(VERSIONS.c.version).where(VERSIONS.c.model_id == model.model_id)
        if not include_archived:
            query = query.where(VERSIONS.c.status == ACTIVE)
        numbers = conn.execute(query.order_by(VERSIONS.c.version)).scalars().all()
        return [load_version(conn, name, int(n)) for n in numbers]


def resolve(name: str, ref: str | int, *, store: MetadataStore | None = None) -> ModelVersion:
    """The version ``ref`` names: a number (``"3"``; archived versions too), an alias
    (``"@champion"``) or ``"latest"`` (the newest active version)."""
    _names.model_name(name)
    kind, value = _names.version_ref(ref)
    with connect(store) as db, db.read() as conn:
        model = require_model(conn, name)
        if kind == "number":
            assert isinstance(value, int)
            return load_version(conn, name, value)
        if kind == "latest":
            number = conn.execute(
                select(func.max(VERSIONS.c.version)).where(
                    VERSIONS.c.model_id == model.model_id, VERSIONS.c.status == ACTIVE
                )
            ).scalar()
            if number is None:
                raise NotFound(f"registered model {name!r} has no active version")
            return load_version(conn, name, int(number))
        number = conn.execute(
            select(VERSIONS.c.version)
            .select_from(ALIASES.join(VERSIONS, ALIASES.c.version_id == VERSIONS.c.version_id))
            .where(ALIASES.c.model_id == model.model_id, ALIASES.c.alias == value)
        ).scalar()
        if number is None:
            known = _aliases_of_model(conn, model.model_id)
            listed = ", ".join(f"@{a}" for a in sorted(known)) or "none"
            raise NotFound(
                f"registered model {name!r} has no alias {value!r} (its aliases: {listed}); "
                f"set one with `mloop models alias {name} {value} VERSION`"
            )
        return load_version(conn, name, int(number))


# -- descriptions, tags, archiving ------------------------------------------------------------


def set_description(
    name: str,
    description: str | None,
    *,
    version: int | str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> None:
    """Describe a registered model, or one version of it."""
    description = _names.description(description)
    _update(name, version, "description", lambda old: description, actor, store)


def set_tag(
    name: str,
    key: str,
    value: str,
    *,
    version: int | str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> None:
    """Set a tag on a registered model, or on one version of it."""
    key, value = _names.tag_key(key), _names.tag_value(value)
    _update(name, version, "tags", lambda old: {**old, key: value}, actor, store)


def delete_tag(
    name: str,
    key: str,
    *,
    version: int | str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> None:
    _names.tag_key(key)

    def without(old: dict[str, str]) -> dict[str, str]:
        if key not in old:
            raise NotFound(f"tag {key!r} is not set on {_target(name, version)}")
        return {k: v for k, v in old.items() if k != key}

    _update(name, version, "tags", without, actor, store)


def archive_model_version(
    name: str, version: int | str, *, actor: Actor = None, store: MetadataStore | None = None
) -> ModelVersion:
    """Archive a version: it stays loadable by number but can no longer take an alias.
    A version an alias points at must lose the alias first."""
    return _set_status(name, version, ARCHIVED, actor, store)


def restore_model_version(
    name: str, version: int | str, *, actor: Actor = None, store: MetadataStore | None = None
) -> ModelVersion:
    return _set_status(name, version, ACTIVE, actor, store)


def _set_status(
    name: str, version: int | str, status: str, actor: Actor, store: MetadataStore | None
) -> ModelVersion:
    _names.model_name(name)
    number = _names.version_number(version)
    check(actor, "write", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> ModelVersion:
        row = require_version(conn, name, number)
        if row.status == status:
            return load_version(conn, name, number)
        if status == ARCHIVED:
            held = sorted(
                conn.execute(
                    select(ALIASES.c.alias).where(ALIASES.c.version_id == row.version_id)
                ).scalars()
            )
            if held:
                aliases = ", ".join(f"@{a}" for a in held)
                raise Conflict(
                    f"version {number} of {name!r} is {aliases}; move or delete the alias "
                    f"first (`mloop models alias {name} {held[0]} --delete`)"
                )
        conn.execute(
            update(VERSIONS)
            .where(VERSIONS.c.version_id == row.version_id)
            .values(status=status, last_update_time=now_ms())
        )
        _audit.append(
            conn,
            actor=who,
            action="version.archive" if status == ARCHIVED else "version.restore",
            target=f"model:{name}/{number}",
            before={"status": row.status},
            after={"status": status},
        )
        return load_version(conn, name, number)

    with connect(store) as db:
        return write(db, work)


def _update(
    name: str,
    version: int | str | None,
    column: str,
    change: Any,
    actor: Actor,
    store: MetadataStore | None,
) -> None:
    _names.model_name(name)
    number = None if version is None else _names.version_number(version)
    check(actor, "write", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> None:
        if number is None:
            row = require_model(conn, name)
            table, where = MODELS, MODELS.c.model_id == row.model_id
        else:
            row = require_version(conn, name, number)
            table, where = VERSIONS, VERSIONS.c.version_id == row.version_id
        old = getattr(row, column)
        if column == "tags":
            old = dict(old or {})
        new = change(old)
        if new == old:
            return
        conn.execute(update(table).where(where).values({column: new, "last_update_time": now_ms()}))
        _audit.append(
            conn,
            actor=who,
            action=("model." if number is None else "version.") + "update",
            target=_target(name, number),
            before={column: old},
            after={column: new},
        )

    with connect(store) as db:
        write(db, work)


def _target(name: str, version: int | str | None) -> str:
    return f"model:{name}" if version is None else f"model:{name}/{version}"


# -- reading rows -----------------------------------------------------------------------------


def _model_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(MODELS).where(MODELS.c.name == name)).first()


def require_model(conn: Connection, name: str) -> Any:
    row = _model_row(conn, name)
    if row is None:
        raise NotFound(
            f"registered model {name!r} does not exist; `mloop models list` shows the "
            "registered ones"
        )
    return row


def require_version(conn: Connection, name: str, number: int) -> Any:
    model = require_model(conn, name)
    row = conn.execute(
        select(VERSIONS).where(VERSIONS.c.model_id == model.model_id, VERSIONS.c.version == number)
    ).first()
    if row is None:
        latest = conn.execute(
            select(func.max(VERSIONS.c.version)).where(VERSIONS.c.model_id == model.model_id)
        ).scalar()
        have = "no versions yet" if latest is None else f"versions 1 to {latest}"
        raise NotFound(f"registered model {name!r} has no version {number}; it has {have}")
    return row


def _aliases_of_model(conn: Connection, model_id: str) -> dict[str, int]:
    rows = conn.execute(
        select(ALIASES.c.alias, VERSIONS.c.version)
        .select_from(ALIASES.join(VERSIONS, ALIASES.c.version_id == VERSIONS.c.version_id))
        .where(ALIASES.c.model_id == model_id)
        .order_by(ALIASES.c.alias)
    )
    return {r.alias: int(r.version) for r in rows}


def _load_model(conn: Connection, name: str) -> RegisteredModel:
    row = require_model(conn, name)
    stats = conn.execute(
        select(func.max(VERSIONS.c.version), func.count(VERSIONS.c.version_id)).where(
            VERSIONS.c.model_id == row.model_id
        )
    ).one()
    return RegisteredModel(
        name=row.name,
        description=row.description,
        tags=dict(row.tags or {}),
        latest_version=None if stats[0] is None else int(stats[0]),
        num_versions=int(stats[1]),
        aliases=_aliases_of_model(conn, row.model_id),
        creation_time=row.creation_time,
        last_update_time=row.last_update_time,
    )


def load_version(conn: Connection, name: str, number: int) -> ModelVersion:
    """Version ``number`` of ``name`` as ``conn`` sees it, with its aliases and datasets."""
    row = require_version(conn, name, number)
    aliases = conn.execute(
        select(ALIASES.c.alias)
        .where(ALIASES.c.version_id == row.version_id)
        .order_by(ALIASES.c.alias)
    ).scalars()
    datasets = conn.execute(
        select(LINEAGE.c.src_id)
        .where(
            LINEAGE.c.dst_kind == LINEAGE_KIND,
            LINEAGE.c.dst_id == lineage_id(name, number),
            LINEAGE.c.relation == "trained_on",
        )
        .order_by(LINEAGE.c.src_id)
    ).scalars()
    return ModelVersion(
        name=name,
        version=int(row.version),
        source=row.source,
        package_digest=row.package_digest,
        run_id=row.run_id,
        uploader=row.uploader,
        status=row.status,
        description=row.description,
        tags=dict(row.tags or {}),
        aliases=tuple(aliases),
        dataset_versions=tuple(datasets),
        creation_time=row.creation_time,
        last_update_time=row.last_update_time,
    )
