"""Which member answers a request: weighted random, or sticky by a route key.

Traffic is a line of 100 buckets. The canaries take their weights from the bottom, in the
order the spec lists them, and the primary takes the rest: with canaries of 10 and 5,
``[0, 10)`` goes to the first, ``[10, 15)`` to the second, ``[15, 100)`` to the primary.
A request without a route key draws a point on that line at random; one with a key
(``X-Mloop-Route-Key``) gets the point a stable hash of the key names, so one user always
sees one model while the weights stay the same, in every server process. Because
canaries grow from the bottom, raising a canary's weight only moves users *onto* it: a
user already on the canary stays there.

Shadows never answer; every route lists them so the server can mirror the request. An
ensemble (``combine`` other than ``none``) answers with all its primaries every time.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass

from mloop.serving._spec import DeploymentSpec, Member

BUCKETS = 100.0
_SCALE = BUCKETS / 2**64


@dataclass(frozen=True, slots=True)
class Route:
    """The member(s) whose answer is returned, and the shadows that get a copy."""

    members: tuple[Member, ...]
    shadows: tuple[Member, ...]


def bucket_of(route_key: str) -> float:
    """The point in ``[0, 100)`` a route key always lands on. BLAKE2b rather than
    ``hash()``, which Python salts per process, so every replica agrees."""
    digest = hashlib.blake2b(route_key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _SCALE


class Router:
    """Routes requests for one deployment spec; build a new one when the spec changes."""

    __slots__ = ("_bounds", "_random", "_routes", "spec")

    def __init__(self, spec: DeploymentSpec, seed: int | None = None) -> None:
        self.spec = spec
        self._random = random.Random(seed)
        shadows = spec.shadows
        if spec.combine != "none":
            self._bounds: list[float] = []
            self._routes = [Route(spec.primaries, shadows)]
            return
        bounds, routes, edge = [], [], 0.0
        for canary in spec.canaries:
            edge += canary.weight
            bounds.append(edge)
            routes.append(Route((canary,), shadows))
        routes.append(Route((spec.primary,), shadows))
        self._bounds = bounds
        self._routes = routes

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route this router can return: the canaries', then the primary's."""
        return tuple(self._routes)

    def route(self, route_key: str | None = None) -> Route:
        """The route for one request: by ``route_key`` when given, else at random."""
        if not self._bounds:
            return self._routes[0]
        point = self._random.random() * BUCKETS if route_key is None else bucket_of(route_key)
        return self._routes[bisect.bisect_right(self._bounds, point)]


__all__ = ["BUCKETS", "Route", "Router", "bucket_of"]
