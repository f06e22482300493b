"""Pipeline executions, step executions and the step cache in the metadata store.

A step's success is one transaction: its outputs, its cache entry and its lineage edges
land together or not at all, so a crash between "the step finished" and "it was
recorded" makes the step run again rather than leave a cache entry without a step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mloop._lineage import Source, link_lineage
from mloop.errors import InvalidInput, NotFound
from mloop.pipelines._execution import PipelineExecution, StepExecution
from mloop.pipelines._tables import PipelineCacheRow, PipelineExecutionRow, PipelineStepRow
from mloop.store import MetadataStore

EXECUTIONS = cast(Table, PipelineExecutionRow.__table__)
STEPS = cast(Table, PipelineStepRow.__table__)
CACHE = cast(Table, PipelineCacheRow.__table__)


@contextmanager
def opened(store: MetadataStore | None = None) -> Iterator[MetadataStore]:
    """``store``, or the configured metadata store (the one runs and the registry use, so
    step runs, lineage and executions share one graph)."""
    from mloop.registry._db import connect

    with connect(store) as db:
        yield db


def create_execution(
    db: MetadataStore, values: dict[str, Any], steps: list[dict[str, Any]]
) -> None:
    def work(conn: Connection) -> None:
        conn.execute(EXECUTIONS.insert(), values)
        conn.execute(STEPS.insert(), steps)

    db.write(work)


def restart_execution(
    db: MetadataStore, execution_id: str, values: dict[str, Any], steps: list[dict[str, Any]]
) -> None:
    """A resume: the execution runs again; steps it kept are left alone, the others are
    replaced by the rebuilt graph's rows."""

    def work(conn: Connection) -> None:
        conn.execute(update(EXECUTIONS).where(EXECUTIONS.c.id == execution_id).values(values))
        for row in steps:
            found = conn.execute(
                update(STEPS)
                .where(STEPS.c.execution_id == execution_id, STEPS.c.name == row["name"])
                .values(row)
            ).rowcount
            if not found:
                conn.execute(STEPS.insert(), {**row, "execution_id": execution_id})

    db.write(work)


def update_execution(db: MetadataStore, execution_id: str, **values: Any) -> None:
    db.write(
        lambda conn: conn.execute(
            update(EXECUTIONS).where(EXECUTIONS.c.id == execution_id).values(values)
        )
    )


def update_step(db: MetadataStore, execution_id: str, name: str, **values: Any) -> None:
    db.write(
        lambda conn: conn.execute(
            update(STEPS)
            .where(STEPS.c.execution_id == execution_id, STEPS.c.name == name)
            .values(values)
        )
    )


def record_success(
    db: MetadataStore,
    execution_id: str,
    name: str,
    values: dict[str, Any],
    *,
    cache_entry: dict[str, Any] | None,
    lineage: Iterable[tuple[str, str, Source]],
    now: int,
) -> None:
    """The step's outputs, its cache entry and its lineage edges, in one transaction."""
    edges = list(lineage)

    def work(conn: Connection) -> None:
        conn.execute(
            update(STEPS)
            .where(STEPS.c.execution_id == execution_id, STEPS.c.name == name)
            .values(values)
        )
        if cache_entry is not None:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = insert(CACHE).values(cache_entry)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[CACHE.c.cache_key],
                    set_={k: statement.excluded[k] for k in cache_entry if k != "cache_key"},
                )
            )
        for dst_kind, dst_id, source in edges:
            link_lineage(conn, dst_kind, dst_id, [source], now)

    db.write(work)


def cached_outputs(db: MetadataStore, cache_key: str) -> dict[str, Any] | None:
    with db.read() as conn:
        row = conn.execute(select(CACHE).where(CACHE.c.cache_key == cache_key)).first()
    return None if row is None else dict(row._mapping)


def forget_cache_entry(db: MetadataStore, cache_key: str) -> None:
    db.write(lambda conn: conn.execute(CACHE.delete().where(CACHE.c.cache_key == cache_key)))


def load_execution(db: MetadataStore, execution_id: str) -> PipelineExecution:
    if not isinstance(execution_id, str) or not execution_id:
        raise InvalidInput("a pipeline execution id is a non-empty string")
    with db.read() as conn:
        row = conn.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == execution_id)).first()
        if row is None:
            raise NotFound(
                f"pipeline execution {execution_id!r} does not exist; `mloop pipeline list` "
                "shows the executions"
            )
        steps = conn.execute(
            select(STEPS).where(STEPS.c.execution_id == execution_id).order_by(STEPS.c.position)
        ).all()
    return _execution(row._mapping, [s._mapping for s in steps])


def load_executions(
    db: MetadataStore, pipeline: str | None = None, limit: int = 100
) -> list[PipelineExecution]:
    query = select(EXECUTIONS).order_by(EXECUTIONS.c.start_time.desc(), EXECUTIONS.c.id.desc())
    if pipeline is not None:
        query = query.where((EXECUTIONS.c.name == pipeline) | (EXECUTIONS.c.pipeline == pipeline))
    with db.read() as conn:
        rows = conn.execute(query.limit(limit)).all()
        ids = [r.id for r in rows]
        steps = (
            conn.execute(
                select(STEPS).where(STEPS.c.execution_id.in_(ids)).order_by(STEPS.c.position)
            ).all()
            if ids
            else []
        )
    by_execution: dict[str, list[Any]] = {}
    for s in steps:
        by_execution.setdefault(s.execution_id, []).append(s._mapping)
    return [_execution(r._mapping, by_execution.get(r.id, [])) for r in rows]


def _execution(row: Any, steps: list[Any]) -> PipelineExecution:
    return PipelineExecution(
        id=row["id"],
        pipeline=row["pipeline"],
        name=row["name"],
        status=row["status"],
        reason=row["reason"],
        params=row["params"],
        executor=row["executor"],
        run_id=row["run_id"],
        outputs=row["outputs"] or {},
        steps=[_step(s) for s in steps],
        created_by=row["created_by"],
        attempts=row["attempts"],
        start_time=row["start_time"],
        end_time=row["end_time"],
    )


def _step(row: Any) -> StepExecution:
    return StepExecution(
        name=row["name"],
        step=row["step"],
        status=row["status"],
        cached=row["cached"],
        run_id=row["run_id"],
        upstream=row["upstream"],
        code_digest=row["code_digest"],
        cache_key=row["cache_key"],
        params=row["params"],
        inputs=row["inputs"],
        outputs=row["outputs"],
        error=row["error"],
        attempts=row["attempts"],
        start_time=row["start_time"],
        end_time=row["end_time"],
    )
