"""``kind: Trigger`` and ``kind: PipelineSchedule``: retraining triggers stored through
:mod:`mloop.agent` (docs/retraining.md).

A PipelineSchedule is a Trigger whose event is a cron schedule, written flat::

    kind: PipelineSchedule
    metadata: {name: churn-nightly}
    spec:
      pipeline: mloop.agent:retraining_pipeline
      params: {data: churn@latest}
      schedule: "0 3 * * *"

Both kinds share one name space (one stored trigger per name). ``mloop export`` writes
scheduled triggers as PipelineSchedule and the others as Trigger; either form applies as
unchanged over the other, since both become the same stored trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mloop.errors import InvalidInput, NotFound
from mloop.iac._documents import Loc, SpecError
from mloop.iac._kinds import Kind, owner_function
from mloop.iac._located import from_invalid_input, from_validation_error
from mloop.registry._db import Actor

_FUNCTIONS = ("mloop.agent", "mloop.agent._triggers")
_MODEL = ("mloop.agent", "mloop.agent._trigger_spec")


def _model() -> Any:
    found = owner_function(_MODEL, "Trigger")
    if found is None:
        raise NotFound("mloop.agent provides no Trigger model in this installation")
    return found


def _function(name: str) -> Any:
    found = owner_function(_FUNCTIONS, name)
    if found is None:
        raise NotFound(f"mloop.agent provides no {name} in this installation")
    return found


class TriggerKind(Kind):
    name = "Trigger"
    namespace = "Trigger"
    order = 60
    summary = (
        "run a pipeline on an alert, a performance decline, a schedule or a new dataset version"
    )

    def unavailable(self) -> str | None:
        missing = [
            f
            for f in ("save_trigger", "get_trigger", "list_triggers")
            if owner_function(_FUNCTIONS, f) is None
        ]
        if owner_function(_MODEL, "Trigger") is None:
            missing.insert(0, "Trigger")
        if missing:
            return f"mloop.agent does not provide {', '.join(missing)} yet"
        return None

    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        schema: dict[str, Any] = _model().model_json_schema(ref_template=ref_prefix + "{model}")
        schema["properties"].pop("name", None)
        schema["required"] = [r for r in schema.get("required", []) if r != "name"]
        on = schema["$defs"].get("TriggerOn", {}).get("properties", {})
        for short, what in (("schedule", "a cron expression"), ("dataset", "a dataset name")):
            if short in on:
                on[short] = {
                    "anyOf": [{"type": "string", "description": f"short form: {what}"}, on[short]]
                }
        return schema

    def parse(self, name: str, spec: Any) -> Any:
        fields = self._fields(spec)
        return self._validate({**fields, "name": name}, rename={"name": ("metadata", "name")})

    def _fields(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise SpecError((), f"a {self.name}'s spec is a mapping (see docs/retraining.md)")
        if "name" in spec:
            raise SpecError(("name",), "the name is metadata.name; remove name from spec")
        fields = dict(spec)
        if True in fields and "on" not in fields:  # YAML 1.1 reads a bare `on:` key as true
            fields["on"] = fields.pop(True)
        return fields

    def _validate(self, fields: dict[str, Any], *, rename: dict[str, Loc]) -> Any:
        from pydantic import ValidationError

        try:
            return _model().model_validate(fields)
        except ValidationError as exc:
            raise from_validation_error(exc, rename=rename) from None
        except InvalidInput as exc:
            raise from_invalid_input(exc) from None

    def get_live(self, name: str) -> Any | None:
        try:
            return _function("get_trigger")(name)
        except NotFound:
            return None

    def list_live(self) -> list[tuple[str, Any]]:
        return [(t.name, t) for t in _function("list_triggers")() if t.on.schedule is None]

    def apply(
        self, name: str, desired: Any, *, live: Any | None, actor: Actor, reason: str
    ) -> None:
        _function("save_trigger")(desired, actor=actor)

    def dump(self, obj: Any) -> dict[str, Any]:
        dumped: dict[str, Any] = obj.to_json()
        dumped.pop("name", None)
        return dumped

    def same(self, desired: Any, live: Any) -> bool:
        return bool(desired.to_json() == live.to_json())


class PipelineScheduleKind(TriggerKind):
    name = "PipelineSchedule"
    summary = "run a pipeline on a cron schedule (a Trigger with on.schedule)"

    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        schema = super().spec_schema(ref_prefix)
        schema["properties"].pop("on", None)
        schema["properties"]["schedule"] = {
            "type": "string",
            "description": "A five-field cron expression (minute hour day month weekday) or a "
            "macro such as @daily, in UTC.",
        }
        schema["required"] = [r for r in schema.get("required", []) if r != "on"] + ["schedule"]
        schema["title"] = "PipelineSchedule"
        return schema

    def parse(self, name: str, spec: Any) -> Any:
        fields = self._fields(spec)
        if "on" in fields:
            raise SpecError(
                ("on",),
                'a PipelineSchedule runs on schedule:, not on:; write schedule: "CRON" or '
                "use kind: Trigger for other events",
            )
        if "schedule" not in fields:
            raise SpecError(("schedule",), 'required field is missing; e.g. schedule: "0 3 * * *"')
        fields["on"] = {"schedule": fields.pop("schedule")}
        try:
            return self._validate(
                {**fields, "name": name}, rename={"name": ("metadata", "name"), "on": ()}
            )
        except SpecError as exc:  # the cron string is spec.schedule itself here
            flat = [
                (loc[:1] if loc[:2] == ("schedule", "cron") else loc, message)
                for loc, message in exc.located
            ]
            raise SpecError(flat[0][0], flat[0][1], *flat[1:]) from None

    def list_live(self) -> list[tuple[str, Any]]:
        return [(t.name, t) for t in _function("list_triggers")() if t.on.schedule is not None]

    def dump(self, obj: Any) -> dict[str, Any]:
        dumped = super().dump(obj)
        on = dumped.pop("on", {})
        if obj.on.schedule is None:  # a live trigger of another event (shown in a diff)
            dumped["on"] = on
            return dumped
        return {
            "pipeline": dumped.pop("pipeline"),
            **({"params": dumped.pop("params")} if "params" in dumped else {}),
            "schedule": obj.on.schedule.cron,
            **dumped,
        }


def builtin_kinds() -> list[Kind]:
    return [TriggerKind(), PipelineScheduleKind()]


__all__ = ["PipelineScheduleKind", "TriggerKind", "builtin_kinds"]
