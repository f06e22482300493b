"""The deployment spec of each rollout step, derived from the spec the rollout started on.

The rollout owns only the candidate's place in the deployment: every other member, the
guards and the preprocessing stay as they were. The *base* spec — the deployment without
the candidate — is what a rollback returns to; a step adds the candidate as a shadow or a
canary; the last step makes it the one primary (other shadows stay).
"""

from __future__ import annotations

from mloop.agent._plans import Step
from mloop.errors import Conflict, InvalidInput
from mloop.serving._spec import DeploymentSpec, Member


def base_spec(current: DeploymentSpec, deployment: str, model: str, version: int) -> DeploymentSpec:
    """``current`` without the candidate, checked to be a deployment a rollout can drive:
    one primary, no canary (their traffic would mix with the candidate's)."""
    if current.combine != "none" or len(current.primaries) != 1:
        raise Conflict(
            f"deployment {deployment!r} answers with an ensemble ({current.combine}); a "
            "rollout replaces one primary, so roll out to a deployment with a single primary"
        )
    primary = current.primary
    if (primary.model, primary.version) == (model, version):
        raise InvalidInput(
            f"{model}:{version} is already the primary of {deployment!r}; nothing to roll out"
        )
    canaries = [m for m in current.canaries if (m.model, m.version) != (model, version)]
    if canaries:
        listed = ", ".join(f"{m.ref} ({m.weight:g}%)" for m in canaries)
        raise Conflict(
            f"deployment {deployment!r} has a canary already ({listed}); finish or remove it "
            f"first (`mloop deploy update {deployment} --no-canary`)"
        )
    members = tuple(m for m in current.members if (m.model, m.version) != (model, version))
    return _checked(current.model_copy(update={"members": members}))


def step_spec(base: DeploymentSpec, model: str, version: int, step: Step) -> DeploymentSpec:
    """The deployment while ``step`` is in force."""
    if step.is_full:
        others = tuple(m for m in base.members if m.role == "shadow")
        members = (Member(model=model, version=version), *others)
    elif step.is_shadow:
        members = (*base.members, Member(model=model, version=version, role="shadow"))
    else:
        assert isinstance(step.traffic, float)
        candidate = Member(model=model, version=version, role="canary", weight=step.traffic)
        members = (*base.members, candidate)
    return _checked(base.model_copy(update={"members": members}))


def _checked(spec: DeploymentSpec) -> DeploymentSpec:
    """A copy built by ``model_copy`` is not validated; build it again from its JSON."""
    return DeploymentSpec.from_json(spec.to_json())


__all__ = ["base_spec", "step_spec"]
