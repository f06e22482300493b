"""Stage 7: shadow → canary → promote (or roll back), driven by the agent under live traffic.

The retraining pipeline started the rollout; from here each burst of client traffic is
followed by one ``mloop.agent.tick``, which judges the step in force on the window since
it began (candidate against primary: errors, p99 latency, answer divergence, accuracy
from feedback) and holds, moves on, promotes or rolls back — each move a deployment
revision with its reason, visible in ``mloop deploy history``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mloop.demo._stage_serve import traffic_phase
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.agent import Rollout, RolloutEvent
    from mloop.demo._narrator import Narrator
    from mloop.registry import ModelVersion

SWITCH_TIMEOUT_S = 15.0
MAX_BURSTS_PER_STEP = 4
SHADOW_WAIT_S = 90.0


class RolloutStuck(MloopError):
    """The rollout did not finish within the demo's bounded traffic."""


def roll_out(
    narrator: Narrator, result: DemoResult, size: DemoSize, url: str, candidate: ModelVersion
) -> None:
    """Stage 7: traffic and ticks until the rollout of ``candidate`` is decided."""
    from mloop import agent

    narrator.stage(
        7,
        f"Roll out {candidate.name}:{candidate.version}: shadow → canary → promote",
        "Each step is a deployment revision held for a window of live traffic; after each "
        "burst the agent's tick checks the candidate against the primary, then holds, "
        "moves on, promotes, or rolls back.",
    )
    rollout = _running(candidate)
    for event in agent.rollout_events(rollout.id):
        _say_event(narrator, result, event)
    bursts = 0
    while rollout.state == "running":
        if bursts >= MAX_BURSTS_PER_STEP * len(rollout.plan.steps):
            raise RolloutStuck(
                f"rollout {rollout.id} was still at step {rollout.step + 1} after {bursts} "
                f"bursts of traffic; see `mloop rollout status {rollout.id}`"
            )
        bursts += 1
        step = rollout.plan.steps[rollout.step]
        _wait_until_served(url, size.poll_interval_s)
        traffic_phase(
            narrator,
            result,
            size,
            url,
            phase=f"rollout burst {bursts} ({step.describe()})",
            era="after",
            requests=size.requests_per_rollout_step,
            seed=10 + bursts,
        )
        if step.is_shadow:
            _wait_for_shadow_answers(narrator, rollout)
        report = agent.tick()
        for error in report.errors:
            narrator.say(f"[red]agent error[/] {error}")
        for event in report.events:
            _say_event(narrator, result, event)
        rollout = agent.get_rollout(rollout.id)
        if not report.events and rollout.state == "running":
            narrator.say(f"holding {step.describe()}: {_check_summary(rollout)}")
    if rollout.state == "succeeded":
        result.rollout_outcome = f"promoted {rollout.candidate}"
        result.champion = rollout.candidate
    else:
        result.rollout_outcome = f"{rollout.state.replace('_', ' ')}: {rollout.reason}"
    _wait_until_served(url, size.poll_interval_s)
    traffic_phase(
        narrator,
        result,
        size,
        url,
        phase="after the rollout",
        era="after",
        requests=size.requests_per_rollout_step,
        seed=30,
    )


def _wait_for_shadow_answers(narrator: Narrator, rollout: Rollout) -> None:
    """Shadows answer in a background process at the lowest CPU priority, so their log
    records trail the live answers (by seconds on a busy machine; the first ones also wait
    for that process to start). Until the shadow has answered as many requests as the
    plan's checks need, more traffic would prove nothing: wait for the log instead."""
    from mloop.monitoring import window_metrics

    needed = rollout.plan.checks.min_requests
    key = (rollout.candidate_model, rollout.candidate_version, "shadow")
    deadline = time.monotonic() + SHADOW_WAIT_S
    with narrator.progress("shadow answers reaching the log", needed) as advance:
        seen = 0
        while time.monotonic() < deadline:
            now = int(time.time() * 1000)
            found = window_metrics(rollout.deployment, rollout.step_started_ms, now).get(key)
            count = min(found.count if found else 0, needed)
            advance(count - seen)
            seen = count
            if count >= needed:
                return
            time.sleep(0.5)


def _running(candidate: ModelVersion) -> Rollout:
    from mloop import agent

    for rollout in agent.list_rollouts(DEPLOYMENT):
        if (rollout.candidate_model, rollout.candidate_version) == (
            candidate.name,
            candidate.version,
        ):
            return rollout
    raise RolloutStuck(
        f"no rollout of {candidate.name}:{candidate.version} on {DEPLOYMENT}; the retraining "
        "pipeline should have started one (see `mloop rollout list`)"
    )


def _say_event(narrator: Narrator, result: DemoResult, event: RolloutEvent) -> None:
    style = {"promoted": "bold green", "rolled_back": "bold red", "failed": "bold red"}
    text = f"[{style.get(event.kind, 'bold')}]{event.kind}[/]: {event.message}"
    result.rollout_steps.append(f"{event.kind}: {event.message}")
    narrator.say(text)


def _check_summary(rollout: Rollout) -> str:
    check = rollout.last_check or {}
    shortfall = check.get("shortfall")
    if shortfall:
        return str(shortfall)
    return "the window is not over yet"


def _wait_until_served(url: str, poll_s: float) -> None:
    """Until the server has loaded the deployment's current revision: it polls the
    store every ``poll_s`` seconds. The model metadata lists the versions served; a
    canary's weight can change without that list changing, so one more poll is allowed."""
    import httpx

    from mloop.serving import get_deployment

    spec = get_deployment(DEPLOYMENT).spec
    expected = {str(m.version) for m in spec.members}
    deadline = time.monotonic() + SWITCH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            versions = httpx.get(f"{url}/v2/models/{DEPLOYMENT}", timeout=5).json()["versions"]
        except (httpx.HTTPError, KeyError, ValueError):
            versions = []
        if {str(v) for v in versions} == expected:
            time.sleep(2 * poll_s)
            return
        time.sleep(poll_s / 2)
