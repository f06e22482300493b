"""What a retraining trigger is: a pipeline to run, its parameters, and the one event it
waits for.

A trigger is declared in YAML (or built in Python) and stored by name::

    name: churn-nightly
    pipeline: mloop.agent:retraining_pipeline
    params: {data: churn@latest, trainer: churn_model:train, label: churned}
    on:
      schedule: "0 3 * * *"

``on`` holds exactly one of ``alert`` (a monitoring alert rule's name), ``performance``
(a deployment's window metric crossing a threshold), ``schedule`` (a five-field cron
expression, in UTC) or ``dataset`` (a new version of a dataset). Everything is checked when
the trigger is built, so a stored trigger can always be evaluated: a bad cron expression or
a pipeline reference that is not ``module:function`` is refused with what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mloop.errors import InvalidInput

TRIGGER_KINDS = ("alert", "performance", "schedule", "dataset")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def trigger_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"trigger name {name!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def callable_ref(value: Any, what: str = "pipeline") -> str:
    """A ``package.module:function`` reference, checked for shape only (importing it is the
    runner's job, so a trigger can be stored before its code is installed)."""
    if not isinstance(value, str) or not _REF.match(value.strip()):
        raise InvalidInput(
            f"{what} {value!r} is not a reference to a function; write it as "
            "'package.module:function', e.g. 'mloop.agent:retraining_pipeline'"
        )
    return value.strip()


def duration_ms(value: Any, what: str = "duration") -> int:
    """``"90s"``, ``"10m"``, ``"1h"``, ``"2d"``, ``"250ms"``, or a number of seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} {value!r} is not a duration; write e.g. '10m' or '1h'")
    if isinstance(value, int | float):
        milliseconds = int(value * 1000)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise InvalidInput(
                f"{what} {value!r} is not a duration; write a number with a unit: ms, s, m, "
                "h or d (e.g. '10m', '1h'), or a number of seconds"
            )
        milliseconds = int(float(match.group(1)) * _UNIT_MS[match.group(2) or "s"])
    if milliseconds <= 0:
        raise InvalidInput(f"{what} {value!r} must be longer than zero")
    return milliseconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerformanceCondition(_Strict):
    """A deployment's primary answers, over the last ``window``, judged on ``metric``.

    ``metric`` is a field of the monitoring window metrics: ``online_metric`` (accuracy for
    classification, MAE for regression, from feedback labels), ``error_rate``,
    ``latency_p99_ms``, ``latency_p50_ms`` or ``throughput_per_s``. Give ``below`` for
    metrics where higher is better and ``above`` for the others (MAE, error rate, latency).
    """

    deployment: str
    metric: Literal[
        "online_metric", "error_rate", "latency_p50_ms", "latency_p99_ms", "throughput_per_s"
    ] = "online_metric"
    below: float | None = None
    above: float | None = None
    window: str = "1h"
    min_labelled: int = Field(default=1, ge=0)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        _as_value_error(duration_ms, value, "performance window")
        return value

    @model_validator(mode="after")
    def _one_threshold(self) -> PerformanceCondition:
        if (self.below is None) == (self.above is None):
            raise ValueError(
                "give exactly one of below: (fire when the metric falls under it) or above: "
                "(fire when it rises over it)"
            )
        return self

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window, "performance window")

    def breached(self, value: float) -> bool:
        if self.below is not None:
            return value < self.below
        assert self.above is not None
        return value > self.above

    def describe(self) -> str:
        op, threshold = ("<", self.below) if self.below is not None else (">", self.above)
        return f"{self.metric} {op} {threshold:g} over {self.window} on {self.deployment}"


class DatasetCondition(_Strict):
    """A new version of dataset ``name``; its ``name@version`` goes into pipeline parameter
    ``param`` (default ``data``) so the pipeline trains on exactly that version."""

    name: str
    param: str = "data"


class ScheduleCondition(_Strict):
    """A five-field cron expression (minute hour day month weekday) or a macro such as
    ``@daily``, evaluated in UTC."""

    cron: str

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from mloop.agent._trigger_schedule import check_cron

        return str(_as_value_error(check_cron, value))


class TriggerOn(_Strict):
    """Exactly one event kind. The short forms ``alert: RULE``, ``schedule: "CRON"`` and
    ``dataset: NAME`` are accepted and expanded."""

    alert: str | None = None
    performance: PerformanceCondition | None = None
    schedule: ScheduleCondition | None = None
    dataset: DatasetCondition | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        expanded = dict(data)
        if isinstance(expanded.get("schedule"), str):
            expanded["schedule"] = {"cron": expanded["schedule"]}
        if isinstance(expanded.get("dataset"), str):
            expanded["dataset"] = {"name": expanded["dataset"]}
        return expanded

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerOn:
        given = [kind for kind in TRIGGER_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"needs exactly one of {', '.join(TRIGGER_KINDS)} (found: {found}); "
                "make one trigger per event"
            )
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in TRIGGER_KINDS if getattr(self, kind) is not None)

    def describe(self) -> str:
        if self.alert is not None:
            return f"alert {self.alert}"
        if self.performance is not None:
            return f"performance {self.performance.describe()}"
        if self.schedule is not None:
            return f"schedule {self.schedule.cron} (UTC)"
        assert self.dataset is not None
        return f"new version of dataset {self.dataset.name}"


class Trigger(_Strict):
    """A pipeline, its parameters, and the event that runs it (see the module doc)."""

    name: str
    pipeline: str
    params: dict[str, Any] = Field(default_factory=dict)
    on: TriggerOn
    cooldown: str | None = None
    enabled: bool = True
    description: str | None = None

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: str | None) -> str | None:
        if value is not None:
            _as_value_error(duration_ms, value, "cooldown")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return str(_as_value_error(trigger_name, value))

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, value: str) -> str:
        return str(_as_value_error(callable_ref, value))

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        import json

        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params must be plain JSON values: {exc}") from exc
        return value

    @property
    def kind(self) -> str:
        return self.on.kind

    @property
    def cooldown_ms(self) -> int:
        """Events within this long after a firing are recorded as skipped, not run (an
        alert that fires every minute during one incident retrains once)."""
        return 0 if self.cooldown is None else duration_ms(self.cooldown, "cooldown")

    def to_json(self) -> dict[str, Any]:
        """The stored (and exported) form: short forms expanded, defaults left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
            "name": self.name,
            "pipeline": self.pipeline,
            "on": self.on.model_dump(mode="json", exclude_none=True),
        }

    @classmethod
    def parse(cls, data: Any, *, source: str = "trigger") -> Trigger:
        """A trigger from a mapping (as read from YAML or JSON); :class:`InvalidInput`
        naming the field otherwise."""
        if isinstance(data, Trigger):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput(
                f"{source}: a trigger must be a mapping with name, pipeline and on, not "
                f"{type(data).__name__}"
            )
        fields = dict(data)
        if True in fields and "on" not in fields:
            # YAML 1.1 reads a bare ``on:`` key as the boolean true (PyYAML does)
            fields["on"] = fields.pop(True)
        try:
            return cls.model_validate(fields)
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {exc.message}") from exc
        except ValidationError as exc:
            raise InvalidInput(f"{source}: {_explain(exc)}") from exc

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "trigger.yaml") -> Trigger:
        """One trigger from YAML text (``kind: Trigger`` wrappers are unwrapped)."""
        found = triggers_from_yaml(text, source=source)
        if len(found) != 1:
            raise InvalidInput(f"{source} holds {len(found)} triggers, not one")
        return found[0]


def triggers_from_yaml(text: str, *, source: str = "triggers.yaml") -> list[Trigger]:
    """Every trigger in ``text``: one mapping, a list of them, several YAML documents, or
    configuration-as-code documents ``{kind: Trigger, spec: {...}}``."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {_one_line(str(exc))}") from exc
    items: list[Any] = []
    for document in documents:
        items.extend(document if isinstance(document, list) else [document])
    triggers = [
        Trigger.parse(_unwrap(item), source=f"{source} (trigger {n})")
        for n, item in enumerate(items, start=1)
    ]
    names = [t.name for t in triggers]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidInput(f"{source} defines trigger {duplicated[0]!r} more than once")
    return triggers


def load_triggers(path: str | Path) -> list[Trigger]:
    """Every trigger in a YAML file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"trigger file {file} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read trigger file {file}: {exc}") from exc
    return triggers_from_yaml(text, source=file.name)


def _as_value_error(check: Callable[..., Any], *args: Any) -> Any:
    """Run a check that raises :class:`InvalidInput` inside a pydantic validator, where a
    ``ValueError`` is what gets the field's location attached."""
    try:
        return check(*args)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _unwrap(item: Any) -> Any:
    if isinstance(item, Mapping) and item.get("kind") in ("Trigger", "PipelineSchedule"):
        spec = dict(item.get("spec") or {})
        metadata = item.get("metadata") or {}
        if "name" not in spec and isinstance(metadata, Mapping) and "name" in metadata:
            spec["name"] = metadata["name"]
        if "name" not in spec and "name" in item:
            spec["name"] = item["name"]
        return spec
    return item


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "trigger"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a trigger field (check the spelling)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
