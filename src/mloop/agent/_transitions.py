"""Applying a claimed rollout transition: a step, the promotion, or a rollback.

The caller has claimed the transition on the rollout row (:func:`._rollout_store.claim`);
here the deployment is changed and the transition completed. The deployment is only ever
changed from a revision this rollout made, or the one it started from, and only that
exact revision (``expected_revision``): a change someone else made stops the rollout
without being overwritten (:class:`ForeignChange`), a change the deployment refuses (an
archived version) fails it and restores the deployment (:class:`RefusedChange`), and a
race with another agent over the same transition ends in adopting its result — so no
revision is ever made twice. The promotion's alias moves only in the transaction that
completes the rollout as ``succeeded``, so no other ending leaves it moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

from mloop.agent import _rollout_store as rs
from mloop.agent._lease import Lease
from mloop.agent._plans import Step
from mloop.agent._rollout_store import LostRace, Rollout, RolloutEvent
from mloop.agent._step_specs import step_spec
from mloop.errors import Conflict
from mloop.serving._spec import DeploymentSpec
from mloop.store import MetadataStore

if TYPE_CHECKING:
    from mloop.registry._promotion import PreparedMove

_APPLY_ATTEMPTS = 5
_MAX_REASON = 2000


class ForeignChange(Conflict):
    """The deployment was changed outside the rollout; the rollout leaves it alone."""


class RefusedChange(Conflict):
    """The deployment refused the step's spec (an archived version, a removed model)."""


_ACTIONS = {"rolled_back": "rollout.rollback", "aborted": "rollout.abort", "failed": "rollout.fail"}


def drive(
    db: MetadataStore, claimed: Rollout, *, now_ms: int, fence: Lease | None, actor: str
) -> list[RolloutEvent]:
    """Carry out ``claimed.target`` and record it; a lost race changes nothing more."""
    target = claimed.target
    assert target is not None
    try:
        if target["kind"] == "step":
            return [_step(db, claimed, int(target["step"]), now_ms, fence, actor)]
        if target["kind"] == "promote":
            return _promote(db, claimed, now_ms, fence, actor)
        return [_rollback(db, claimed, now_ms, fence, actor)]
    except ForeignChange as exc:
        return [_fail(db, claimed, str(exc), now_ms, fence, actor)]
    except RefusedChange as exc:
        reason = f"the deployment refused the change: {exc}"
        target = {"kind": "rollback", "outcome": "failed", "reason": reason}
        try:
            reclaimed = rs.claim(db, claimed, target, now_ms=now_ms, fence=fence)
            return [_rollback(db, reclaimed, now_ms, fence, actor)]
        except LostRace:
            return []
    except LostRace:
        return []


def _tag(rollout: Rollout) -> str:
    return f"rollout {rollout.id} "


def _apply(
    db: MetadataStore, claimed: Rollout, desired: DeploymentSpec, reason: str, who: str
) -> int:
    """Make ``desired`` the deployment's spec unless it is already; the revision in force.

    Only a revision this rollout made (or the one it started from) is replaced, and only
    that exact revision (``expected_revision``): a change made by someone else raises
    :class:`ForeignChange`; a race with another agent over the same transition ends in
    adopting its result, or in :class:`LostRace` if the rollout moved on.
    """
    from mloop.serving._deployments import get_deployment, update_deployment

    wanted = desired.to_json()
    if len(reason) > _MAX_REASON:  # the deployment keeps at most 2,000 characters
        reason = reason[: _MAX_REASON - 1] + "…"
    for _ in range(_APPLY_ATTEMPTS):
        current = get_deployment(claimed.deployment, store=db)
        if current.spec.to_json() == wanted:
            return current.revision
        made_by_us = (current.reason or "").startswith(_tag(claimed))
        if current.revision != claimed.deployment_revision and not made_by_us:
            why = f": {current.reason}" if current.reason else ""
            raise ForeignChange(
                f"deployment {claimed.deployment!r} was changed outside the rollout (revision "
                f"{current.revision} by {current.created_by}{why}); the rollout stopped and "
                "left it as it is"
            )
        try:
            return update_deployment(
                claimed.deployment,
                desired,
                reason=reason,
                expected_revision=current.revision,
                actor=who,
                store=db,
            ).revision
        except Conflict as exc:
            if get_deployment(claimed.deployment, store=db).revision == current.revision:
                raise RefusedChange(str(exc)) from exc  # not a race: the change itself
            if rs.version_of(db, claimed.id) != claimed.version:
                raise LostRace(f"rollout {claimed.id} moved on meanwhile") from None
    raise Conflict(
        f"deployment {claimed.deployment!r} kept changing while rollout {claimed.id} applied "
        "a step; the next tick tries again"
    )


def _base(claimed: Rollout) -> DeploymentSpec:
    return DeploymentSpec.from_json(claimed.base_spec)


def _step(
    db: MetadataStore, claimed: Rollout, index: int, now: int, fence: Lease | None, who: str
) -> RolloutEvent:
    step: Step = claimed.plan.steps[index]
    desired = step_spec(_base(claimed), claimed.candidate_model, claimed.candidate_version, step)
    label = f"step {index + 1}/{claimed.steps}: {step.describe()}"
    revision = _apply(db, claimed, desired, f"rollout {claimed.id} {label}", who)
    return rs.complete(
        db,
        claimed,
        {
            "step": index,
            "step_started_ms": now,
            "deployment_revision": revision,
            "last_check": None,
        },
        kind="step",
        message=f"{label} for {step.window} (revision {revision})",
        detail={"check": (claimed.target or {}).get("check")},
        actor=who,
        action="rollout.step",
        now_ms=now,
        fence=fence,
    )


class _AliasRefused(Exception):
    """The registry refused the promotion's alias move inside the completing transaction
    (which it undoes); not a :class:`Conflict`, so a lost race or fence still reads as one."""


class _PolicyChanged(Exception):
    """The model's trust policy changed between preparing the alias move and making it."""


def _promote(
    db: MetadataStore, claimed: Rollout, now: int, fence: Lease | None, who: str
) -> list[RolloutEvent]:
    """The last step: the candidate becomes the primary and takes the plan's alias. A
    promotion the registry would refuse (a blessing the policy requires and the candidate
    lacks, missing approvals) is found before the deployment changes, and ends the rollout
    as failed with the registry's reasons, the deployment back as it was.

    The alias moves in the very transaction that records the rollout as ``succeeded``
    (after its version and fencing checks), never before: a promotion that loses a race
    (a user's abort), is fenced out (a deposed leader) or dies before it is recorded has
    moved no alias, so whatever the rollout ends as, ``@alias`` points at the candidate
    exactly when it ``succeeded``."""
    from mloop.errors import PolicyViolation
    from mloop.registry._promotion import prepare_alias_move, promotion_blockers

    alias = claimed.plan.promote_alias
    model, version = claimed.candidate_model, claimed.candidate_version
    refusal = None
    if alias is not None:
        blockers = promotion_blockers(model, alias, version, store=db)
        if blockers:
            refusal = f"promotion to @{alias} refused: " + "; ".join(blockers)
    if refusal is None:
        n = claimed.steps
        full = claimed.plan.steps[-1]
        desired = step_spec(_base(claimed), model, version, full)
        label = f"step {n}/{n}: 100%, {model}:{version} is the primary"
        revision = _apply(db, claimed, desired, f"rollout {claimed.id} {label}", who)
        moved = f" and @{alias}" if alias else ""
        for _ in range(_APPLY_ATTEMPTS):
            try:
                prepared = (
                    None if alias is None else prepare_alias_move(model, alias, version, store=db)
                )
            except (PolicyViolation, Conflict) as exc:
                refusal = f"promotion to @{alias} refused: {exc}"
                break

            def move_alias(conn: Connection, prepared: PreparedMove | None = prepared) -> None:
                if prepared is None:
                    return
                try:
                    if prepared.apply(conn, who) is None:
                        raise _PolicyChanged()
                except (PolicyViolation, Conflict) as exc:
                    raise _AliasRefused(str(exc)) from exc

            try:
                return [
                    rs.complete(
                        db,
                        claimed,
                        {
                            "state": "succeeded",
                            "step": n - 1,
                            "step_started_ms": now,
                            "deployment_revision": revision,
                            "reason": f"{model}:{version} is the primary{moved}",
                            "finished_ms": now,
                        },
                        kind="promoted",
                        message=f"{label}{moved} (revision {revision})",
                        detail={"check": (claimed.target or {}).get("check"), "alias": alias},
                        actor=who,
                        action="rollout.promote",
                        now_ms=now,
                        fence=fence,
                        also=move_alias,
                    )
                ]
            except _PolicyChanged:
                continue
            except _AliasRefused as exc:
                refusal = f"promotion to @{alias} refused: {exc}"
                break
        else:
            raise Conflict(
                f"the trust policy of {model!r} kept changing while rollout {claimed.id} "
                f"promoted {model}:{version}; the next tick tries again"
            )
    target = {"kind": "rollback", "outcome": "failed", "reason": refusal}
    reclaimed = rs.claim(db, claimed, target, now_ms=now, fence=fence)
    return [_rollback(db, reclaimed, now, fence, who)]


def _rollback(
    db: MetadataStore, claimed: Rollout, now: int, fence: Lease | None, who: str
) -> RolloutEvent:
    target = claimed.target or {}
    outcome, reason = str(target["outcome"]), str(target["reason"])
    revision = claimed.deployment_revision
    words = outcome.replace("_", " ")
    try:
        revision = _apply(
            db, claimed, _base(claimed), f"rollout {claimed.id} {words}: {reason}", who
        )
    except ForeignChange as exc:
        reason = f"{reason}; {exc}"
    except RefusedChange as exc:
        outcome, reason = "failed", f"{reason}; returning to the spec it started from failed: {exc}"
    return rs.complete(
        db,
        claimed,
        {
            "state": outcome,
            "deployment_revision": revision,
            "reason": reason,
            "finished_ms": now,
        },
        kind=outcome,
        message=f"{outcome.replace('_', ' ')}: {reason} (revision {revision}, "
        f"{claimed.primary} is the primary)",
        detail={"check": target.get("check")},
        actor=who,
        action=_ACTIONS[outcome],
        now_ms=now,
        fence=fence,
    )


def _fail(
    db: MetadataStore, claimed: Rollout, reason: str, now: int, fence: Lease | None, who: str
) -> RolloutEvent:
    return rs.complete(
        db,
        claimed,
        {"state": "failed", "reason": reason, "finished_ms": now},
        kind="failed",
        message=f"failed: {reason}",
        detail={},
        actor=who,
        action="rollout.fail",
        now_ms=now,
        fence=fence,
    )


__all__ = ["ForeignChange", "RefusedChange", "drive"]
