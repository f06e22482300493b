"""What users declare: alert rules (YAML), their sinks, and a deployment's monitor settings.

An alert rule::

    name: iris-drift
    deployment: iris
    metric: drift.max_score         # or skew.petal_width, error_rate, accuracy, …
    window: 1h
    op: ">"
    threshold: 0.1
    for: 2h                         # must hold for 2 consecutive 1h windows
    sinks:
      - log
      - webhook: https://hooks.example.com/ml
      - command: [notify-oncall, --team, ml]

Everything is checked when the rule is built, so a stored rule can always be evaluated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mloop.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

FIXED_METRICS = (
    "count", "errors", "error_rate", "server_error_rate", "latency_p50_ms", "latency_p99_ms",
    "throughput_per_s", "labelled", "accuracy", "mae", "online_metric", "output_drift",
    "drift.max_score", "drift.share_drifted", "skew.max_score", "skew.share_drifted",
)  # fmt: skip
_PATTERN_METRICS = re.compile(r"^(drift|skew)\.(?P<feature>.+)$|^outcome\.(?P<outcome>.+)$")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
}
T = TypeVar("T")


def duration_ms(value: Any, what: str = "duration") -> int:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"1h30m"``, ``"7d"``, ``"250ms"``; a number is seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} {value!r} is not a duration; write e.g. '5m' or '1h'")
    if isinstance(value, int | float):
        milliseconds = int(value * 1000) if math.isfinite(value) else 0
    else:
        text = str(value).strip().replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise InvalidInput(
                f"{what} {value!r} is not a duration; write numbers with units ms, s, m, h, d "
                "or w (e.g. '5m', '1h', '1h30m')"
            )
        milliseconds = int(sum(float(n) * _UNIT_MS[u] for n, u in parts))
    if milliseconds <= 0:
        raise InvalidInput(f"{what} {value!r} must be longer than zero")
    return milliseconds


def format_duration(milliseconds: int) -> str:
    """The shortest text :func:`duration_ms` reads back as ``milliseconds``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def check_metric(metric: str) -> str:
    if metric in FIXED_METRICS or _PATTERN_METRICS.match(metric):
        return metric
    raise InvalidInput(
        f"unknown metric {metric!r}; use one of {', '.join(FIXED_METRICS)}, drift.FEATURE, "
        "skew.FEATURE, outcome.NAME (a count) or outcome.NAME_rate"
    )


def _as_value_error(check: Callable[..., T], *args: Any) -> T:
    """Run one of the checks above inside a pydantic validator."""
    try:
        return check(*args)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogSink(_Strict):
    """Alerts as warnings on the ``mloop.monitoring.alerts`` logger (and the CLI's output)."""

    type: Literal["log"] = "log"


class WebhookSink(_Strict):
    """An HTTP POST of the alert as JSON. Retried ``retries`` times on connection errors and
    5xx answers, waiting ``backoff_s``, then doubling; ``headers`` (e.g. a token) are sent,
    never logged, and the URL is logged by host only."""

    type: Literal["webhook"] = "webhook"
    url: str
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"webhook url {value!r} must start with http:// or https://")
        return value


class CommandSink(_Strict):
    """A program run with the alert as JSON on its standard input: ``argv`` is the program
    and its arguments, run without a shell (no quoting, no expansion)."""

    type: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0] or any("\x00" in part for part in value):
            raise ValueError("command argv needs a program name and no NUL characters")
        return value


Sink = Annotated[LogSink | WebhookSink | CommandSink, Field(discriminator="type")]


def _sink_short_form(item: Any) -> Any:
    """``log``, ``{webhook: URL}``, ``{webhook: {url: …}}``, ``{command: [argv]}``,
    ``{command: {argv: […]}}`` → the full form with ``type``."""
    if item == "log":
        return {"type": "log"}
    if isinstance(item, Mapping) and "type" not in item and len(item) == 1:
        ((kind, value),) = item.items()
        if kind == "webhook":
            return {"type": "webhook", **({"url": value} if isinstance(value, str) else value)}
        if kind == "command":
            body = {"argv": value} if isinstance(value, list) else value
            return {"type": "command", **body} if isinstance(body, Mapping) else item
        if kind == "log":
            return {"type": "log"}
    return item


class AlertRule(_Strict):
    """A condition on one metric of a deployment's windows (see the module doc).

    ``window`` is the window length the metric is computed over; the rule fires when ``op
    threshold`` holds in every window of the last ``for`` (default: one window), and the
    alert resolves at the first window where it does not. A window where the metric has
    no value (no traffic, too few labels) neither fires nor resolves.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    deployment: str
    metric: str
    window: str = "1h"
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    for_: str | None = Field(default=None, alias="for")
    sinks: list[Sink] = Field(default_factory=lambda: list[Sink]([LogSink()]))
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"alert rule name {value!r}: use 1-128 letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return _as_value_error(check_metric, value)

    @field_validator("window", "for_")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            _as_value_error(duration_ms, value, "duration")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    @field_validator("sinks", mode="before")
    @classmethod
    def _sinks(cls, value: Any) -> Any:
        return [_sink_short_form(item) for item in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _for_covers_a_window(self) -> AlertRule:
        if self.for_ is not None and duration_ms(self.for_) < self.window_ms:
            raise ValueError(f"for ({self.for_}) is shorter than one window ({self.window})")
        return self

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window, "window")

    @property
    def windows_needed(self) -> int:
        """How many consecutive windows the condition must hold in."""
        if self.for_ is None:
            return 1
        return max(1, math.ceil(duration_ms(self.for_) / self.window_ms))

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        held = f" for {self.for_}" if self.for_ else ""
        return f"{self.metric} {self.op} {self.threshold:g} ({self.window} windows{held})"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def parse(cls, data: AlertRule | Mapping[str, Any], *, source: str = "alert rule") -> AlertRule:
        if isinstance(data, AlertRule):
            return data
        return parse_model(cls, data, source)


class MonitorConfig(_Strict):
    """How a deployment's windows are computed.

    ``training_dataset`` (``name@version``) is the skew reference; by default the training
    data linked to the primary model version. ``feature_names`` names the columns of a
    tensor input (by position); by default they are the training data's features (less
    ``label``) when the widths match. ``drift`` is a drift config (docs/drift.md) used for
    both drift and skew. ``min_rows`` is the fewest rows a window needs for drift;
    ``min_labels`` the fewest labels for its performance to count. Windows up to
    ``label_lookback`` old are recomputed when new feedback arrived for them.
    """

    window: str = "1h"
    training_dataset: str | None = None
    label: str | None = None
    feature_names: list[str] | None = None
    drift: dict[str, Any] | None = None
    min_rows: int = Field(default=30, ge=1)
    min_labels: int = Field(default=30, ge=1)
    label_lookback: str = "1d"

    @field_validator("window", "label_lookback")
    @classmethod
    def _duration(cls, value: str) -> str:
        _as_value_error(duration_ms, value, "duration")
        return value

    @field_validator("drift")
    @classmethod
    def _drift(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from mloop.data import DriftConfig

            _as_value_error(DriftConfig.from_dict, value)
        return value

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window, "window")

    @property
    def label_lookback_ms(self) -> int:
        return duration_ms(self.label_lookback, "label_lookback")

    def drift_config(self) -> Any:
        from mloop.data import DriftConfig

        config = dict(self.drift or {})
        if self.label is not None:
            features = dict(config.get("features") or {})
            features.setdefault(self.label, {"skip": True})
            config["features"] = features
        return DriftConfig.from_dict(config, source="monitor drift config")

    @classmethod
    def parse(
        cls, data: MonitorConfig | Mapping[str, Any] | None, *, source: str = "monitor config"
    ) -> MonitorConfig:
        if data is None:
            return cls()
        if isinstance(data, MonitorConfig):
            return data
        return parse_model(cls, data, source)


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, source: str) -> M:
    """``model`` from plain data; the first problem as InvalidInput naming the field."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "is not a known field"
        elif first["type"] == "missing":
            message = "is required"
        raise InvalidInput(f"{source}: {where} {message}") from None


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """Every document of a YAML file (a rule per document, or a list of rules)."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file} is not valid YAML: {exc}") from None
    found: list[dict[str, Any]] = []
    for document in documents:
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput(f"{file}: each alert rule must be a mapping of fields")
            # YAML 1.1 reads a bare `on`/`yes` key as True; `for` is safe but be tolerant
            found.append({str(k): v for k, v in item.items()})
    return found
