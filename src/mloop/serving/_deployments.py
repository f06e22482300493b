"""Deployments in the metadata store: named, revisioned, audited.

A change never edits a revision: it appends revision ``n + 1`` and moves the deployment's
``current_revision`` to it, in one transaction with its audit-log entry (before and after
spec), under the registry lock (see :mod:`mloop.registry._db`). Concurrent writers are
therefore serialized: each sees the revision the one before it made, so no revision is
lost and the audit chain stays linear. The ``(name, revision)`` primary key is the
backstop. A caller that read a revision and wants its change refused if someone else
changed the deployment meanwhile passes ``expected_revision``.

Registry rules are checked at write time, inside that transaction: every member version
exists and is not archived. Aliases and ``latest`` in a spec are resolved to version
numbers when it is stored, so a revision always means the same models; moving
``@champion`` later changes no deployment until someone updates it.

Serving processes poll :func:`current_revision` (one primary-key read) and load the new
revision only when it moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update

from mloop._ids import now_ms
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.registry import _audit, _names
from mloop.registry._db import Actor, actor_name, check, connect, write
from mloop.registry._entities import ACTIVE
from mloop.registry._models import require_version, resolve
from mloop.registry._roles import Resource
from mloop.serving._spec import Deployment, DeploymentSpec, Member, member_ref, parse_spec
from mloop.store import MetadataStore
from mloop.store import schema as s

DEPLOYMENTS = cast(Table, s.Deployment.__table__)
REVISIONS = cast(Table, s.DeploymentRevision.__table__)
IMPLICIT_AUTHOR = "mloop serve"
SpecInput = DeploymentSpec | Mapping[str, Any]
"""A spec, or its raw mapping (as read from YAML/JSON) whose members may name aliases."""


def create_deployment(
    name: str,
    spec: SpecInput,
    *,
    reason: str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> Deployment:
    """Store a new deployment as revision 1; :class:`~mloop.errors.Conflict` if the name
    is taken (change it with :func:`update_deployment`)."""
    _names.deployment_name(name)
    check(actor, "deploy", Resource.deployment(name))
    who = actor_name(actor)
    reason = _reason(reason)
    with connect(store) as db:
        stored = _resolved(spec, db)

        def work(conn: Connection) -> Deployment:
            if _row(conn, name) is not None:
                raise Conflict(
                    f"deployment {name!r} already exists; change it with `mloop deploy "
                    f"update {name} …` (or update_deployment)"
                )
            _check_members(conn, stored)
            now = now_ms()
            conn.execute(
                DEPLOYMENTS.insert(),
                {
                    "name": name,
                    "current_revision": 1,
                    "created_by": who,
                    "creation_time": now,
                    "last_update_time": now,
                },
            )
            return _append(conn, name, 1, stored, who, reason, None, now, "deployment.create")

        return write(db, work)


def update_deployment(
    name: str,
    spec: SpecInput,
    *,
    reason: str | None = None,
    expected_revision: int | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> Deployment:
    """Make ``spec`` the deployment's next revision. A spec equal to the current one
    changes nothing and returns the current revision. With ``expected_revision``, refuse
    (:class:`~mloop.errors.Conflict`) if the deployment moved past it meanwhile."""
    _names.deployment_name(name)
    check(actor, "deploy", Resource.deployment(name))
    who = actor_name(actor)
    reason = _reason(reason)
    with connect(store) as db:
        stored = _resolved(spec, db)

        def work(conn: Connection) -> Deployment:
            current = _current(conn, name)
            if expected_revision is not None and current.revision != expected_revision:
                raise Conflict(
                    f"deployment {name!r} is at revision {current.revision}, not "
                    f"{expected_revision}: someone changed it meanwhile; look at `mloop "
                    f"deploy show {name}` and apply your change again"
                )
            if current.spec == stored:
                return current
            _check_members(conn, stored)
            return _advance(conn, current, stored, who, reason, "deployment.update")

        return write(db, work)


def rollback_deployment(
    name: str,
    *,
    to_revision: int | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> Deployment:
    """Make a new revision whose spec is that of ``to_revision`` (default: the one before
    the current), with reason ``"rollback to N"``. History is never rewritten, so a
    rollback can itself be rolled back."""
    _names.deployment_name(name)
    if to_revision is not None:
        to_revision = _revision_number(to_revision)
    check(actor, "deploy", Resource.deployment(name))
    who = actor_name(actor)

    def work(conn: Connection) -> Deployment:
        current = _current(conn, name)
        target = current.revision - 1 if to_revision is None else to_revision
        if target < 1:
            raise Conflict(
                f"deployment {name!r} has only revision 1; there is nothing before it to "
                "roll back to"
            )
        if target == current.revision:
            raise Conflict(
                f"deployment {name!r} is at revision {target} already; name an earlier one "
                f"(`mloop deploy history {name}` lists them)"
            )
        earlier = _revision(conn, name, target)
        if earlier.spec == current.spec:
            raise Conflict(
                f"revision {target} of {name!r} has the same spec as the current revision "
                f"{current.revision}; nothing would change"
            )
        _check_members(conn, earlier.spec)
        return _advance(
            conn, current, earlier.spec, who, f"rollback to {target}", "deployment.rollback"
        )

    with connect(store) as db:
        return write(db, work)


def get_deployment(
    name: str, *, revision: int | None = None, store: MetadataStore | None = None
) -> Deployment:
    """The current revision of ``name``, or revision ``revision``."""
    _names.deployment_name(name)
    number = None if revision is None else _revision_number(revision)
    with connect(store) as db, db.read() as conn:
        return _current(conn, name) if number is None else _revision(conn, name, number)


def current_revision(name: str, *, store: MetadataStore | None = None) -> int:
    """The revision ``name`` is at: one primary-key read, cheap enough to poll."""
    _names.deployment_name(name)
    with connect(store) as db, db.read() as conn:
        number = conn.execute(
            select(DEPLOYMENTS.c.current_revision).where(DEPLOYMENTS.c.name == name)
        ).scalar()
    if number is None:
        raise _missing(name)
    return int(number)


def list_deployments(*, store: MetadataStore | None = None) -> list[Deployment]:
    """Every deployment at its current revision, by name."""
    with connect(store) as db, db.read() as conn:
        rows = conn.execute(
            select(REVISIONS)
            .select_from(
                DEPLOYMENTS.join(
                    REVISIONS,
                    (REVISIONS.c.name == DEPLOYMENTS.c.name)
                    & (REVISIONS.c.revision == DEPLOYMENTS.c.current_revision),
                )
            )
            .order_by(DEPLOYMENTS.c.name)
        )
        return [_deployment(r) for r in rows]


def deployment_history(name: str, *, store: MetadataStore | None = None) -> list[Deployment]:
    """Every revision of ``name``, oldest first."""
    _names.deployment_name(name)
    with connect(store) as db, db.read() as conn:
        rows = conn.execute(
            select(REVISIONS).where(REVISIONS.c.name == name).order_by(REVISIONS.c.revision)
        ).all()
        if not rows:
            raise _missing(name)
        return [_deployment(r) for r in rows]


def implicit_deployment(model_uri: str, *, store: MetadataStore | None = None) -> Deployment:
    """What ``mloop serve models:/iris/1`` serves: a deployment named after the model
    (``iris``), revision 0, with that one version as primary and default guards. It is
    not stored; an alias (``models:/iris@champion``) is resolved now, and an archived
    version is allowed since it was named on purpose."""
    if not isinstance(model_uri, str) or not model_uri.startswith("models:/"):
        raise InvalidInput(
            f"{model_uri!r} is not a registered model URI; give models:/NAME/VERSION or "
            "models:/NAME@ALIAS, or the name of a deployment"
        )
    model, ref = member_ref(model_uri)
    with connect(store) as db:
        version = resolve(model, ref, store=db)
    spec = DeploymentSpec(members=(Member(model=model, version=version.version),))
    return Deployment(
        name=model, revision=0, spec=spec, created_time=now_ms(), created_by=IMPLICIT_AUTHOR
    )


# -- writing ----------------------------------------------------------------------------------


def _resolved(spec: SpecInput, db: MetadataStore) -> DeploymentSpec:
    """The spec with every version reference a number (and the preprocessing URI naming a
    version), resolved against the registry as it is now."""
    parsed = parse_spec(spec, resolve=lambda model, ref: resolve(model, ref, store=db).version)
    if parsed.preprocessing is None:
        return parsed
    model, ref = member_ref(parsed.preprocessing)
    number = resolve(model, ref, store=db).version
    return parsed.model_copy(update={"preprocessing": f"models:/{model}/{number}"})


def _check_members(conn: Connection, spec: DeploymentSpec) -> None:
    refs: list[tuple[str, int, str]] = [(m.model, m.version, m.role) for m in spec.members]
    if spec.preprocessing is not None:
        model, number = member_ref(spec.preprocessing)
        refs.append((model, int(number), "preprocessing"))
    for model, number, role in refs:
        row = require_version(conn, model, number)
        if row.status != ACTIVE:
            raise Conflict(
                f"version {number} of {model!r} ({role}) is archived and cannot be deployed; "
                f"restore it (`mloop models restore {model} {number}`) or pick an active "
                "version"
            )


def _advance(
    conn: Connection,
    current: Deployment,
    spec: DeploymentSpec,
    who: str,
    reason: str | None,
    action: str,
) -> Deployment:
    revision = current.revision + 1
    now = now_ms()
    moved = conn.execute(
        update(DEPLOYMENTS)
        .where(
            DEPLOYMENTS.c.name == current.name,
            DEPLOYMENTS.c.current_revision == current.revision,
        )
        .values(current_revision=revision, last_update_time=now)
    )
    if moved.rowcount != 1:  # only without the registry lock, e.g. a foreign writer
        raise Conflict(
            f"deployment {current.name!r} changed while this change was written; try again"
        )
    return _append(conn, current.name, revision, spec, who, reason, current, now, action)


def _append(
    conn: Connection,
    name: str,
    revision: int,
    spec: DeploymentSpec,
    who: str,
    reason: str | None,
    before: Deployment | None,
    now: int,
    action: str,
) -> Deployment:
    conn.execute(
        REVISIONS.insert(),
        {
            "name": name,
            "revision": revision,
            "spec": spec.to_json(),
            "created_time": now,
            "created_by": who,
            "reason": reason,
        },
    )
    _audit.append(
        conn,
        actor=who,
        action=action,
        target=f"deployment:{name}",
        before=None if before is None else _audited(before.revision, before.spec),
        after={**_audited(revision, spec), "reason": reason},
    )
    return Deployment(
        name=name, revision=revision, spec=spec, created_time=now, created_by=who, reason=reason
    )


def _audited(revision: int, spec: DeploymentSpec) -> dict[str, Any]:
    return {"revision": revision, "spec": spec.to_json()}


# -- reading ----------------------------------------------------------------------------------


def _row(conn: Connection, name: str) -> Any:
    return conn.execute(select(DEPLOYMENTS).where(DEPLOYMENTS.c.name == name)).first()


def _current(conn: Connection, name: str) -> Deployment:
    row = _row(conn, name)
    if row is None:
        raise _missing(name)
    return _revision(conn, name, int(row.current_revision))


def _revision(conn: Connection, name: str, number: int) -> Deployment:
    row = conn.execute(
        select(REVISIONS).where(REVISIONS.c.name == name, REVISIONS.c.revision == number)
    ).first()
    if row is None:
        head = conn.execute(
            select(DEPLOYMENTS.c.current_revision).where(DEPLOYMENTS.c.name == name)
        ).scalar()
        if head is None:
            raise _missing(name)
        latest = conn.execute(
            select(REVISIONS.c.revision)
            .where(REVISIONS.c.name == name)
            .order_by(REVISIONS.c.revision.desc())
            .limit(1)
        ).scalar()
        raise NotFound(f"deployment {name!r} has no revision {number}; it has 1 to {latest}")
    return _deployment(row)


def _deployment(row: Any) -> Deployment:
    return Deployment(
        name=row.name,
        revision=int(row.revision),
        spec=DeploymentSpec.from_json(row.spec),
        created_time=int(row.created_time),
        created_by=row.created_by,
        reason=row.reason,
    )


def _missing(name: str) -> NotFound:
    return NotFound(
        f"deployment {name!r} does not exist; `mloop deploy list` shows the deployments, "
        f"`mloop deploy create {name} --model NAME:VERSION` makes one"
    )


def _revision_number(value: Any) -> int:
    if isinstance(value, str) and _names.is_number(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"revision {value!r} is not valid; revisions are numbered 1, 2, …")
    return value


def _reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidInput("a reason must be a string of at most 2,000 characters")
    return reason


__all__ = [
    "create_deployment",
    "current_revision",
    "deployment_history",
    "get_deployment",
    "implicit_deployment",
    "list_deployments",
    "rollback_deployment",
    "update_deployment",
]
