"""The statements every run executes, compiled once and run on the driver's own cursor.

Creating and ending a run costs two transactions of a few statements each. On SQLite a
statement takes tens of microseconds inside the driver; the work SQLAlchemy does around
each one (cache look-up, parameter processing, result set-up) cost several times that and
was most of a run's creation time. So the statements of the hot paths are compiled by
SQLAlchemy once per dialect and run on the driver's own connection, in transactions that
:meth:`~mloop.store.MetadataStore.write_driver` begins and commits there too. Driver
errors are re-raised as the SQLAlchemy exceptions they would have been, so the store's
busy retry and error messages work unchanged.

Every bind parameter is named and supplied by the caller: a compiled statement run this
way gets no SQLAlchemy defaults, so no statement here may rely on one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ClauseElement

from mloop.store import schema as s

EXPERIMENTS = cast(Table, s.Experiment.__table__)
RUNS = cast(Table, s.Run.__table__)
PARAMS = cast(Table, s.Param.__table__)
METRICS = cast(Table, s.Metric.__table__)
LATEST = cast(Table, s.LatestMetric.__table__)
TAGS = cast(Table, s.RunTag.__table__)
ARTIFACTS = cast(Table, s.RunArtifact.__table__)

RUN_COLUMNS = (
    "run_id",
    "experiment_id",
    "name",
    "user",
    "status",
    "start_time",
    "end_time",
    "parent_run_id",
    "lifecycle_stage",
)


class Prepared:
    """One statement, compiled for a dialect, executed on a DB-API (driver) connection."""

    __slots__ = ("_dbapi_error", "_dialect", "sql")

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] = ()
    ) -> None:
        # sqlite3 takes named parameters (``:name``) as well as ``?``; named ones let every
        # dialect get the same dict rows. psycopg's style (``%(name)s``) is named already.
        render = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
        compiled = statement.compile(dialect=render, column_keys=list(column_keys) or None)
        self.sql = compiled.string
        self._dialect = dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    def execute(self, conn: Any, params: Mapping[str, Any]) -> int:
        """Run once; return the number of rows the statement changed."""
        return int(self._run(conn, params, many=False, fetch=False))

    def executemany(self, conn: Any, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run for every row; return the total number of rows changed."""
        return int(self._run(conn, rows, many=True, fetch=False))

    def fetchall(self, conn: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a query once; return its rows."""
        rows: list[tuple[Any, ...]] = self._run(conn, params, many=False, fetch=True)
        return rows

    def _run(self, conn: Any, params: Any, *, many: bool, fetch: bool) -> Any:
        cursor = conn.cursor()
        try:
            if many:
                cursor.executemany(self.sql, params)
            else:
                cursor.execute(self.sql, params)
            if fetch:
                return [tuple(row) for row in cursor.fetchall()]
            return cursor.rowcount
        except self._dbapi_error as exc:
            raise DBAPIError.instance(
                self.sql, params, exc, self._dbapi_error, dialect=self._dialect
            ) from exc
        finally:
            cursor.close()


class HotStatements:
    """What creating a run, logging a batch and ending a run execute, built once per store.

    Every one takes only named parameters the caller supplies (see the module docstring).
    """

    def __init__(self, dialect: Dialect) -> None:
        dialect_insert: Any = postgresql.insert if dialect.name == "postgresql" else sqlite.insert

        def prepared(statement: ClauseElement, *columns: str) -> Prepared:
            return Prepared(statement, dialect, columns)

        # A run is inserted only if its experiment is active and its parent (if any) exists,
        # in one statement; when nothing was inserted, the caller finds out which it was.
        typed = [bindparam(c, type_=RUNS.c[c].type) for c in RUN_COLUMNS]
        parent = bindparam("parent_run_id", type_=RUNS.c.parent_run_id.type)
        parent_ok = or_(
            parent.is_(None),
            exists().where(RUNS.c.run_id == parent),
        )
        self.insert_run = prepared(
            insert(RUNS)
            .inline()
            .from_select(
                list(RUN_COLUMNS),
                select(
                    *[EXPERIMENTS.c.experiment_id if b.key == "experiment_id" else b for b in typed]
                ).where(
                    EXPERIMENTS.c.experiment_id == typed[1],
                    EXPERIMENTS.c.lifecycle_stage == bindparam("b_active"),
                    parent_ok,
                ),
            )
        )
        self.insert_tags = prepared(insert(TAGS).inline(), "run_id", "key", "value")
        self.insert_artifacts = prepared(
            insert(ARTIFACTS).inline(), "run_id", "path", "digest", "size", "created_time"
        )
        self.insert_metrics = prepared(
            insert(METRICS).inline(), "run_id", "key", "value", "step", "timestamp"
        )
        self.insert_params = prepared(
            dialect_insert(PARAMS).inline().on_conflict_do_nothing(), "run_id", "key", "value"
        )
        tags = dialect_insert(TAGS).inline()
        self.upsert_tags = prepared(
            tags.on_conflict_do_update(
                index_elements=[TAGS.c.run_id, TAGS.c.key], set_={"value": tags.excluded.value}
            ),
            "run_id",
            "key",
            "value",
        )
        latest = dialect_insert(LATEST).inline()
        newer = or_(
            latest.excluded.step > LATEST.c.step,
            and_(
                latest.excluded.step == LATEST.c.step,
                latest.excluded.timestamp >= LATEST.c.timestamp,
            ),
        )
        self.upsert_latest = prepared(
            latest.on_conflict_do_update(
                index_elements=[LATEST.c.run_id, LATEST.c.key],
                set_={
                    "value": latest.excluded.value,
                    "step": latest.excluded.step,
                    "timestamp": latest.excluded.timestamp,
                },
                where=newer,
            ),
            "run_id",
            "key",
            "value",
            "step",
            "timestamp",
        )
        self.end_run = prepared(
            update(RUNS)
            .where(RUNS.c.run_id == bindparam("b_run_id"))
            .values(status=bindparam("b_status"), end_time=bindparam("b_end_time"))
        )

        # Rare paths inside the same transactions: saying why a run insert wrote nothing,
        # and reading a run's params back after an insert skipped some.
        run_id: Any = bindparam("b_run_id")
        self.run_exists = prepared(select(RUNS.c.run_id).where(RUNS.c.run_id == run_id))
        self.experiment_stage = prepared(
            select(EXPERIMENTS.c.lifecycle_stage).where(
                EXPERIMENTS.c.experiment_id == bindparam("b_experiment_id")
            )
        )
        self.run_params = prepared(
            select(PARAMS.c.key, PARAMS.c.value).where(PARAMS.c.run_id == run_id)
        )
        # SQLAlchemy statements, run by the callers through an ordinary connection.
        self.run_exists_query = select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)
        self.update_run = update(RUNS).where(RUNS.c.run_id == run_id).returning(RUNS)


__all__ = ["HotStatements", "Prepared"]
