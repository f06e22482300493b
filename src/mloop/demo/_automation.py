"""What makes the loop run by itself: a retraining trigger and a rollout plan.

Both are declared once, right after the first release, as a team would commit them: the
trigger runs mloop's ready-made retraining pipeline when the skew alert fires (validate
the newest data version → train with the demo's trainer → evaluate against the champion
with the retraining gate → register → sign → start a rollout), and the plan says how the
rollout walks. Its windows are a second or two instead of ten minutes, and two checks are
set for this demo (written next to them), so the story takes seconds on a shared machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.demo._gate import EVALUATED_SLICES, RETRAIN_GATE
from mloop.demo._monitoring import SKEW_RULE
from mloop.demo._population import LABEL
from mloop.demo._state import DATASET, DEPLOYMENT, DemoSize
from mloop.demo._training import MODEL_NAME

if TYPE_CHECKING:
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator
    from mloop.demo._training import Candidate

PLAN = "credit-progressive"
TRIGGER = "credit-retrain-on-skew"


def rollout_plan(size: DemoSize) -> dict[str, Any]:
    """Shadow → canary 25% (→ 50% in the full demo) → 100%, each held ``size``'s window."""
    window = f"{size.rollout_window_s:g}s"
    steps = [f"shadow {window}", f"canary 25% {window}"]
    if not size.quick:
        steps.append(f"50% {window}")
    steps.append("100%")
    return {
        "steps": steps,
        "checks": {
            # The candidate answers differently from the outdated champion on purpose:
            # accuracy against the outcomes (min_online_metric_delta) judges it.
            "max_divergence": 0.6,
            # Not checked here: a shadow answers in a background process at the lowest CPU
            # priority, so its logged latency is mostly queueing behind live answers.
            "max_p99_latency_ratio": None,
            "min_online_metric_delta": -0.02,
            "min_requests": 40,
            "min_labelled": 30,
            "max_wait": "60s",
        },
        "promote_alias": "champion",
        "description": "the demo's progressive delivery: seconds-long windows",
    }


def set_up(narrator: Narrator, size: DemoSize, home: DemoHome, trainer: Candidate) -> None:
    """Save the rollout plan and the retraining trigger."""
    from mloop import agent

    plan = agent.save_plan(PLAN, rollout_plan(size))
    narrator.say(
        f"rollout plan [bold]{PLAN}[/]: "
        + " → ".join(
            step.describe() + (f" {step.window}" if step.window else "") for step in plan.steps
        )
    )
    trigger = agent.save_trigger(
        {
            "name": TRIGGER,
            "pipeline": "mloop.agent:retraining_pipeline",
            "on": {"alert": SKEW_RULE},
            "params": {
                "data": f"{DATASET}@latest",
                "trainer": "mloop.demo._training:fit",
                "trainer_params": {"family": trainer.family, **trainer.params},
                "label": LABEL,
                "model_name": MODEL_NAME,
                "gate": RETRAIN_GATE,
                # The new world is expected to look different: anomalies are recorded.
                "validation": "warn",
                "slices": list(EVALUATED_SLICES),
                "signing_key": str(home.keys / "mloop-signing.key"),
                "deployment": DEPLOYMENT,
                "plan": PLAN,
            },
            "description": "retrain on the newest labelled data when the inputs drift",
        }
    )
    narrator.say(
        f"trigger [bold]{trigger.name}[/]: on alert {SKEW_RULE} → {trigger.pipeline} "
        f"(trainer {trainer.family}, gate {RETRAIN_GATE}, rollout plan {PLAN})"
    )
