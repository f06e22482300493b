"""``GateSpec``: the rules a candidate must pass to be blessed, declared in YAML.

A gate is configuration, kept in git next to the code (``gate.yaml``) or stored by name
(:func:`mloop.evaluation.save_gate`). Every field is optional; an empty gate blesses any
candidate that can be evaluated. A typo is an error naming the field, never a rule that is
silently ignored, because a gate that checks less than its author thinks is worse than none.

::

    metric: roc_auc                 # the metric the rules below talk about
    min_improvement: 0.0            # overall: candidate - baseline >= this (direction-aware)
    require_baseline: false         # refuse when there is no baseline to compare with
    thresholds:                     # absolute bounds on the candidate's overall metrics
      accuracy: {min: 0.8}
      log_loss: {max: 0.5}
    slices:
      min_rows: 50                  # slices smaller than this are reported, not judged
      max_regression: 0.02          # no judged slice may be worse than the baseline by more
    fairness:
      max_demographic_parity_difference: 0.1
      max_equalized_odds_difference: 0.1
    robustness:
      max_drop: 0.05                # metric lost under each perturbation
      perturbations: [noise, missing]  # which count (default both)
    backdoor:
      max_flip_rate: 0.01           # share of predictions the trigger may change
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mloop.errors import InvalidInput, NotFound

#: Metrics where a larger value is better; every other metric is better when smaller.
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "fp_rate",
    "fn_rate",
    "ece",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")
ALL_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
MAX_YAML_BYTES = 1 << 20


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER


def check_metric(name: Any) -> str:
    if name not in ALL_METRICS:
        raise ValueError(f"unknown metric {name!r}; use one of {', '.join(ALL_METRICS)}")
    return str(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """An absolute bound on one metric: ``{min: 0.8}``, ``{max: 0.5}`` or both."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_side_at_least(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class SliceRule(_Strict):
    min_rows: int = Field(default=30, ge=1)
    max_regression: float = Field(ge=0)


class FairnessRule(_Strict):
    max_demographic_parity_difference: float | None = Field(default=None, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(default=None, ge=0, le=1)


class RobustnessRule(_Strict):
    """``max_drop`` applies to each of ``perturbations``; a model that cannot predict
    under one of them (missing values it refuses) fails that check."""

    max_drop: float = Field(ge=0)
    perturbations: tuple[Literal["noise", "missing"], ...] = ("noise", "missing")


class BackdoorRule(_Strict):
    max_flip_rate: float = Field(ge=0, le=1)


class GateSpec(_Strict):
    """What a candidate must show to be blessed. See the module doc for the YAML shape."""

    metric: str | None = None
    min_improvement: float | None = None
    require_baseline: bool = False
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    slices: SliceRule | None = None
    fairness: FairnessRule | None = None
    robustness: RobustnessRule | None = None
    backdoor: BackdoorRule | None = None
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        return None if value is None else check_metric(value)

    @field_validator("thresholds")
    @classmethod
    def _known_threshold_metrics(cls, value: dict[str, Bound]) -> dict[str, Bound]:
        for name in value:
            check_metric(name)
        return value

    # -- reading and writing ------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any, *, source: str = "gate") -> GateSpec:
        """A gate from a mapping (parsed YAML/JSON); errors name the field."""
        if isinstance(data, GateSpec):
            return data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInput(
                f"{source}: a gate is a mapping of rules (metric, min_improvement, slices, "
                f"…), not {type(data).__name__}"
            )
        if data.get("kind") == "Gate" and "spec" in data:  # a configuration-as-code document
            data = data["spec"] or {}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(f"{source}: {_explain(exc)}") from None

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "gate.yaml") -> GateSpec:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise InvalidInput(f"{source}: {problem}{where}") from None
        return cls.parse(document, source=source)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> GateSpec:
        """A gate from a YAML file."""
        file = Path(path)
        if not file.is_file():
            raise NotFound(f"gate file {file} does not exist; write the rules in YAML there")
        if file.stat().st_size > MAX_YAML_BYTES:
            raise InvalidInput(f"gate file {file} is over {MAX_YAML_BYTES} bytes; is it a gate?")
        return cls.from_yaml_text(file.read_text(encoding="utf-8"), source=str(file))

    def to_json(self) -> dict[str, Any]:
        """The gate as plain data, without defaults left unset, as YAML would hold it."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_json(), sort_keys=False))

    @property
    def needs_baseline(self) -> bool:
        return self.min_improvement is not None or self.slices is not None


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "gate"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a gate field (check the spelling; see docs/evaluation.md)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)
