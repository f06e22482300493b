"""Aliases and approvals: moving ``champion`` (or any alias) under the model's policy.

A move is checked in two halves. The package half (signature, clean scan, digests) needs
the package's bytes, so it runs first, outside any transaction. The registry half
(version still active, enough approvals from users who hold ``approver`` now, a passing
evaluation) runs inside the transaction that moves the alias, under the registry lock, so
nothing can change between the check and the move. Every unmet requirement is listed in
one :class:`~mloop.errors.PolicyViolation`, so one attempt tells the whole story.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select, update

from mloop._ids import new_id, now_ms
from mloop.errors import Conflict, MloopError, NotFound, PermissionDenied, PolicyViolation
from mloop.registry import _audit, _names
from mloop.registry._db import (
    ALIASES,
    APPROVALS,
    MODELS,
    USERS,
    VERSIONS,
    Actor,
    actor_name,
    check,
    connect,
    write,
)
from mloop.registry._entities import Approval, ModelVersion, Principal, TrustPolicy
from mloop.registry._identity import principal_in
from mloop.registry._models import load_version, require_model, require_version
from mloop.registry._policies import policy_in
from mloop.registry._roles import Resource, allowed_by
from mloop.store import MetadataStore

MANIFEST_FILE = "mloop-model.json"
_POLICY_RACE_RETRIES = 3


# -- approvals --------------------------------------------------------------------------------


def approve(
    name: str,
    version: int | str,
    *,
    alias: str,
    comment: str | None = None,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> Approval:
    """Approve moving ``alias`` of ``name`` to ``version``.

    The approver is the acting principal, or the configured user, who must be a registered
    user holding ``approver`` (or ``admin``) on the model. Approving twice changes nothing.
    """
    _names.model_name(name)
    number = _names.version_number(version)
    _names.alias_name(alias)
    comment = _names.description(comment)

    def work(conn: Connection) -> Approval:
        approver = _approver(conn, actor)
        resource = Resource.model(name)
        if not allowed_by(approver.roles, "approve", resource):
            raise PermissionDenied(
                f"user {approver.name!r} may not approve versions of {name!r}: that needs the "
                f"approver or admin role on model:{name} or globally; an admin can grant it "
                f"with `mloop users grant {approver.name} approver --model {name}`"
            )
        row = require_version(conn, name, number)
        if row.status != "active":
            raise Conflict(
                f"version {number} of {name!r} is archived and cannot take an alias; "
                "restore it first"
            )
        policy = policy_in(conn, name) or TrustPolicy()
        if policy.approver_not_uploader and approver.name == row.uploader:
            raise PolicyViolation(
                f"{approver.name!r} registered version {number} of {name!r}; its policy needs "
                "an approver who is not the uploader",
                details={"problems": ["approver is the uploader"]},
            )
        user_id = conn.execute(
            select(USERS.c.user_id).where(USERS.c.name == approver.name)
        ).scalar_one()
        existing = conn.execute(
            select(APPROVALS).where(
                APPROVALS.c.version_id == row.version_id,
                APPROVALS.c.alias == alias,
                APPROVALS.c.user_id == user_id,
            )
        ).first()
        if existing is not None:
            return Approval(
                name, number, alias, approver.name, existing.comment, existing.creation_time
            )
        now = now_ms()
        conn.execute(
            APPROVALS.insert(),
            {
                "approval_id": new_id(),
                "version_id": row.version_id,
                "alias": alias,
                "user_id": user_id,
                "comment": comment,
                "creation_time": now,
            },
        )
        _audit.append(
            conn,
            actor=approver.name,
            action="approval.create",
            target=f"model:{name}/{number}",
            before=None,
            after={"alias": alias, "approver": approver.name, "comment": comment},
        )
        return Approval(name, number, alias, approver.name, comment, now)

    with connect(store) as db:
        return write(db, work)


def _approver(conn: Connection, actor: Actor) -> Principal:
    """The acting principal, its roles read afresh, so an approval reflects the present."""
    name = actor_name(actor)
    return principal_in(conn, name)


def list_approvals(
    name: str,
    version: int | str | None = None,
    *,
    alias: str | None = None,
    store: MetadataStore | None = None,
) -> list[Approval]:
    """Approvals given for ``name`` (one version, one alias), oldest first."""
    _names.model_name(name)
    number = None if version is None else _names.version_number(version)
    with connect(store) as db, db.read() as conn:
        model = require_model(conn, name)
        query = (
            select(APPROVALS, VERSIONS.c.version, USERS.c.name.label("approver"))
            .select_from(APPROVALS.join(VERSIONS).join(USERS))
            .where(VERSIONS.c.model_id == model.model_id)
            .order_by(APPROVALS.c.creation_time, APPROVALS.c.approval_id)
        )
        if number is not None:
            require_version(conn, name, number)
            query = query.where(VERSIONS.c.version == number)
        if alias is not None:
            query = query.where(APPROVALS.c.alias == _names.alias_name(alias))
        return [
            Approval(name, int(r.version), r.alias, r.approver, r.comment, r.creation_time)
            for r in conn.execute(query)
        ]


# -- aliases ----------------------------------------------------------------------------------


def set_alias(
    name: str,
    alias: str,
    version: int | str,
    *,
    actor: Actor = None,
    store: MetadataStore | None = None,
) -> ModelVersion:
    """Point ``alias`` of ``name`` at ``version``, atomically, if the policy allows it.

    Raises :class:`~mloop.errors.PolicyViolation` listing every unmet requirement, and
    :class:`~mloop.errors.Conflict` for an archived version. Pointing an alias where it
    already points changes nothing and records nothing.
    """
    _names.model_name(name)
    _names.alias_name(alias)
    number = _names.version_number(version)
    check(actor, "deploy", Resource.model(name))
    who = actor_name(actor)
    with connect(store) as db:
        for _ in range(_POLICY_RACE_RETRIES):
            prepared = prepare_alias_move(name, alias, number, store=db)

            def work(conn: Connection, prepared: PreparedMove = prepared) -> ModelVersion | None:
                return prepared.apply(conn, who)  # None: the policy changed; check again

            moved = write(db, work)
            if moved is not None:
                return moved
    raise Conflict(f"the trust policy of {name!r} kept changing during the move; try again")


@dataclass(frozen=True)
class PreparedMove:
    """The package half of moving an alias, checked; :meth:`apply` does the registry half
    and the move inside a caller's write transaction (with whatever else it writes)."""

    name: str
    alias: str
    number: int
    policy: TrustPolicy
    package: list[str]

    def apply(self, conn: Connection, who: str) -> ModelVersion | None:
        """Inside a write transaction holding the registry lock: move the alias (raising
        :class:`PolicyViolation` or :class:`Conflict` as :func:`set_alias` does), or None
        if the policy changed since it was prepared (prepare again)."""
        if (policy_in(conn, self.name) or TrustPolicy()) != self.policy:
            return None
        return _move(conn, who, self.name, self.alias, self.number, self.policy, self.package)


def prepare_alias_move(
    name: str, alias: str, version: int | str, *, store: MetadataStore | None = None
) -> PreparedMove:
    """Check the package half of pointing ``alias`` at ``version`` (outside any
    transaction: it reads the package's bytes); :class:`Conflict` for an archived version."""
    _names.model_name(name)
    _names.alias_name(alias)
    number = _names.version_number(version)
    with connect(store) as db, db.read() as conn:
        target = load_version(conn, name, number)
        policy = policy_in(conn, name) or TrustPolicy()
    _refuse_archived(target, alias)
    return PreparedMove(name, alias, number, policy, package_problems(target, policy))


def _refuse_archived(version: ModelVersion, alias: str) -> None:
    if version.archived:
        raise Conflict(
            f"version {version.version} of {version.name!r} is archived and cannot take "
            f"alias {alias!r}; restore it (mloop.registry.restore_model_version) or pick an "
            "active version"
        )


def _move(
    conn: Connection,
    who: str,
    name: str,
    alias: str,
    number: int,
    policy: TrustPolicy,
    package: list[str],
) -> ModelVersion:
    target = load_version(conn, name, number)
    _refuse_archived(target, alias)
    model_id = require_model(conn, name).model_id
    version_id = require_version(conn, name, number).version_id
    current = conn.execute(
        select(ALIASES.c.version_id, VERSIONS.c.version)
        .select_from(ALIASES.join(VERSIONS, ALIASES.c.version_id == VERSIONS.c.version_id))
        .where(ALIASES.c.model_id == model_id, ALIASES.c.alias == alias)
    ).first()
    if current is not None and current.version_id == version_id:
        return target
    problems = package + registry_problems(conn, target, alias, policy)
    if problems:
        raise PolicyViolation(
            f"cannot point {name}@{alias} at version {number}: "
            + "; ".join(problems)
            + f" (`mloop models policy {name}` shows the policy)",
            details={"problems": problems, "model": name, "alias": alias, "version": number},
        )
    now = now_ms()
    if current is None:
        conn.execute(
            ALIASES.insert(),
            {
                "model_id": model_id,
                "alias": alias,
                "version_id": version_id,
                "updated_by": who,
                "last_update_time": now,
            },
        )
    else:
        conn.execute(
            update(ALIASES)
            .where(ALIASES.c.model_id == model_id, ALIASES.c.alias == alias)
            .values(version_id=version_id, updated_by=who, last_update_time=now)
        )
    conn.execute(update(MODELS).where(MODELS.c.model_id == model_id).values(last_update_time=now))
    _audit.append(
        conn,
        actor=who,
        action="alias.set",
        target=f"model:{name}@{alias}",
        before=None if current is None else {"version": int(current.version)},
        after={"version": number},
    )
    return load_version(conn, name, number)


def delete_alias(
    name: str, alias: str, *, actor: Actor = None, store: MetadataStore | None = None
) -> None:
    """Remove ``alias`` from ``name`` (no policy applies to taking an alias away)."""
    _names.model_name(name)
    _names.alias_name(alias)
    check(actor, "deploy", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> None:
        model_id = require_model(conn, name).model_id
        current = conn.execute(
            select(VERSIONS.c.version)
            .select_from(ALIASES.join(VERSIONS, ALIASES.c.version_id == VERSIONS.c.version_id))
            .where(ALIASES.c.model_id == model_id, ALIASES.c.alias == alias)
        ).first()
        if current is None:
            raise NotFound(f"registered model {name!r} has no alias {alias!r}")
        conn.execute(
            ALIASES.delete().where(ALIASES.c.model_id == model_id, ALIASES.c.alias == alias)
        )
        _audit.append(
            conn,
            actor=who,
            action="alias.delete",
            target=f"model:{name}@{alias}",
            before={"version": int(current.version)},
            after=None,
        )

    with connect(store) as db:
        write(db, work)


# -- the checks -------------------------------------------------------------------------------


def promotion_blockers(
    name: str, alias: str, version: int | str, *, store: MetadataStore | None = None
) -> list[str]:
    """Why ``alias`` of ``name`` may not point at ``version`` now; empty when it may."""
    _names.model_name(name)
    _names.alias_name(alias)
    number = _names.version_number(version)
    with connect(store) as db:
        with db.read() as conn:
            target = load_version(conn, name, number)
            policy = policy_in(conn, name) or TrustPolicy()
        if target.archived:
            return [f"version {number} is archived"]
        package = package_problems(target, policy)
        with db.read() as conn:
            return package + registry_problems(conn, target, alias, policy)


def registry_problems(
    conn: Connection, target: ModelVersion, alias: str, policy: TrustPolicy
) -> list[str]:
    """Unmet requirements the registry itself can judge: approvals and evaluation."""
    problems: list[str] = []
    needed = policy.approvals_needed
    if needed:
        counted = _counted_approvers(conn, target, alias, policy)
        if len(counted) < needed:
            who = "approvers" + (
                f" other than the uploader {target.uploader!r}"
                if policy.approver_not_uploader
                else ""
            )
            given = ", ".join(counted) if counted else "none"
            problems.append(
                f"approvals: {needed} needed from {who} for @{alias}, {len(counted)} given "
                f"({given}); approve with `mloop models approve {target.name} "
                f"{target.version} --alias {alias}`"
            )
    problems += _evaluation_problems(conn, target, alias, policy)
    return problems


def _evaluation_problems(
    conn: Connection, target: ModelVersion, alias: str, policy: TrustPolicy
) -> list[str]:
    """A missing or refused blessing, when the policy's ``require_evaluation`` or the
    model's blessing requirement (``mloop.evaluation.require_blessing``) covers ``alias``."""
    try:
        evaluation = importlib.import_module("mloop.evaluation._blessings")
    except ImportError as exc:  # pragma: no cover - evaluation ships with mloop
        if not policy.require_evaluation:
            return []
        return [f"evaluation: cannot be checked, this mloop lacks evaluation support ({exc})"]
    problems: list[str] = evaluation.blessing_problems(
        conn, target.name, target.version, alias, required=policy.require_evaluation
    )
    return problems


def _counted_approvers(
    conn: Connection, target: ModelVersion, alias: str, policy: TrustPolicy
) -> list[str]:
    """Approvers whose approval counts now: enabled, still holding ``approve`` on the
    model, and not the uploader when the policy says so."""
    names = conn.execute(
        select(USERS.c.name)
        .select_from(APPROVALS.join(VERSIONS).join(USERS))
        .join(MODELS, VERSIONS.c.model_id == MODELS.c.model_id)
        .where(
            MODELS.c.name == target.name,
            VERSIONS.c.version == target.version,
            APPROVALS.c.alias == alias,
            USERS.c.disabled.is_(False),
        )
        .order_by(USERS.c.name)
    ).scalars()
    resource = Resource.model(target.name)
    counted = []
    for approver in names:
        if policy.approver_not_uploader and approver == target.uploader:
            continue
        if allowed_by(principal_in(conn, approver).roles, "approve", resource):
            counted.append(approver)
    return counted


def package_problems(version: ModelVersion, policy: TrustPolicy) -> list[str]:
    """Unmet requirements that need the package: fetched only when the policy asks for a
    signature or a clean scan. The package must also still be the registered one."""
    if not policy.checks_package:
        return []
    try:
        models = importlib.import_module("mloop.models")
        trust = importlib.import_module("mloop.models._trust")
        resolve_package, verify_package = models.resolve_package, models.verify_package
        promotion_problems = trust.promotion_problems
    except (ImportError, AttributeError) as exc:
        return [f"package: cannot be checked, this mloop lacks package support ({exc})"]
    try:
        package_dir = Path(resolve_package(version.source))
    except MloopError as exc:
        return [f"package: cannot fetch {version.source}: {exc.message}"]
    problems = _digest_problems(package_dir, version)
    try:
        manifest = verify_package(package_dir)
    except MloopError as exc:
        problems.append(f"package: {exc.message}")
        manifest = None  # the signature check then reads the files itself
    # Every file was just hashed against the manifest: the signature is checked against
    # those digests rather than by hashing the package a second time.
    return problems + list(promotion_problems(package_dir, policy, verified_manifest=manifest))


def _digest_problems(package_dir: Path, version: ModelVersion) -> list[str]:
    manifest = package_dir / MANIFEST_FILE
    if not manifest.is_file():
        return [f"package: {version.source} has no {MANIFEST_FILE}"]
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    if digest != version.package_digest:
        return [
            f"package: the manifest at {version.source} has digest {digest[:12]}…, not the "
            f"registered {version.package_digest[:12]}…: the package was replaced"
        ]
    return []
