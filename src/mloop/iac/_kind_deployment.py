"""``kind: Deployment``: a deployment spec (docs/deployments.md) stored through
:mod:`mloop.serving`, so every applied change is a revision with its audit entry.

Aliases in a document (``model: iris@champion``) are resolved against the registry when
the document is checked, as ``create_deployment`` would when it stores it; the resolved
spec is what is compared with the live revision. A document whose members resolve to the
live revision's versions is therefore unchanged and makes no revision, and a document
naming ``@champion`` after the alias moved is an update.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mloop.errors import MloopError, NotFound
from mloop.iac._documents import Loc, SpecError
from mloop.iac._kinds import Kind
from mloop.iac._located import located
from mloop.registry._db import Actor


class DeploymentKind(Kind):
    name = "Deployment"
    order = 40
    summary = "members (model versions with roles), combine, guards and preprocessing"

    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        from mloop.serving import DeploymentSpec

        schema = DeploymentSpec.model_json_schema(ref_template=ref_prefix + "{model}")
        member = schema["$defs"]["Member"]
        member["properties"]["model"]["description"] = (
            "A registered model name, or a name with its version: iris:3, iris@champion, "
            "iris:latest, models:/iris/3 (then leave out version)."
        )
        member["properties"]["version"] = {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
            "description": "A version number, @ALIAS or latest; resolved when applied.",
            "title": "Version",
        }
        member["required"] = ["model"]
        schema["properties"]["preprocessing"]["description"] = (
            "A fitted transformer run before the models: models:/NAME/VERSION or "
            "models:/NAME@ALIAS."
        )
        return schema

    def parse(self, name: str, spec: Any) -> Any:
        from mloop.registry import _names
        from mloop.serving._spec import member_ref, parse_spec

        located(lambda: _names.deployment_name(name), prefix=("metadata", "name"))
        if not isinstance(spec, Mapping):
            raise SpecError(
                (), "a Deployment's spec is a mapping with members (see docs/deployments.md)"
            )
        if "name" in spec:
            raise SpecError(("name",), "the name is metadata.name; remove name from spec")
        raw = copy.deepcopy(dict(spec))
        members = raw.get("members")
        cursor = [-1]

        def resolve(model: str, ref: int | str) -> int:
            loc = _member_loc(members, model, after=cursor[0])
            cursor[0] = int(loc[1]) if len(loc) > 1 else cursor[0]
            return _resolve(model, ref, loc)

        parsed = located(lambda: parse_spec(raw, resolve=resolve))
        if parsed.preprocessing is not None:
            model, ref = located(
                lambda: member_ref(str(parsed.preprocessing)), prefix=("preprocessing",)
            )
            if not isinstance(ref, int):
                number = _resolve(model, ref, ("preprocessing",))
                parsed = parsed.model_copy(update={"preprocessing": f"models:/{model}/{number}"})
        return parsed

    def check(self, name: str, desired: Any, live: Any | None) -> None:
        """Every member version exists and is active (what ``create_deployment`` checks in
        its transaction), found before anything is applied."""
        from mloop.registry import get_model_version
        from mloop.serving._spec import member_ref

        refs: list[tuple[Loc, str, int]] = [
            (("members", i), m.model, m.version) for i, m in enumerate(desired.members)
        ]
        if desired.preprocessing is not None:
            model, number = member_ref(desired.preprocessing)
            refs.append((("preprocessing",), model, int(number)))
        problems: list[tuple[Loc, str]] = []
        for loc, model, number in refs:
            try:
                version = get_model_version(model, number)
            except MloopError as exc:
                problems.append((loc, exc.message))
                continue
            if version.status != "active":
                problems.append(
                    (
                        loc,
                        f"version {number} of {model!r} is archived and cannot be deployed; "
                        f"restore it (`mloop models restore {model} {number}`) or pick an "
                        "active version",
                    )
                )
        if problems:
            raise SpecError(problems[0][0], problems[0][1], *problems[1:])

    def get_live(self, name: str) -> Any | None:
        from mloop.serving import get_deployment

        try:
            return get_deployment(name).spec
        except NotFound:
            return None

    def list_live(self) -> list[tuple[str, Any]]:
        from mloop.serving import list_deployments

        return [(d.name, d.spec) for d in list_deployments()]

    def apply(
        self, name: str, desired: Any, *, live: Any | None, actor: Actor, reason: str
    ) -> None:
        from mloop.serving import create_deployment, update_deployment

        if live is None:
            create_deployment(name, desired, reason=reason, actor=actor)
        else:
            update_deployment(name, desired, reason=reason, actor=actor)

    def dump(self, obj: Any) -> dict[str, Any]:
        dumped: dict[str, Any] = obj.model_dump(mode="json", exclude_defaults=True)
        return dumped

    def same(self, desired: Any, live: Any) -> bool:
        return bool(desired == live)

    def authorize(self, name: str, actor: Actor) -> None:
        from mloop.registry import Principal, Resource, authorize

        if isinstance(actor, Principal):
            authorize(actor, "deploy", Resource.deployment(name))


def _resolve(model: str, ref: int | str, loc: Loc) -> int:
    from mloop.registry import resolve

    try:
        return resolve(model, ref).version
    except MloopError as exc:
        raise SpecError(loc, exc.message) from None


def _member_loc(members: Any, model: str, *, after: int) -> Loc:
    """Where the next member naming ``model`` is (the resolver is told only the model
    name; members are resolved in order), for the error's line."""
    if isinstance(members, list):
        for i, member in enumerate(members):
            if i > after and isinstance(member, Mapping):
                written = str(member.get("model", ""))
                version = member.get("version")
                by_version = isinstance(version, str) and not version.strip().isdigit()
                if (written == model and by_version) or written.removeprefix("models:/").startswith(
                    (f"{model}@", f"{model}:", f"{model}/")
                ):
                    return ("members", i)
    return ("members",)


def builtin_kinds() -> list[Kind]:
    return [DeploymentKind()]


__all__ = ["DeploymentKind", "builtin_kinds"]
