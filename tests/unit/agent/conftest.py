"""The agent tests' fixtures: ``world`` (SQLite and PostgreSQL) and ``sqlite_world``, a
registry with a deployment and traffic on an injected clock (see ``_rollout_world``)."""

from tests.unit.agent._rollout_world import sqlite_world_fixture, world_fixture

__all__ = ["sqlite_world_fixture", "world_fixture"]
