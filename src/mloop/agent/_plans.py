"""Rollout plans: the steps a candidate takes towards full traffic and the checks between them.

A plan is data (YAML or JSON), so it can be reviewed, stored under a name and applied as
code. Each step but the last holds the candidate at some traffic for a ``window`` while
the agent compares it with the primary over the same time; the last step gives it all
traffic and makes it the primary. Durations are kept as the text people write (``10m``)
in a canonical form, so a plan dumped and loaded again is the same plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from mloop.agent._trigger_spec import duration_ms
from mloop.errors import InvalidInput

_STEP_TEXT = re.compile(
    r"^\s*(?:(?P<shadow>shadow)|(?:canary\s+)?(?P<percent>\d+(?:\.\d+)?)\s*%)"
    r"(?:\s+(?:for\s+)?(?P<window>\S+))?\s*$",
    re.IGNORECASE,
)
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def format_duration(milliseconds: int) -> str:
    """The canonical text of a duration: the largest unit that divides it (``90s``, ``10m``)."""
    for unit, size in _UNITS:
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    raise AssertionError("every whole number of milliseconds has a unit")  # pragma: no cover


def _duration(value: Any, what: str) -> str:
    try:
        return format_duration(duration_ms(value, what))
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def plan_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"plan name {name!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """Where the candidate stands for one step: ``traffic: shadow`` (a copy of every
    request, answers logged but never returned) or a percent of the traffic (a canary
    under 100, the new primary at 100), held for ``window`` before the next step."""

    traffic: Literal["shadow"] | float
    window: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        """``"shadow 10m"``, ``"canary 5% 10m"``, ``"25% for 10m"``, ``"100%"``."""
        if not isinstance(data, str):
            return data
        match = _STEP_TEXT.match(data)
        if match is None:
            raise ValueError(
                f"step {data!r} is not valid; write 'shadow 10m', 'canary 5% 10m', "
                "'25% 10m' or '100%', or a mapping {traffic: 25, window: 10m}"
            )
        traffic: Any = "shadow" if match["shadow"] else float(match["percent"])
        return {"traffic": traffic, "window": match["window"]}

    @field_validator("traffic", mode="before")
    @classmethod
    def _traffic(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("traffic is 'shadow' or a percent of the traffic, not a boolean")
        if isinstance(value, str) and value.strip().lower() != "shadow":
            text = value.strip().rstrip("%").strip()
            try:
                return float(text)
            except ValueError:
                raise ValueError(
                    f"traffic {value!r} is not valid; write shadow or a percent such as 25"
                ) from None
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("traffic")
    @classmethod
    def _percent(cls, value: str | float) -> str | float:
        if isinstance(value, float) and not 0 < value <= 100:
            raise ValueError(
                f"traffic {value:g}% is not valid; a canary takes more than 0 and less than "
                "100 percent, the last step 100"
            )
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        return None if value is None else _duration(value, "window")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The published schema accepts the short form too (``"canary 5% 10m"``), so an
        editor validating a plan file against it agrees with mloop."""
        mapping = handler(core_schema)
        short = {
            "type": "string",
            "pattern": re.sub(r"\(\?P<\w+>", "(", _STEP_TEXT.pattern).replace(
                "shadow", "[Ss]hadow"
            ),
            "description": "short form: 'shadow 10m', 'canary 5% 10m', '25% 10m' or '100%'",
        }
        return {"anyOf": [short, mapping]}

    @property
    def window_ms(self) -> int:
        return 0 if self.window is None else duration_ms(self.window, "window")

    @property
    def is_shadow(self) -> bool:
        return self.traffic == "shadow"

    @property
    def is_full(self) -> bool:
        return self.traffic == 100.0

    @property
    def role(self) -> str:
        """The candidate's role in the deployment during this step."""
        if self.is_shadow:
            return "shadow"
        return "primary" if self.is_full else "canary"

    def describe(self) -> str:
        if self.is_shadow:
            return "shadow"
        assert isinstance(self.traffic, float)
        return "100%" if self.is_full else f"canary {self.traffic:g}%"


class Checks(_Strict):
    """What a step must show, candidate against primary over the step's window. Any
    threshold set to ``null`` is not checked.

    * ``max_error_rate_increase``: candidate error rate minus the primary's, as a fraction
      (0.01 = one percentage point);
    * ``max_p99_latency_ratio``: candidate p99 latency over the primary's, where the two
      differ by more than ``latency_tolerance_ms`` (so 1 ms against 2 ms is no breach);
    * ``max_divergence``: Jensen-Shannon distance between the two answer distributions (0
      same, 1 disjoint);
    * ``min_online_metric_delta``: candidate accuracy minus the primary's, from feedback
      labels, once both have ``min_labelled``; ``max_mae_ratio`` the same for a
      regression's mean absolute error;
    * ``min_requests``: requests the candidate and the primary must each have answered in
      the window before it is judged. Without them the step keeps holding, at most
      ``max_wait`` from its start (null: forever), then ``on_insufficient_traffic``
      decides: ``rollback`` or ``advance``.
    """

    max_error_rate_increase: float | None = Field(default=0.01, ge=0)
    max_p99_latency_ratio: float | None = Field(default=1.5, ge=1)
    latency_tolerance_ms: float = Field(default=5.0, ge=0)
    max_divergence: float | None = Field(default=0.2, ge=0, le=1)
    min_online_metric_delta: float | None = Field(default=-0.02, le=0)
    max_mae_ratio: float | None = Field(default=1.1, ge=1)
    min_labelled: int = Field(default=30, ge=1)
    min_requests: int = Field(default=100, ge=1)
    max_wait: str | None = "1h"
    on_insufficient_traffic: Literal["rollback", "advance"] = "rollback"

    @field_validator("max_wait", mode="before")
    @classmethod
    def _max_wait(cls, value: Any) -> Any:
        return None if value is None else _duration(value, "max_wait")

    @property
    def max_wait_ms(self) -> int | None:
        return None if self.max_wait is None else duration_ms(self.max_wait, "max_wait")


def _default_steps() -> tuple[Step, ...]:
    return tuple(
        Step.model_validate(text)
        for text in ("shadow 10m", "canary 5% 10m", "25% 10m", "50% 10m", "100%")
    )


class RolloutPlan(_Strict):
    """The steps (default: shadow → canary 5% → 25% → 50% → 100%, each held 10 minutes),
    the checks at each, and the alias moved to the candidate when it succeeds (null: no
    alias is moved)."""

    steps: tuple[Step, ...] = Field(default_factory=_default_steps)
    checks: Checks = Field(default_factory=Checks)
    promote_alias: str | None = "champion"
    description: str | None = None

    @field_validator("promote_alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from mloop.registry import _names

        return str(_as_value_error(_names.alias_name, value))

    @model_validator(mode="after")
    def _steps_make_sense(self) -> RolloutPlan:
        steps = self.steps
        if not steps or not steps[-1].is_full:
            raise ValueError(
                "the last step must give the candidate all traffic: end steps with '100%'"
            )
        if steps[-1].window is not None:
            raise ValueError(
                f"steps[{len(steps) - 1}]: the last step (100%) ends the rollout at once, so "
                "it has no window; remove window from it"
            )
        percent = 0.0
        for n, step in enumerate(steps[:-1]):
            if step.is_full:
                raise ValueError(f"steps[{n}]: only the last step may take 100% of the traffic")
            if step.window is None:
                raise ValueError(
                    f"steps[{n}] ({step.describe()}) needs a window: how long it is held and "
                    "checked, e.g. window: 10m"
                )
            if step.is_shadow:
                if percent:
                    raise ValueError(
                        f"steps[{n}]: a shadow step after a canary step would take traffic "
                        "away; put shadow steps first"
                    )
                continue
            assert isinstance(step.traffic, float)
            if step.traffic <= percent:
                raise ValueError(
                    f"steps[{n}]: canary {step.traffic:g}% does not grow on the step before "
                    f"({percent:g}%); each canary step must take more traffic"
                )
            percent = step.traffic
        wait = self.checks.max_wait_ms
        longest = max((s.window_ms for s in steps), default=0)
        if wait is not None and wait < longest:
            raise ValueError(
                f"checks.max_wait ({self.checks.max_wait}) is shorter than the longest window "
                f"({format_duration(longest)}); it counts from a step's start, so make it at "
                "least as long"
            )
        return self

    def describe(self) -> str:
        return " → ".join(
            step.describe() + (f" {step.window}" if step.window else "") for step in self.steps
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def parse(cls, data: Any, *, source: str = "rollout plan") -> RolloutPlan:
        """A plan from a mapping (as read from YAML or JSON), a plan, or None (the default);
        :class:`InvalidInput` naming the field otherwise."""
        if data is None:
            return cls()
        if isinstance(data, RolloutPlan):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput(
                f"{source}: a rollout plan is a mapping with steps and checks, not "
                f"{type(data).__name__}"
            )
        fields = dict(data)
        if fields.get("kind") == "RolloutPlan" and "spec" in fields:  # a config-as-code file
            fields = dict(fields["spec"] or {})
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(f"{source}: {_explain(exc)}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RolloutPlan:
        """The plan in a YAML (or JSON) file."""
        import yaml

        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"plan file {file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read plan file {file}: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = " ".join(str(exc).split())
            raise InvalidInput(f"{file.name} is not valid YAML: {first}") from None
        return cls.parse({} if data is None else data, source=file.name)


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; check its spelling (see docs/rollouts.md)"
        elif error["type"] == "missing":
            message = "is required"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(dict.fromkeys(problems))


def _as_value_error(check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


__all__ = ["Checks", "RolloutPlan", "Step", "format_duration", "plan_name"]
