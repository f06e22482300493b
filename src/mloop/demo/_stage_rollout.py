"""Stage 7: shadow → canary → promote (or roll back), under live traffic.

With ``mloop.agent`` installed, a rollout plan with windows of a second or two is started
and the agent's ``tick`` advances it between bursts of traffic: each step is a deployment
revision with its reason, a breach rolls back, success moves ``@champion``. Without it
the demo steps the deployment itself with the same checks on the logged windows (online
accuracy from feedback, refused requests), and says so.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mloop.demo._logs import logged_applicants
from mloop.demo._population import LABEL
from mloop.demo._stage_serve import traffic_phase
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize

if TYPE_CHECKING:
    import pandas as pd

    from mloop.demo._narrator import Narrator
    from mloop.registry import ModelVersion

MAX_ACCURACY_DROP = 0.02
CANARY_PERCENT = 25.0
SWITCH_TIMEOUT_S = 15.0


def roll_out(
    narrator: Narrator,
    result: DemoResult,
    size: DemoSize,
    url: str,
    champion: ModelVersion,
    candidate: ModelVersion,
) -> None:
    """Stage 7: take ``candidate`` from shadow to all traffic, or back out."""
    narrator.stage(
        7,
        f"Roll out {candidate.name}:{candidate.version}: shadow → canary → promote",
        "Each step is a deployment revision held for a window of live traffic and checked "
        "against the primary; a breach rolls back, success moves @champion.",
    )
    narrator.missing(
        "rollout controller (mloop.agent rollouts and tick)",
        "the demo steps the deployment itself and checks each window from the logs",
    )
    _stand_in_rollout(narrator, result, size, url, champion, candidate)


def _stand_in_rollout(
    narrator: Narrator,
    result: DemoResult,
    size: DemoSize,
    url: str,
    champion: ModelVersion,
    candidate: ModelVersion,
) -> None:
    from mloop.serving import rollback_deployment, update_deployment

    old = {"model": champion.name, "version": champion.version}
    new = {"model": candidate.name, "version": candidate.version}
    steps: list[tuple[str, list[dict[str, object]], str]] = [
        ("shadow", [old, {**new, "role": "shadow"}], "shadow"),
        (
            f"canary {CANARY_PERCENT:g}%",
            [old, {**new, "role": "canary", "weight": CANARY_PERCENT}],
            "canary",
        ),
    ]
    for index, (name, members, role) in enumerate(steps):
        deployment = update_deployment(
            DEPLOYMENT, {"members": members}, reason=f"rollout of {_label(new)}: {name}"
        )
        _wait_until_served(url, candidate.version, size.poll_interval_s)
        result.rollout_steps.append(f"revision {deployment.revision}: {name}")
        narrator.say(f"revision {deployment.revision}: [bold]{name}[/]")
        traffic_phase(
            narrator,
            result,
            size,
            url,
            phase=f"rollout {name}",
            era="after",
            requests=size.requests_per_rollout_step,
            seed=10 + index,
        )
        start, end = result.window_ms[f"rollout {name}"]
        window = logged_applicants(DEPLOYMENT, start, end, roles=("primary", "canary", "shadow"))
        primary, challenger = _accuracy(window, "primary"), _accuracy(window, role)
        refused = (
            result.traffic[f"rollout {name}"].sent - result.traffic[f"rollout {name}"].answered
        )
        narrator.say(
            f"window check: {role} accuracy {challenger:.1%} vs primary {primary:.1%}, "
            f"{refused} refused requests"
        )
        if challenger < primary - MAX_ACCURACY_DROP or refused:
            back = rollback_deployment(DEPLOYMENT)
            result.rollout_outcome = f"rolled back at {name} (revision {back.revision})"
            narrator.say(f"[red]breach[/]: rolled back to revision {back.revision}")
            return
    from mloop import registry

    deployment = update_deployment(
        DEPLOYMENT, {"members": [new]}, reason=f"rollout of {_label(new)}: promote"
    )
    registry.set_alias(candidate.name, "champion", candidate.version)
    result.rollout_steps.append(f"revision {deployment.revision}: promote")
    result.rollout_outcome = f"promoted {_label(new)} (revision {deployment.revision})"
    result.champion = _label(new)
    narrator.say(
        f"revision {deployment.revision}: [bold green]promoted[/] {_label(new)} to all "
        f"traffic; @champion → {_label(new)}"
    )
    _wait_until_served(url, candidate.version, size.poll_interval_s, only=True)
    traffic_phase(
        narrator,
        result,
        size,
        url,
        phase="after rollout",
        era="after",
        requests=size.requests_per_rollout_step,
        seed=20,
    )


def _label(member: dict[str, object]) -> str:
    return f"{member['model']}:{member['version']}"


def _accuracy(window: pd.DataFrame, role: str) -> float:
    rows = window[(window["role"] == role) & window[LABEL].notna()]
    if rows.empty:
        return float("nan")
    return float((rows["prediction"] == rows[LABEL]).mean())


def _wait_until_served(url: str, version: int, poll_s: float, *, only: bool = False) -> None:
    """Until the server has loaded the revision naming ``version`` (and, with ``only``,
    nothing else): it polls the deployment every ``poll_s`` seconds."""
    import httpx

    deadline = time.monotonic() + SWITCH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            versions = httpx.get(f"{url}/v2/models/{DEPLOYMENT}", timeout=5).json()["versions"]
        except (httpx.HTTPError, KeyError, ValueError):
            versions = []
        served = {str(v) for v in versions}
        if str(version) in served and (not only or served == {str(version)}):
            # Routing weights can change without the version set changing: one more poll.
            time.sleep(2 * poll_s)
            return
        time.sleep(poll_s / 2)
