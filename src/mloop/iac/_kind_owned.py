"""``kind: Gate``, ``kind: AlertRule`` and ``kind: RolloutPlan``: named pydantic objects that
their owners store with ``save_*``/``get_*``/``list_*`` functions (evaluation, monitoring,
the agent's rollouts).

The three follow one pattern, so one class serves them, configured by where the owner's
model and functions live and whether the object carries its own name (an alert rule
does; a gate and a rollout plan are stored under a name given beside them). A kind whose
owner does not provide the functions in this installation is unavailable and its
documents are refused with the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mloop.errors import InvalidInput, NotFound
from mloop.iac._documents import SpecError
from mloop.iac._kinds import Kind, owner_function
from mloop.iac._located import from_invalid_input, from_validation_error, located
from mloop.registry._db import Actor


@dataclass(frozen=True)
class Owner:
    """Where a kind's owner keeps its model and functions."""

    modules: tuple[str, ...]
    model: str
    save: str
    get: str
    list: str
    named_model: bool
    """True when the model has a ``name`` field (``save(obj)``), else ``save(name, obj)``."""
    docs: str
    check_name: str | None = None
    """The owner's name check (``gate_name``), run when documents are checked."""
    needs: tuple[str, str] | None = None
    """(action, resource) a ``Principal`` must be allowed, e.g. ("admin", "global")."""
    schema_patch: Callable[[dict[str, Any]], None] | None = None
    """Widens the generated schema to the short forms the owner's model accepts."""


class OwnedKind(Kind):
    def __init__(self, name: str, order: int, summary: str, owner: Owner) -> None:
        self.name = name
        self.order = order
        self.summary = summary
        self.owner = owner

    def _find(self, attribute: str) -> Any:
        found = owner_function(self.owner.modules, attribute)
        if found is None:
            raise NotFound(
                f"kind {self.name} is not supported yet: {self.owner.modules[0]} does not "
                f"provide {attribute} in this installation"
            )
        return found

    def unavailable(self) -> str | None:
        o = self.owner
        missing = [
            a for a in (o.model, o.save, o.get, o.list) if owner_function(o.modules, a) is None
        ]
        if missing:
            return (
                f"kind {self.name} is not supported yet: {o.modules[0]} does not provide "
                f"{', '.join(missing)} in this installation"
            )
        return None

    def _model(self) -> type[BaseModel]:
        model = self._find(self.owner.model)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.owner.model} is not a pydantic model")
        return model

    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        schema: dict[str, Any] = self._model().model_json_schema(
            ref_template=ref_prefix + "{model}"
        )
        if self.owner.named_model:
            schema.get("properties", {}).pop("name", None)
            schema["required"] = [r for r in schema.get("required", []) if r != "name"]
        if self.owner.schema_patch is not None:
            self.owner.schema_patch(schema)
        return schema

    def parse(self, name: str, spec: Any) -> Any:
        if not isinstance(spec, Mapping):
            raise SpecError((), f"a {self.name}'s spec is a mapping (see {self.owner.docs})")
        if "name" in spec:
            raise SpecError(("name",), "the name is metadata.name; remove name from spec")
        if self.owner.check_name is not None:
            check = self._find(self.owner.check_name)
            located(lambda: check(name), prefix=("metadata", "name"))
        fields = dict(spec)
        if self.owner.named_model:
            fields["name"] = name
        try:
            return self._model().model_validate(fields)
        except ValidationError as exc:
            raise from_validation_error(exc, rename={"name": ("metadata", "name")}) from None
        except InvalidInput as exc:
            raise from_invalid_input(exc) from None

    def _object(self, found: Any) -> Any:
        """The owner's model from what a getter returned (the model, or a stored record
        holding it as ``spec``/``rule``/``plan``/``gate``)."""
        model = self._model()
        if isinstance(found, model):
            return found
        for attribute in ("spec", "rule", "plan", "gate"):
            inner = getattr(found, attribute, None)
            if isinstance(inner, model):
                return inner
        raise TypeError(f"{self.owner.get} returned {type(found).__name__}, not {model.__name__}")

    def get_live(self, name: str) -> Any | None:
        try:
            return self._object(self._find(self.owner.get)(name))
        except NotFound:
            return None

    def list_live(self) -> list[tuple[str, Any]]:
        found = self._find(self.owner.list)()
        items = found.items() if isinstance(found, Mapping) else found
        out: list[tuple[str, Any]] = []
        for item in items:
            if isinstance(item, str):
                live = self.get_live(item)
                if live is not None:
                    out.append((item, live))
            elif isinstance(item, tuple) and len(item) == 2:
                out.append((str(item[0]), self._object(item[1])))
            else:
                out.append((str(item.name), self._object(item)))
        return sorted(out, key=lambda pair: pair[0])

    def apply(
        self, name: str, desired: Any, *, live: Any | None, actor: Actor, reason: str
    ) -> None:
        save = self._find(self.owner.save)
        args = (desired,) if self.owner.named_model else (name, desired)
        accepts = inspect.signature(save).parameters
        save(*args, **({"actor": actor} if "actor" in accepts else {}))

    def dump(self, obj: Any) -> dict[str, Any]:
        """The owner's stored form (``to_json``) when it has one, which is what its own
        "unchanged" check compares."""
        to_json = getattr(obj, "to_json", None)
        dumped: dict[str, Any] = (
            to_json()
            if callable(to_json)
            else obj.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        )
        if self.owner.named_model:
            dumped = {k: v for k, v in dumped.items() if k != "name"}
        return dumped

    def authorize(self, name: str, actor: Actor) -> None:
        from mloop.registry import Principal, Resource, authorize

        if self.owner.needs is not None and isinstance(actor, Principal):
            action, resource = self.owner.needs
            authorize(actor, action, Resource.parse(resource))


def _sink_short_forms(schema: dict[str, Any]) -> None:
    """An alert rule's sinks may be written ``log``, ``{webhook: URL}`` or ``{command:
    [ARGV]}`` as well as in full."""
    sinks = schema.get("properties", {}).get("sinks")
    if not isinstance(sinks, dict) or "items" not in sinks:
        return
    short = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "log": {},
            "webhook": {"anyOf": [{"type": "string"}, {"type": "object"}]},
            "command": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]
            },
        },
    }
    sinks["items"] = {"anyOf": [sinks["items"], {"const": "log"}, short]}


def _step_short_forms(schema: dict[str, Any]) -> None:
    """A rollout plan's steps may be written ``"shadow 10m"``, ``"canary 5% 10m"``,
    ``"100%"`` as well as mappings."""
    steps = schema.get("properties", {}).get("steps")
    if isinstance(steps, dict) and "items" in steps:
        text = {"type": "string", "description": "'shadow 10m', 'canary 5% 10m', '25% 10m', '100%'"}
        steps["items"] = {"anyOf": [text, steps["items"]]}


def builtin_kinds() -> list[Kind]:
    return [
        OwnedKind(
            "Gate",
            10,
            "rules an evaluation must pass to bless a model version",
            Owner(
                ("mloop.evaluation", "mloop.evaluation._gates"),
                "GateSpec",
                "save_gate",
                "get_gate",
                "list_gates",
                named_model=False,
                docs="docs/evaluation.md",
                check_name="gate_name",
                needs=("admin", "global"),
            ),
        ),
        OwnedKind(
            "AlertRule",
            20,
            "a monitored metric, its window, threshold and the sinks alerts go to",
            Owner(
                ("mloop.monitoring", "mloop.monitoring._store"),
                "AlertRule",
                "save_alert_rule",
                "get_alert_rule",
                "list_alert_rules",
                named_model=True,
                docs="docs/monitoring.md",
                schema_patch=_sink_short_forms,
            ),
        ),
        OwnedKind(
            "RolloutPlan",
            30,
            "the steps of a progressive rollout and the checks between them",
            Owner(
                ("mloop.agent", "mloop.agent._plan_store", "mloop.agent._plans"),
                "RolloutPlan",
                "save_plan",
                "get_plan",
                "list_plans",
                named_model=False,
                docs="docs/rollouts.md",
                check_name="plan_name",
                schema_patch=_step_short_forms,
            ),
        ),
    ]


__all__ = ["OwnedKind", "Owner", "builtin_kinds"]
