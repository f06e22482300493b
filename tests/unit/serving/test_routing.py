"""Routing: shares follow the canary weights, route keys stick, shadows never answer."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.serving._routing import BUCKETS, Router, bucket_of
from mloop.serving._spec import DeploymentSpec, Member

DRAWS = 4000


@st.composite
def specs(draw: st.DrawFn, combine: bool = False) -> DeploymentSpec:
    versions = iter(range(1, 100))
    members = [Member(model="iris", version=next(versions))]
    if combine:
        members += [
            Member(model="iris", version=next(versions)) for _ in range(draw(st.integers(1, 3)))
        ]
    else:
        for _ in range(draw(st.integers(0, 3))):
            weight = draw(st.floats(0.5, 30, allow_nan=False))
            members.append(
                Member(model="iris", version=next(versions), role="canary", weight=weight)
            )
    for _ in range(draw(st.integers(0, 2))):
        members.append(Member(model="wine", version=next(versions), role="shadow"))
    order = draw(st.permutations(members))
    return DeploymentSpec(
        members=tuple(order), combine=draw(st.sampled_from(["vote", "mean"])) if combine else "none"
    )


def _expected_shares(spec: DeploymentSpec) -> dict[Member, float]:
    shares = {c: c.weight / BUCKETS for c in spec.canaries}
    shares[spec.primary] = 1 - sum(shares.values())
    return shares


def _within_binomial_bounds(counts: Counter[Member], spec: DeploymentSpec, n: int) -> None:
    for member, p in _expected_shares(spec).items():
        slack = 5 * math.sqrt(n * p * (1 - p)) + 1  # five standard deviations
        assert abs(counts[member] - n * p) <= slack, (member.ref, counts[member], n * p)


@settings(max_examples=40, deadline=None)
@given(specs(), st.integers(0, 2**32))
def test_random_shares_follow_the_weights(spec: DeploymentSpec, seed: int) -> None:
    router = Router(spec, seed=seed)
    counts = Counter(router.route().members[0] for _ in range(DRAWS))
    assert set(counts) <= set(spec.canaries) | {spec.primary}
    _within_binomial_bounds(counts, spec, DRAWS)


@settings(max_examples=20, deadline=None)
@given(specs())
def test_keyed_shares_follow_the_weights_too(spec: DeploymentSpec) -> None:
    router = Router(spec)
    counts = Counter(router.route(f"user-{i}").members[0] for i in range(DRAWS))
    _within_binomial_bounds(counts, spec, DRAWS)


@given(specs(), st.text(max_size=64), st.integers(), st.integers())
def test_a_route_key_always_gets_the_same_member(
    spec: DeploymentSpec, key: str, seed_a: int, seed_b: int
) -> None:
    """Two routers with different seeds stand for two server processes."""
    a, b = Router(spec, seed=seed_a), Router(spec, seed=seed_b)
    first = a.route(key)
    assert all(a.route(key) == first for _ in range(5))
    assert b.route(key) == first
    assert 0 <= bucket_of(key) < BUCKETS


@given(specs(), st.integers(0, 2**32), st.one_of(st.none(), st.text(max_size=16)))
def test_every_route_has_exactly_one_answering_member_and_every_shadow(
    spec: DeploymentSpec, seed: int, key: str | None
) -> None:
    route = Router(spec, seed=seed).route(key)
    assert len(route.members) == 1
    assert route.members[0].role in ("primary", "canary")
    assert route.members[0] in spec.members
    assert route.shadows == spec.shadows


@given(specs(combine=True), st.integers(0, 2**32), st.one_of(st.none(), st.text(max_size=16)))
def test_an_ensemble_answers_with_all_its_primaries(
    spec: DeploymentSpec, seed: int, key: str | None
) -> None:
    route = Router(spec, seed=seed).route(key)
    assert route.members == spec.primaries
    assert len(route.members) >= 2
    assert route.shadows == spec.shadows


@given(st.floats(0.5, 50), st.floats(0.5, 49), st.text(max_size=24))
def test_raising_a_canary_weight_keeps_its_users_on_it(low: float, more: float, key: str) -> None:
    def spec(weight: float) -> DeploymentSpec:
        return DeploymentSpec(
            members=(
                Member(model="iris", version=1),
                Member(model="iris", version=2, role="canary", weight=weight),
            )
        )

    before = Router(spec(low)).route(key).members[0]
    after = Router(spec(low + more)).route(key).members[0]
    if before.role == "canary":
        assert after.role == "canary"


def test_buckets_are_stable_across_releases() -> None:
    """Pinned values: changing the hash would move every sticky user at once."""
    assert [round(bucket_of(key), 4) for key in ("user-1", "", "ü")] == [60.4192, 89.3168, 33.5718]
