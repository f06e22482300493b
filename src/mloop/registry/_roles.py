"""Who may do what: the role → action table and :func:`authorize`.

=========  =====  =====  =======  ======  =====  =======
role       read   write  approve  deploy  admin  predict
=========  =====  =====  =======  ======  =====  =======
viewer     yes                                   yes
editor     yes    yes                            yes
approver   yes           yes                     yes
deployer   yes                    yes            yes
admin      yes    yes    yes      yes     yes    yes
=========  =====  =====  =======  ======  =====  =======

``read``: see experiments, runs, models, versions, deployments, the audit log. ``write``:
create and change runs, register model versions, descriptions, tags, archive.
``approve``: approve a version for an alias. ``deploy``: move or delete aliases, create,
change and roll back deployments. ``admin``: all of these plus trust policies and, with a
global binding, users, roles and other users' API keys. ``predict``: send requests to an
inference server's deployment.

Every role holds ``predict`` because calling a deployed model reveals no more than
``read`` already does (whoever may read a version may load it and predict locally), so
withholding it would protect nothing; what limits prediction is *where* a role is held. A
service key granted ``viewer --deployment fraud`` may predict on that deployment and see
its record, and nothing else in the registry.

A role is held within a scope: ``global`` covers everything, ``experiment:<id or name>``
that experiment and its runs, ``model:<name>`` that registered model and its versions,
``deployment:<name>`` that deployment (its record, changes to it, predictions from it).
The table is data, not code paths, so it is tested cell by cell and documented once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mloop.errors import InvalidInput, PermissionDenied
from mloop.registry import _names
from mloop.registry._entities import Principal, RoleGrant

ACTIONS = ("read", "write", "approve", "deploy", "admin", "predict")
ROLE_ACTIONS: Mapping[str, frozenset[str]] = {
    "viewer": frozenset({"read", "predict"}),
    "editor": frozenset({"read", "write", "predict"}),
    "approver": frozenset({"read", "approve", "predict"}),
    "deployer": frozenset({"read", "deploy", "predict"}),
    "admin": frozenset(ACTIONS),
}


@dataclass(frozen=True)
class Resource:
    """What an action touches: everything (``global``), one experiment (known by its id
    and, when given, its name: a role scoped to either applies), one registered model, or
    one deployment."""

    kind: str
    identifiers: tuple[str, ...] = ()

    @classmethod
    def model(cls, name: str) -> Resource:
        return cls("model", (name,))

    @classmethod
    def deployment(cls, name: str) -> Resource:
        return cls("deployment", (name,))

    @classmethod
    def experiment(cls, experiment_id: str, name: str | None = None) -> Resource:
        return cls("experiment", (experiment_id,) if name is None else (experiment_id, name))

    @classmethod
    def parse(cls, text: str) -> Resource:
        """``global``, ``model:NAME``, ``experiment:ID_OR_NAME`` or ``deployment:NAME``."""
        scope = _names.scope(text)
        if scope == _names.GLOBAL_SCOPE:
            return GLOBAL
        kind, _, ident = scope.partition(":")
        return cls(kind, (ident,))

    def __str__(self) -> str:
        return self.kind if not self.identifiers else f"{self.kind}:{self.identifiers[0]}"


GLOBAL = Resource("global")


def grants(role: str, scope: str, action: str, resource: Resource) -> bool:
    """True when holding ``role`` within ``scope`` allows ``action`` on ``resource``."""
    if action not in ROLE_ACTIONS.get(role, ()):
        return False
    if scope == _names.GLOBAL_SCOPE:
        return True
    kind, _, ident = scope.partition(":")
    return kind == resource.kind and ident in resource.identifiers


def allowed_by(roles: Iterable[RoleGrant], action: str, resource: Resource) -> bool:
    return any(grants(r.role, r.scope, action, resource) for r in roles)


def allowed(principal: Principal, action: str, resource: Resource | str = GLOBAL) -> bool:
    """Like :func:`authorize`, as a boolean (to filter listings)."""
    return allowed_by(principal.roles, _action(action), _resource(resource))


def authorize(principal: Principal, action: str, resource: Resource | str = GLOBAL) -> None:
    """Raise :class:`~mloop.errors.PermissionDenied` unless ``principal`` holds a role that
    allows ``action`` on ``resource`` (a :class:`Resource` or ``"model:NAME"`` …)."""
    action = _action(action)
    target = _resource(resource)
    if allowed_by(principal.roles, action, target):
        return
    roles = [r for r in _names.ROLES if action in ROLE_ACTIONS[r]]
    where = "globally" if target.kind == "global" else f"on {target} or globally"
    grant = f"`mloop users grant {principal.name} {roles[0]}"
    if target.kind != "global":
        grant += f" --{target.kind} {target.identifiers[0]}"
    raise PermissionDenied(
        f"{principal.kind} {principal.name!r} may not {action} {target}: that needs the "
        f"{' or '.join(roles)} role {where}; an admin can grant it with {grant}`",
        details={"action": action, "resource": str(target), "roles": roles},
    )


def _action(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidInput(f"action {action!r} does not exist; use one of: {', '.join(ACTIONS)}")
    return action


def _resource(resource: Resource | str) -> Resource:
    return resource if isinstance(resource, Resource) else Resource.parse(resource)
