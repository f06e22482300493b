"""Property-based fuzzing of the server from its own OpenAPI schema: never a 5xx.

Schemathesis generates requests for every operation (valid ones, from the schema) and
checks the answers against the schema too: documented status codes, content types and
response bodies. Half of the generated run/experiment ids are swapped for real ones so
the requests reach the store instead of stopping at 404. The schema is read from the app
at import; each test points the app at its own store.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from mloop.server import create_app
from mloop.tracking._backend import TrackingBackend
from mloop.tracking._resolve import backend_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class _TestsBackend:
    """The backend of the test running now: the schema is built once, at import."""

    target: TrackingBackend | None = None

    def __getattr__(self, name: str) -> Any:
        assert self.target is not None, "the _store fixture sets the backend"
        return getattr(self.target, name)


class _Ids:
    def __init__(self, experiment_id: str, run_id: str) -> None:
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.turn = itertools.count()


_backend = _TestsBackend()
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(cast(TrackingBackend, _backend))
)


@pytest.fixture
def real_ids() -> Iterator[_Ids]:
    """Point the app at this test's store, holding one experiment and one run."""
    backend = backend_for()
    _backend.target = backend
    experiment_id = backend.create_experiment("fuzz")
    run = backend.create_run(
        experiment_id, run_name="fuzz", user_id=None, start_time=1, tags={}, parent_run_id=None
    )
    yield _Ids(experiment_id, run.info.run_id)
    _backend.target = None


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_operation_answers_5xx(case: schemathesis.Case[Any], real_ids: _Ids) -> None:
    if next(real_ids.turn) % 2:
        params = case.path_parameters or {}
        if "run_id" in params:
            params["run_id"] = real_ids.run_id
        if "experiment_id" in params:
            params["experiment_id"] = real_ids.experiment_id
    case.call_and_validate(checks=CHECKS)
