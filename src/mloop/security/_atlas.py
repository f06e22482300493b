"""The MITRE ATLAS coverage audit: every mitigation AML.M0000–M0019, the control mloop ships
for it, and whether that control is on — for the registry (settings and trust policies)
and for one deployment (its guards and the models it serves).

The table is data (:data:`MITIGATIONS`), so the docs, the CLI and the tests read the same
rows. States say what is true today: ``on``, ``partial`` (on for some of what it covers),
``off`` (available but not turned on — the row says how), ``planned`` (not built yet) and
``n/a`` (outside what a platform can do, with the reason). ``--require`` gates on ``on``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.registry import ModelVersion, TrustPolicy
    from mloop.serving._spec import Deployment
    from mloop.store import MetadataStore

State = Literal["on", "partial", "off", "planned", "n/a"]
STATES: tuple[State, ...] = ("on", "partial", "off", "planned", "n/a")


@dataclass(frozen=True)
class Mitigation:
    """One ATLAS mitigation and mloop's answer to it."""

    id: str
    name: str
    control: str
    how: str


MITIGATIONS: tuple[Mitigation, ...] = (
    Mitigation("AML.M0000", "Limit Release of Public Information",
               "none: what an organisation publishes about its ML stack is its own policy",
               "—"),
    Mitigation("AML.M0001", "Limit Model Artifact Release",
               "model files stay in the artifact store behind read roles; the inference "
               "server answers with predictions and never serves weights",
               "server_auth on (MLOOP_SERVER_AUTH=on, or auto beyond loopback)"),
    Mitigation("AML.M0002", "Passive ML Output Obfuscation",
               "guards.output: label only, top-k classes, or probabilities rounded to N digits",
               "deployment guards: output: label|top_k|rounded (top_k, digits)"),
    Mitigation("AML.M0003", "Model Hardening",
               "none built in: adversarial training and robust losses are the model "
               "author's choice; the run records how a model was trained",
               "—"),
    Mitigation("AML.M0004", "Restrict Number of ML Model Queries",
               "token-bucket rate limits per API key and per deployment (429 + Retry-After), "
               "shared across replicas through Redis",
               "guards.rate_limit_per_key / rate_limit_per_deployment; MLOOP_REDIS_URL"),
    Mitigation("AML.M0005", "Control Access to ML Models and Data at Rest",
               "API keys (salted scrypt hashes) and roles scoped per model and experiment on "
               "every tracking-server endpoint; encryption at rest (M0012)",
               "server_auth on; mloop users create / grant"),
    Mitigation("AML.M0006", "Use Ensemble Methods",
               "a deployment may combine several model versions by vote or mean",
               "deployment spec: combine: vote|mean with several primaries"),
    Mitigation("AML.M0007", "Sanitize Training Data",
               "mloop data sanitize: duplicates, label flips, outliers, deny-list; the "
               "cleaned data registers as a new dataset version recording what was removed",
               "mloop data sanitize DATA@N --register-clean NAME; train on that version"),
    Mitigation("AML.M0008", "Validate ML Model",
               "planned: the evaluation gate (champion/challenger per slice) and drift watch "
               "(issue 6); today trust policies can require an evaluation (refusing every "
               "promotion until evaluations exist) and mloop data drift compares data",
               "mloop models policy NAME --require-evaluation (once the gate lands)"),
    Mitigation("AML.M0009", "Use Multi-Modal Sensors",
               "none: a property of the application's inputs, not of the platform",
               "—"),
    Mitigation("AML.M0010", "Input Restoration",
               "none built in: a deployment's server-side preprocessing (M0017) can host an "
               "input-cleaning transformer",
               "—"),
    Mitigation("AML.M0011", "Restrict Library Loading",
               "load_model imports only allow-listed globals (skops allow-list, restricted "
               "unpickler); unsafe formats are refused, never executed",
               "always on"),
    Mitigation("AML.M0012", "Encrypt Sensitive Information",
               "artifacts encrypted at rest with AES-GCM under a key-encryption key",
               "MLOOP_KEK_FILE=… (mloop kek …)"),
    Mitigation("AML.M0013", "Code Signing",
               "model packages signed (OpenSSF model-signing manifest); a trust policy "
               "requires a signature from listed keys on every load and promotion",
               "mloop models sign …; mloop models policy NAME --require-signature "
               "--trusted-key KEY.pem"),
    Mitigation("AML.M0014", "Verify ML Artifacts",
               "every file's SHA-256 checked against the manifest on every load; a "
               "registered version pins its manifest digest",
               "always on"),
    Mitigation("AML.M0015", "Adversarial Input Detection",
               "atypical-input detection against the training data: out-of-range values, "
               "unseen categories, robust Mahalanobis outlier score; log, flag or reject",
               "guards.atypical: log|flag|reject"),
    Mitigation("AML.M0016", "Vulnerability Scanning",
               "mloop models scan (pickle opcodes, archives, allow-list); a trust policy can "
               "require a clean scan before promotion",
               "mloop models policy NAME --require-clean-scan"),
    Mitigation("AML.M0017", "Model Distribution Methods",
               "models run server-side behind the inference server; a deployment can carry "
               "the preprocessing fitted at training time so features are computed there",
               "deployment spec: preprocessing: models:/…"),
    Mitigation("AML.M0018", "User Training",
               "none: training people is outside a platform's reach (docs/security.md helps)",
               "—"),
    Mitigation("AML.M0019", "Control Access to ML Models and Data in Production",
               "API keys on the inference server, checked for the predict right on the "
               "deployment (scope deployment:NAME)",
               "guards.auth on (or auto beyond loopback); mloop users grant USER ROLE "
               "--deployment NAME"),
)  # fmt: skip
_BY_ID = {m.id: m for m in MITIGATIONS}


@dataclass(frozen=True)
class ControlState:
    """Whether a control is on for one scope, and why."""

    state: State
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state, "why": self.why}


@dataclass(frozen=True)
class AuditRow:
    mitigation: Mitigation
    registry: ControlState
    deployment: ControlState | None

    @property
    def effective(self) -> ControlState:
        """The deployment's state where it applies, else the registry's."""
        if self.deployment is not None and self.deployment.state != "n/a":
            return self.deployment
        return self.registry

    def to_dict(self) -> dict[str, Any]:
        m = self.mitigation
        return {
            "id": m.id,
            "name": m.name,
            "control": m.control,
            "how": m.how,
            "registry": self.registry.to_dict(),
            "deployment": None if self.deployment is None else self.deployment.to_dict(),
            "effective": self.effective.state,
        }


@dataclass(frozen=True)
class AuditReport:
    """The audit of the registry and, when one was named, a deployment."""

    deployment: str | None
    revision: int | None
    rows: tuple[AuditRow, ...]
    required: tuple[str, ...] = field(default=())

    def row(self, mitigation: str) -> AuditRow:
        wanted = normalize_id(mitigation)
        return next(r for r in self.rows if r.mitigation.id == wanted)

    @property
    def missing(self) -> list[str]:
        """The required mitigations whose control is not on."""
        return [m for m in self.required if self.row(m).effective.state != "on"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "revision": self.revision,
            "required": list(self.required),
            "missing": self.missing,
            "mitigations": [r.to_dict() for r in self.rows],
        }


def normalize_id(text: str) -> str:
    """``M0004``, ``aml.m0004`` or ``AML.M0004`` → ``AML.M0004``; anything else is refused."""
    cleaned = text.strip().upper()
    if not cleaned.startswith("AML."):
        cleaned = "AML." + cleaned
    if cleaned not in _BY_ID:
        raise InvalidInput(
            f"{text.strip()!r} is not an ATLAS mitigation mloop knows; use AML.M0000 … "
            "AML.M0019 (or M0000 … M0019)"
        )
    return cleaned


def parse_required(values: Iterable[str]) -> tuple[str, ...]:
    """``--require`` values: comma-separated and/or repeated, in order, without repeats."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                ident = normalize_id(part)
                if ident not in out:
                    out.append(ident)
    return tuple(out)


# -- facts ----------------------------------------------------------------------------------


@dataclass
class _Facts:
    """What the audit reads, gathered once."""

    settings: Settings
    policies: dict[str, TrustPolicy | None]
    versions: list[ModelVersion]
    sanitized: dict[str, bool]  # dataset ref → registered by mloop data sanitize
    deployment: Any = None
    members: list[ModelVersion] = field(default_factory=list)


def _gather(deployment: Any, settings: Settings, store: MetadataStore | None) -> _Facts:
    import mloop.registry as registry

    models = registry.list_registered_models(store=store)
    policies = {m.name: registry.get_trust_policy(m.name, store=store) for m in models}
    versions = [
        v
        for m in models
        for v in registry.list_model_versions(m.name, include_archived=False, store=store)
    ]
    members: list[ModelVersion] = []
    if deployment is not None:
        for member in deployment.spec.members:
            mv = registry.get_model_version(member.model, member.version, store=store)
            members.append(mv)
            if mv.name not in policies:
                policies[mv.name] = registry.get_trust_policy(mv.name, store=store)
    refs = {ref for v in [*versions, *members] for ref in v.dataset_versions}
    return _Facts(settings, policies, versions, _sanitized(refs), deployment, members)


def _sanitized(refs: Iterable[str]) -> dict[str, bool]:
    from mloop.data import get_dataset_version
    from mloop.errors import NotFound

    out: dict[str, bool] = {}
    for ref in refs:
        try:
            out[ref] = "sanitized_from" in get_dataset_version(ref).provenance
        except NotFound:
            out[ref] = False
    return out


def _load_deployment(name: str, store: MetadataStore | None) -> Deployment:
    from mloop.serving._deployments import get_deployment, implicit_deployment

    if name.startswith("models:/"):  # what `mloop serve models:/…` would serve
        return implicit_deployment(name, store=store)
    return get_deployment(name, store=store)


# -- the audit ------------------------------------------------------------------------------


def audit(
    deployment: str | Deployment | None = None,
    *,
    require: Iterable[str] = (),
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> AuditReport:
    """Audit the registry and, given a deployment (a name, a ``models:/…`` URI for the
    implicit deployment ``mloop serve`` would make of it, or a ``Deployment``), that
    deployment. ``require`` lists mitigations whose control must be on; the report's
    ``missing`` names those that are not."""
    required = parse_required(require)
    if settings is None:
        from mloop.config import get_settings

        settings = get_settings()
    if isinstance(deployment, str):
        deployment = _load_deployment(deployment, store)
    facts = _gather(deployment, settings, store)
    rows = tuple(
        AuditRow(
            m,
            _REGISTRY[m.id](facts),
            None if deployment is None else _DEPLOYMENT[m.id](facts),
        )
        for m in MITIGATIONS
    )
    return AuditReport(
        deployment=None if deployment is None else str(deployment.name),
        revision=None if deployment is None else int(deployment.revision),
        rows=rows,
        required=required,
    )


def _na(why: str) -> Any:
    return lambda facts: ControlState("n/a", why)


def _server_auth(facts: _Facts) -> ControlState:
    mode = facts.settings.server_auth
    if mode == "on":
        return ControlState("on", "server_auth=on: every server requires an API key")
    if mode == "auto":
        return ControlState(
            "on",
            "server_auth=auto: API keys required whenever a server listens beyond loopback "
            "(a loopback-only server trusts local users)",
        )
    return ControlState("off", "server_auth=off: servers answer without an API key")


def _guards(facts: _Facts) -> Any:
    return facts.deployment.spec.guards


def _deployment_auth(facts: _Facts) -> ControlState:
    mode = _guards(facts).auth
    if mode == "on":
        return ControlState("on", "guards.auth=on: every request needs an API key with predict")
    if mode == "auto":
        state = _server_auth(facts)
        if state.state == "off":
            return ControlState("off", "guards.auth=auto and server_auth=off: no API key needed")
        return ControlState(
            "on", "guards.auth=auto: API keys with predict required beyond loopback"
        )
    return ControlState("off", "guards.auth=off: anyone who reaches the server may predict")


def _output(facts: _Facts) -> ControlState:
    g = _guards(facts)
    if g.output == "label":
        return ControlState("on", "guards.output=label: the class only")
    if g.output == "top_k":
        return ControlState("on", f"guards.output=top_k: the {g.top_k} best classes")
    if g.output == "rounded":
        return ControlState("on", f"guards.output=rounded: {g.digits} digits")
    return ControlState("off", "guards.output=full: responses carry every score")


def _rate_limits(facts: _Facts) -> ControlState:
    g = _guards(facts)
    parts = []
    if g.rate_limit_per_key is not None:
        r = g.rate_limit_per_key
        parts.append(f"per key {r.rate:g}/s burst {r.burst}")
    if g.rate_limit_per_deployment is not None:
        r = g.rate_limit_per_deployment
        parts.append(f"per deployment {r.rate:g}/s burst {r.burst}")
    if not parts:
        return ControlState("off", "no rate limit in guards")
    where = (
        "shared across replicas in Redis"
        if facts.settings.redis_url
        else "per process (set MLOOP_REDIS_URL to share across replicas)"
    )
    return ControlState("on", f"{', '.join(parts)}; {where}")


def _ensemble(facts: _Facts) -> ControlState:
    spec = facts.deployment.spec
    primaries = [m for m in spec.members if m.role == "primary"]
    if spec.combine != "none" and len(primaries) > 1:
        return ControlState("on", f"combine={spec.combine} over {len(primaries)} versions")
    return ControlState("off", "one model version answers each request")


def _sanitization(versions: Sequence[ModelVersion], facts: _Facts) -> ControlState:
    if not versions:
        return ControlState("n/a", "no registered model versions")
    clean = [
        v
        for v in versions
        if v.dataset_versions and all(facts.sanitized.get(r, False) for r in v.dataset_versions)
    ]
    label = ", ".join(f"{v.name}/{v.version}" for v in versions[:3])
    if len(clean) == len(versions):
        return ControlState("on", f"trained only on sanitized dataset versions ({label})")
    unknown = [v for v in versions if not v.dataset_versions]
    detail = f"{len(clean)} of {len(versions)} versions trained only on sanitized data"
    if unknown:
        detail += f"; {len(unknown)} record no training data"
    return ControlState("partial" if clean else "off", detail)


def _policy_count(facts: _Facts, names: Sequence[str], attribute: str, what: str) -> ControlState:
    if not names:
        return ControlState("n/a", "no registered models")
    on = [n for n in names if getattr(facts.policies.get(n), attribute, False)]
    listed = ", ".join(on[:3]) or "none"
    if len(on) == len(names):
        return ControlState("on", f"every model's trust policy requires {what} ({listed})")
    state: State = "partial" if on else "off"
    return ControlState(state, f"{len(on)} of {len(names)} models require {what} ({listed})")


def _member_names(facts: _Facts) -> list[str]:
    return sorted({mv.name for mv in facts.members})


def _encryption(facts: _Facts) -> ControlState:
    if facts.settings.kek_file:
        return ControlState("on", "kek_file set: new artifacts are stored encrypted")
    return ControlState("off", "no kek_file: artifacts are stored in the clear")


def _preprocessing(facts: _Facts) -> ControlState:
    spec = facts.deployment.spec
    if spec.preprocessing:
        return ControlState(
            "on", f"served server-side; features computed there by {spec.preprocessing}"
        )
    return ControlState(
        "partial", "served server-side; clients send ready-made features (no preprocessing)"
    )


def _atypical(facts: _Facts) -> ControlState:
    g = _guards(facts)
    if g.atypical == "off":
        return ControlState("off", "guards.atypical=off")
    return ControlState(
        "on", f"guards.atypical={g.atypical} above the {g.atypical_threshold:g} training quantile"
    )


_AT_REST = "an at-rest control: see the registry column"
_PLANNED_M0008 = ControlState("planned", "the evaluation gate and drift watch are not built yet")

_REGISTRY: dict[str, Any] = {
    "AML.M0000": _na("organisational policy, outside mloop"),
    "AML.M0001": _server_auth,
    "AML.M0002": _na("an inference-server control"),
    "AML.M0003": _na("a training-time choice of the model author"),
    "AML.M0004": _na("an inference-server control"),
    "AML.M0005": _server_auth,
    "AML.M0006": _na("a deployment control"),
    "AML.M0007": lambda f: _sanitization(f.versions, f),
    "AML.M0008": lambda f: _PLANNED_M0008,
    "AML.M0009": _na("a property of the application's inputs"),
    "AML.M0010": _na("not built in"),
    "AML.M0011": lambda f: ControlState("on", "allow-list loading; cannot be turned off"),
    "AML.M0012": _encryption,
    "AML.M0013": lambda f: _policy_count(f, sorted(f.policies), "require_signature", "a signature"),
    "AML.M0014": lambda f: ControlState("on", "digests checked on every load; always on"),
    "AML.M0015": _na("an inference-server control"),
    "AML.M0016": lambda f: _policy_count(
        f, sorted(f.policies), "require_clean_scan", "a clean scan"
    ),
    "AML.M0017": _na("a deployment control"),
    "AML.M0018": _na("people, not software"),
    "AML.M0019": _server_auth,
}
_DEPLOYMENT: dict[str, Any] = {
    "AML.M0000": _na("organisational policy, outside mloop"),
    "AML.M0001": lambda f: ControlState("on", "the inference server never serves model files"),
    "AML.M0002": _output,
    "AML.M0003": _na("a training-time choice of the model author"),
    "AML.M0004": _rate_limits,
    "AML.M0005": _na(_AT_REST),
    "AML.M0006": _ensemble,
    "AML.M0007": lambda f: _sanitization(f.members, f),
    "AML.M0008": lambda f: _PLANNED_M0008,
    "AML.M0009": _na("a property of the application's inputs"),
    "AML.M0010": _na("not built in"),
    "AML.M0011": lambda f: ControlState("on", "models load through the allow-list"),
    "AML.M0012": _na(_AT_REST),
    "AML.M0013": lambda f: _policy_count(f, _member_names(f), "require_signature", "a signature"),
    "AML.M0014": lambda f: ControlState("on", "every served package verified on load"),
    "AML.M0015": _atypical,
    "AML.M0016": lambda f: _policy_count(f, _member_names(f), "require_clean_scan", "a clean scan"),
    "AML.M0017": _preprocessing,
    "AML.M0018": _na("people, not software"),
    "AML.M0019": _deployment_auth,
}

__all__ = [
    "MITIGATIONS",
    "STATES",
    "AuditReport",
    "AuditRow",
    "ControlState",
    "Mitigation",
    "audit",
    "normalize_id",
    "parse_required",
]
