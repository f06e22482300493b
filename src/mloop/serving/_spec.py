"""What a deployment is: its members (model versions with a role), how their answers are
combined, the guards in front of them, and a stored revision of all that.

The models are frozen and refuse unknown fields, so a typo in ``deployment.yaml``
(``rate_limt_per_key``) is an error naming the field instead of a guard silently off.
Structural rules live here (exactly one primary, canary weights, shadows without weight);
rules that need the registry (the versions exist, are not archived, aliases resolve) are
checked at write time by :mod:`mloop.serving._deployments`, because a spec may be written
before it is stored and an alias means the version it points at *when* the spec is stored.

A spec file may name a member as ``model: iris`` with ``version: 3`` (or ``"@champion"``,
``"latest"``), or in one string: ``iris:3``, ``iris@champion`` or ``models:/iris/3``.
:func:`parse_spec` turns the version references into numbers through a resolver.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mloop.errors import InvalidInput
from mloop.registry import _names

Role = Literal["primary", "canary", "shadow"]
Combine = Literal["none", "vote", "mean"]
ROLES: tuple[Role, ...] = ("primary", "canary", "shadow")
COMBINES: tuple[Combine, ...] = ("none", "vote", "mean")
SPEC_FORMAT_VERSION = 1
"""Written into every stored spec (``format_version``) so later readers can tell them apart."""

Resolver = Callable[[str, "int | str"], int]
"""Turns (model name, version reference) into a version number, e.g. via the registry."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Member(BaseModel):
    """One model version inside a deployment."""

    model_config = _FROZEN

    model: str
    version: int
    role: Role = "primary"
    weight: float = 0.0

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        try:
            return _names.model_name(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("version", "weight", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{value} is not a number (YAML reads yes/no/true/false as booleans)")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"version {value} is not valid; versions are numbered 1, 2, …")
        return value

    @field_validator("weight")
    @classmethod
    def _weight_fits_role(cls, w: float, info: ValidationInfo) -> float:
        role = info.data.get("role", "primary")
        if role == "canary":
            if not (math.isfinite(w) and 0 < w < 100):
                raise ValueError(
                    f"canary weight {w} is not valid; give the percent of traffic it takes, "
                    "more than 0 and less than 100 (e.g. weight: 10)"
                )
        elif w != 0:
            what = (
                "a shadow gets a copy of every request, so it takes no weight"
                if role == "shadow"
                else "the primary takes whatever traffic the canaries leave"
            )
            raise ValueError(f"a {role} has no weight ({what}); remove weight: {w:g}")
        return w

    @property
    def ref(self) -> str:
        """``NAME:VERSION``, how the CLI and logs name a member."""
        return f"{self.model}:{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


class RateLimit(BaseModel):
    """A token bucket: ``burst`` requests at once, refilled at ``rate`` per second."""

    model_config = _FROZEN

    rate: float = Field(gt=0, allow_inf_nan=False)
    burst: int = Field(ge=1)


class Guards(BaseModel):
    """The protections in front of a deployment's models; each is off or permissive by
    default except ``auth``, which follows the server's bind address (``auto``)."""

    model_config = _FROZEN

    auth: Literal["auto", "on", "off"] = "auto"
    rate_limit_per_key: RateLimit | None = None
    rate_limit_per_deployment: RateLimit | None = None
    output: Literal["full", "label", "top_k", "rounded"] = "full"
    top_k: int = Field(default=1, ge=1)
    digits: int = Field(default=2, ge=0, le=15)
    atypical: Literal["off", "log", "flag", "reject"] = "off"
    atypical_threshold: float = Field(default=0.99, gt=0, lt=1)
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    max_batch_size: int = Field(default=32, ge=1, le=1_000_000)
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=60_000, allow_inf_nan=False)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1)


class DeploymentSpec(BaseModel):
    """What a user writes: the members, how answers combine, guards and preprocessing."""

    model_config = _FROZEN

    members: tuple[Member, ...]
    combine: Combine = "none"
    guards: Guards = Guards()
    preprocessing: str | None = None

    @field_validator("preprocessing")
    @classmethod
    def _preprocessing_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("models:/"):
            raise ValueError(
                f"preprocessing {value!r} is not a registered model URI; register the fitted "
                "transformer and give its URI (models:/NAME/VERSION or models:/NAME@alias)"
            )
        return value

    @model_validator(mode="after")
    def _roles_fit(self) -> DeploymentSpec:
        primaries = [m for m in self.members if m.role == "primary"]
        canaries = [m for m in self.members if m.role == "canary"]
        seen: set[tuple[str, int]] = set()
        for m in self.members:
            if (m.model, m.version) in seen:
                raise ValueError(f"{m.ref} is listed twice; a model version may have only one role")
            seen.add((m.model, m.version))
        if not self.members:
            raise ValueError("members is empty; list at least the primary model version")
        if self.combine == "none":
            if len(primaries) != 1:
                found = ", ".join(m.ref for m in primaries) or "none"
                raise ValueError(
                    f"a deployment needs exactly one primary member (found {found}); give "
                    "the others role: canary with a weight, or role: shadow, or set combine: "
                    "vote|mean to make an ensemble of several primaries"
                )
        else:
            if len(primaries) < 2:
                raise ValueError(
                    f"combine: {self.combine} makes an ensemble of the primaries, which needs "
                    f"at least two primary members (found {len(primaries)}); add one or set "
                    "combine: none"
                )
            if canaries:
                raise ValueError(
                    f"an ensemble (combine: {self.combine}) answers with all its primaries, so "
                    "canaries cannot take a share of it; make them shadows or deploy the "
                    "ensemble change as a new revision"
                )
        total = sum(m.weight for m in canaries)
        if total >= 100:
            raise ValueError(
                f"canary weights add up to {total:g}%, leaving the primary nothing; they must "
                "add up to less than 100"
            )
        return self

    @property
    def primaries(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == "primary")

    @property
    def primary(self) -> Member:
        """The single primary (the first one of an ensemble)."""
        return self.primaries[0]

    @property
    def canaries(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == "canary")

    @property
    def shadows(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == "shadow")

    def to_json(self) -> dict[str, Any]:
        """The stored form: the spec with its format version."""
        return {"format_version": SPEC_FORMAT_VERSION, **self.model_dump(mode="json")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        """Read a stored spec (checked again: the store is not trusted to be well-formed)."""
        return parse_spec(data)


class Deployment(BaseModel):
    """One stored revision of a named deployment."""

    model_config = _FROZEN

    name: str
    revision: int
    spec: DeploymentSpec
    created_time: int
    created_by: str
    reason: str | None = None


# -- parsing user input -----------------------------------------------------------------------


def member_ref(text: str) -> tuple[str, int | str]:
    """Split ``iris:3``, ``iris@champion``, ``iris/3`` or ``models:/iris/3`` into the model
    name and its version reference (a number, ``"@alias"`` or ``"latest"``)."""
    raw = text.strip()
    body = raw.removeprefix("models:/")
    name, ref = body, ""
    for sep in ("@", ":", "/"):
        if sep in body:
            name, _, ref = body.partition(sep)
            ref = "@" + ref if sep == "@" else ref
            break
    if not ref:
        raise InvalidInput(
            f"model {text!r} names no version; write NAME:VERSION (iris:3), NAME@ALIAS "
            "(iris@champion) or models:/NAME/VERSION"
        )
    _names.model_name(name)
    kind, value = _names.version_ref(ref)
    if kind == "number":
        assert isinstance(value, int)
        return name, value
    return name, "latest" if kind == "latest" else f"@{value}"


def parse_spec(data: Any, *, resolve: Resolver | None = None, source: str = "") -> DeploymentSpec:
    """Check ``data`` (a mapping as read from YAML/JSON, or a spec) and build the spec.

    Members may carry version references (``"@champion"``, ``"latest"``, ``iris@champion``
    in ``model``); ``resolve`` turns them into numbers, and without it they are refused.
    Errors name the field path, e.g. ``members[1].weight``, prefixed by ``source``.
    """
    if isinstance(data, DeploymentSpec):
        return data
    prefix = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{prefix}a deployment spec must be a mapping with 'members' (and optionally "
            f"'combine', 'guards', 'preprocessing'), not {type(data).__name__}"
        )
    body = dict(data)
    version = body.pop("format_version", SPEC_FORMAT_VERSION)
    if version != SPEC_FORMAT_VERSION:
        raise InvalidInput(
            f"{prefix}deployment spec has format version {version!r}; this mloop reads "
            f"version {SPEC_FORMAT_VERSION}: upgrade mloop"
        )
    members = body.get("members")
    if isinstance(members, Sequence) and not isinstance(members, str | bytes):
        body["members"] = [
            _resolve_member(m, i, resolve, prefix) if isinstance(m, Mapping) else m
            for i, m in enumerate(members)
        ]
    try:
        return DeploymentSpec.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(prefix + _describe(exc), details={"errors": _locations(exc)}) from None


def _resolve_member(
    raw: Mapping[str, Any], index: int, resolve: Resolver | None, prefix: str
) -> dict[str, Any]:
    member = dict(raw)
    where = f"members[{index}]"
    model, version = member.get("model"), member.get("version")
    if isinstance(model, str) and any(s in model for s in "@:/"):
        if version is not None:
            raise InvalidInput(
                f"{prefix}{where}: model {model!r} already names a version; drop "
                f"version: {version!r} or write the bare model name"
            )
        try:
            name, ref = member_ref(model)
        except InvalidInput as exc:
            raise InvalidInput(f"{prefix}{where}.model: {exc.message}") from None
        member["model"], version = name, ref
    elif version is None and isinstance(model, str):
        raise InvalidInput(
            f"{prefix}{where}: model {model!r} names no version; add version: N, or write "
            f"{model}:N or {model}@ALIAS"
        )
    elif isinstance(version, str) and not _names.is_number(version.strip()):
        try:
            kind, value = _names.version_ref(version)
        except InvalidInput as exc:
            raise InvalidInput(f"{prefix}{where}.version: {exc.message}") from None
        version = "latest" if kind == "latest" else f"@{value}"
    if isinstance(version, str) and not _names.is_number(version.strip()):
        if resolve is None:
            raise InvalidInput(
                f"{prefix}{where}.version: {version!r} is a reference the registry must "
                "resolve; store the spec with create_deployment/update_deployment, or give "
                "a version number"
            )
        member["version"] = resolve(str(member["model"]), version)
    elif version is not None:
        member["version"] = version
    return member


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        path = _path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; check its spelling against docs/deployments.md"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif error["type"] == "literal_error":
            message = f"{error.get('input')!r} is not one of the choices: {message}"
        parts.append(f"{path}: {message}" if path else message)
    return "; ".join(parts)


def _locations(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": _path(e["loc"]), "message": str(e["msg"])} for e in exc.errors()]


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_NULLABLE_GUARDS = ("rate_limit_per_key", "rate_limit_per_deployment", "review_threshold")
_RATE_GUARDS = ("rate_limit_per_key", "rate_limit_per_deployment")


def guard_setting(text: str) -> tuple[str, Any]:
    """One ``key=value`` guard setting as typed on the command line: ``output=top_k``,
    ``top_k=3``, ``rate_limit_per_key=10:20`` (10 per second, bursts of 20), ``atypical=
    reject``, ``review_threshold=none``. The value is checked with the rest of the spec."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    fields = sorted(Guards.model_fields)
    if not sep or not key:
        raise InvalidInput(f"guard {text!r} is not KEY=VALUE; e.g. output=label, top_k=3")
    if key not in Guards.model_fields:
        raise InvalidInput(f"guard {key!r} does not exist; use one of: {', '.join(fields)}")
    if key in _NULLABLE_GUARDS and value.lower() in ("none", "off", ""):
        return key, None
    if key in _RATE_GUARDS:
        rate, colon, burst = value.partition(":")
        if not colon:
            raise InvalidInput(
                f"guard {key}={value!r} is not RATE:BURST; e.g. {key}=10:20 allows 10 requests "
                "a second with bursts of 20 (or none to turn it off)"
            )
        return key, {"rate": rate.strip(), "burst": burst.strip()}
    return key, value


def edit_spec(
    base: DeploymentSpec | None,
    *,
    primaries: Sequence[str] | None = None,
    canaries: Sequence[tuple[str, float]] | None = None,
    shadows: Sequence[str] | None = None,
    guards: Mapping[str, Any] | None = None,
    combine: str | None = None,
    preprocessing: str | None = None,
) -> dict[str, Any]:
    """A spec mapping (for :func:`parse_spec`) made from ``base`` with some parts replaced:
    each member list given replaces that role's members in ``base`` (an empty list removes
    them), ``guards`` are set over ``base``'s guards. Members are references such as
    ``iris:3`` or ``iris@champion``, resolved when the spec is stored."""
    data: dict[str, Any] = {} if base is None else base.model_dump(mode="json")
    members: list[dict[str, Any]] = list(data.get("members", ()))

    def replace(role: str, new: list[dict[str, Any]] | None) -> None:
        nonlocal members
        if new is not None:
            members = [m for m in members if m.get("role") != role] + new

    replace("primary", None if primaries is None else [{"model": r} for r in primaries])
    replace(
        "canary",
        None
        if canaries is None
        else [{"model": r, "role": "canary", "weight": w} for r, w in canaries],
    )
    replace(
        "shadow", None if shadows is None else [{"model": r, "role": "shadow"} for r in shadows]
    )
    order = {"primary": 0, "canary": 1, "shadow": 2}
    data["members"] = sorted(members, key=lambda m: order.get(m.get("role", "primary"), 0))
    if guards:
        data["guards"] = {**data.get("guards", {}), **guards}
    if combine is not None:
        data["combine"] = combine
    if preprocessing is not None:
        data["preprocessing"] = None if preprocessing.lower() == "none" else preprocessing
    return data


def read_spec_file(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """Read ``deployment.yaml`` (or ``.json``): the optional ``name`` it gives and the rest
    as the spec's raw mapping (for :func:`parse_spec`). YAML is parsed safely (no tags
    that build objects), and a parse error names the line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"deployment file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read deployment file {str(file)!r}: {exc}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{file.name}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"{file.name}: {line}not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{file.name}: the file must hold a mapping with 'members' (and optionally "
            "'name', 'combine', 'guards', 'preprocessing')"
        )
    name = data.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"{file.name}: name: must be a string, not {name!r}")
    return name, data


__all__ = [
    "COMBINES",
    "ROLES",
    "SPEC_FORMAT_VERSION",
    "Deployment",
    "DeploymentSpec",
    "Guards",
    "Member",
    "RateLimit",
    "Resolver",
    "Role",
    "edit_spec",
    "guard_setting",
    "member_ref",
    "parse_spec",
    "read_spec_file",
]
