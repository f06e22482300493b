"""Stages 2 and 3: train tracked candidates, then gate, register, sign and deploy the best.

Registration comes after the gate, so the registry only ever holds models that passed.
The signing key is generated inside the demo home, and the registered model's trust
policy then requires a signature by it: every later load (the server's included)
verifies the package before using it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from mloop.demo._automation import set_up as automation_set_up
from mloop.demo._gate import GATES, GateOutcome, gate, save_gates
from mloop.demo._monitoring import set_up as monitoring_set_up
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize
from mloop.demo._training import MODEL_NAME, TrainedCandidate, split, train_candidates
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator
    from mloop.registry import ModelVersion


def train(
    narrator: Narrator, size: DemoSize, dataset: DatasetVersion, *, tag: str
) -> list[TrainedCandidate]:
    """Train every candidate on ``dataset`` with a progress bar; show how they compare."""
    with narrator.progress(f"training on {dataset.ref}", len(size.models)) as advance:
        trained = train_candidates(
            dataset, size.models, tags={"demo_stage": tag}, on_done=lambda _c: advance(1)
        )
    table = Table(box=box.SIMPLE_HEAD, title_justify="left", padding=(0, 1))
    table.add_column("  candidate run")
    for key in ("roc_auc", "accuracy", "f1"):
        table.add_column(key, justify="right")
    table.add_column("run id")
    for rank, item in enumerate(trained):
        table.add_row(
            f"  {'[bold green]' if rank == 0 else ''}{item.candidate.name}",
            *(f"{item.metrics[k]:.3f}" for k in ("roc_auc", "accuracy", "f1")),
            item.run_id,
        )
    narrator.show(table)
    return trained


def first_release(
    narrator: Narrator, result: DemoResult, size: DemoSize, home: DemoHome, v1: DatasetVersion
) -> ModelVersion:
    """Stages 2-3 for version 1 of the model: train, gate, register, sign, deploy."""
    narrator.stage(
        2,
        "Train and track candidates",
        "Each candidate is a run: its parameters, metrics, ROC curve, model package, the "
        "dataset version it read and the git commit of the code.",
    )
    trained = train(narrator, size, v1, tag="first-release")
    best = trained[0]

    narrator.stage(
        3,
        "Gate, register, sign, deploy",
        "Only a candidate that passes the gate is registered; the package is signed and "
        "the registry requires that signature on every load.",
    )
    save_gates()
    narrator.say(f"gates saved by name: {', '.join(GATES)} (see `mloop gates show NAME`)")
    _, valid = split(v1.to_pandas())
    outcome = gate(
        narrator,
        best.model.model_uri,
        valid,
        baseline_uri=None,
        report_dir=home.reports,
        name="v1",
    )
    _say_gate(narrator, result, best.candidate.name, outcome, "first release")
    if not outcome.passed:
        raise GateRefused(best.candidate.name, outcome.reasons)
    version = register_and_sign(narrator, result, home, best)
    from mloop import evaluation

    evaluation.require_blessing(MODEL_NAME, ["champion"])
    narrator.say(
        f"the registry now requires a blessing before @champion may point at a "
        f"{MODEL_NAME} version (version {version.version} has one)"
    )
    promote_champion(narrator, version)
    from mloop.serving import DeploymentSpec, Member, create_deployment

    deployment = create_deployment(
        DEPLOYMENT,
        DeploymentSpec(members=(Member(model=version.name, version=version.version),)),
        reason="first release",
    )
    result.champion = f"{version.name}:{version.version}"
    narrator.say(
        f"deployment [bold]{DEPLOYMENT}[/] revision {deployment.revision}: "
        f"{version.name}:{version.version} answers all traffic"
    )
    monitoring_set_up(narrator, size)
    automation_set_up(narrator, size, home, best.candidate)
    return version


class GateRefused(MloopError):
    """The first candidate did not pass: the demo cannot go on without a model."""

    def __init__(self, candidate: str, reasons: list[str]) -> None:
        super().__init__(
            f"the demo's first model {candidate} was refused by the gate "
            f"({'; '.join(reasons)}); this is a bug in the demo, please report it"
        )


def register_and_sign(
    narrator: Narrator, result: DemoResult, home: DemoHome, trained: TrainedCandidate
) -> ModelVersion:
    """Register ``trained``'s package, sign it with the demo key, require signatures."""
    from mloop import registry
    from mloop.models import generate_signing_key, sign_package, verify_signature

    version = registry.register_model_version(
        MODEL_NAME,
        trained.model.model_uri,
        run_id=trained.run_id,
        package_digest=trained.model.package_digest,
        description=f"{trained.candidate.name}, validation ROC-AUC "
        f"{trained.metrics['roc_auc']:.3f}",
    )
    narrator.say(
        f"registered [bold]{version.name}:{version.version}[/] from run {trained.run_id} "
        f"(trained on {', '.join(version.dataset_versions)})"
    )
    private, public = home.keys / "mloop-signing.key", home.keys / "mloop-signing.pub"
    if not private.exists():
        private, public = generate_signing_key(home.keys)
    sign_package(version.uri, private)
    info = verify_signature(version.uri, [public])
    result.signed_by = info.key_id
    narrator.say(f"signed with key {info.key_id[:16]} ({public}) and verified")
    policy = registry.get_trust_policy(MODEL_NAME)
    if policy is None or not policy.require_signature:
        registry.set_trust_policy(
            MODEL_NAME,
            registry.TrustPolicy(
                require_signature=True, trusted_keys=(public.read_text(encoding="utf-8"),)
            ),
        )
        narrator.say(
            f"trust policy: the registry now refuses to load {MODEL_NAME} versions without "
            "a valid signature by that key"
        )
    return version


def promote_champion(narrator: Narrator, version: ModelVersion) -> None:
    """Point ``@champion`` at ``version`` (the registry checks the policy first)."""
    from mloop import registry

    registry.set_alias(version.name, "champion", version.version)
    narrator.say(f"alias [bold]@champion[/] → {version.name}:{version.version}")


def _say_gate(
    narrator: Narrator, result: DemoResult, name: str, outcome: GateOutcome, what: str
) -> None:
    verdict = "[green]passed[/]" if outcome.passed else "[red]refused[/]"
    narrator.say(f"gate ({what}) for {name}: {verdict} — {'; '.join(outcome.reasons)}")
    if outcome.report is not None:
        result.reports[f"evaluation ({what})"] = outcome.report
        narrator.say(f"evaluation report: {outcome.report}")
