"""A deployment with real traffic for rollout tests: registered versions, a deployment, and
requests routed the way the server routes them (canary weights, mirrored shadows) to
model versions that behave as the test says, written through the real PredictionLog API
at times the test chooses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mloop.registry import register_model_version
from mloop.serving._deployments import create_deployment, get_deployment
from mloop.serving._feedback import record_feedback
from mloop.serving._predlog import PredictionLog, PredictionRecord
from mloop.serving._spec import DeploymentSpec, Member
from tests.fixtures.registry import DIGESTS

T0 = 1_800_000_000_000  # 2027-01-15T08:00Z
MINUTE = 60_000
SECOND = 1000


def truth(i: int) -> str:
    """The right answer to request ``i``: three classes in a fixed mix."""
    return ("setosa", "versicolor", "virginica", "setosa")[i % 4]


@dataclass
class Behaviour:
    """How one model version answers: a share of failures, a latency, its answers."""

    error_every: int = 0  # every n-th request fails (0: none)
    latency_ms: float = 2.0
    answer: Callable[[int], Any] = truth

    def respond(self, i: int) -> tuple[int, Any, float]:
        if self.error_every and i % self.error_every == 0:
            return 500, None, self.latency_ms
        return 200, self.answer(i), self.latency_ms


@dataclass
class World:
    deployment: str
    log: PredictionLog
    behaviours: dict[tuple[str, int], Behaviour] = field(default_factory=dict)
    requests: int = 0

    def behave(self, version: int, behaviour: Behaviour, model: str = "iris") -> None:
        self.behaviours[(model, version)] = behaviour

    def serve(self, start_ms: int, end_ms: int, count: int, *, labels: bool = False) -> None:
        """``count`` requests spread over ``[start_ms, end_ms)``, routed by the deployment's
        current spec: a point on the 100-bucket line picks a canary or the primary, every
        shadow gets a copy. With ``labels``, every request gets its true label as feedback."""
        spec = get_deployment(self.deployment).spec
        step = (end_ms - start_ms) / count
        feedback = []
        for n in range(count):
            i = self.requests
            self.requests += 1
            at = start_ms + int(n * step)
            request_id = f"req-{i}"
            member = _route(spec, i)
            self._answer(member, "canary" if member.role == "canary" else "primary", i, at)
            for shadow in spec.shadows:
                self._answer(shadow, "shadow", i, at)
            if labels:
                feedback.append({"request_id": request_id, "label": truth(i), "time": at + 1})
        if feedback:
            record_feedback(None, self.deployment, feedback)

    def _answer(self, member: Member, role: str, i: int, at: int) -> None:
        behaviour = self.behaviours.get((member.model, member.version), Behaviour())
        status, answer, latency = behaviour.respond(i)
        self.log.append(
            PredictionRecord(
                request_id=f"req-{i}",
                time_ms=at,
                deployment=self.deployment,
                model=member.model,
                version=member.version,
                role=role,
                inputs={"input-0": [[5.1, 3.5, 1.4, float(i % 7)]]},
                outputs=None if status >= 400 else {"predictions": [answer]},
                latency_ms=latency,
                status=status,
                error="INTERNAL" if status >= 400 else None,
            )
        )


def _route(spec: DeploymentSpec, i: int) -> Member:
    point = (i * 37) % 100  # spreads consecutive requests over the whole line
    edge = 0.0
    for canary in spec.canaries:
        if edge <= point < edge + canary.weight:
            return canary
        edge += canary.weight
    return spec.primary


def make_world(deployment: str = "fraud", versions: int = 4) -> Iterator[World]:
    for digest in DIGESTS[:versions]:
        register_model_version("iris", "/p", package_digest=digest)
    create_deployment(
        deployment, DeploymentSpec(members=(Member(model="iris", version=1),)), reason="v1"
    )
    log = PredictionLog(fsync="off", compact_interval=None)
    try:
        yield World(deployment, log)
    finally:
        log.close()


@pytest.fixture(name="world")
def world_fixture(db: str) -> Iterator[World]:
    """Shared through this folder's conftest; tests ask for ``world`` (needs ``db``: SQLite
    and PostgreSQL)."""
    yield from make_world()


@pytest.fixture(name="sqlite_world")
def sqlite_world_fixture(sqlite_db: str) -> Iterator[World]:
    """For logic that is the same on every database: SQLite only (needs ``sqlite_db``)."""
    yield from make_world()
