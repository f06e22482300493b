"""``search_runs`` as one SQLAlchemy query: the parsed filter and order become expressions.

Nothing is formatted into SQL text; every value is a bound parameter. A metric comparison
becomes ``runs.run_id IN (SELECT run_id FROM latest_metrics WHERE key = :k AND value <op>
:v)``, which SQLite computes once from the ``(key, value)`` index. Params and tags have no
index on their value, so a comparison on them becomes a correlated ``EXISTS`` probing the
``(run_id, key)`` primary key for just the runs still in play; on 100,000 runs this was
faster than an ``IN`` list in every measured case but a param value no run has (see
``docs/search.md``). PostgreSQL plans both shapes as semi-joins. A run lacking a key never
matches a comparison on it (as in MLflow), and a NaN metric, stored as NULL, never
satisfies one. Ordering by a metric, param or tag LEFT JOINs its row, and
puts runs without it last in both directions with a leading ``(value IS NULL)`` key,
which means the same thing on every database.

The syntax itself lives in :mod:`mloop.tracking._filter_parser`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, exists, false, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

from mloop.errors import InvalidInput
from mloop.store import schema
from mloop.tracking._filter_parser import (
    NULLABLE_ATTRIBUTES,
    And,
    Comparison,
    Node,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)

RUNS: Table = schema.Run.__table__  # type: ignore[assignment]
LATEST: Table = schema.LatestMetric.__table__  # type: ignore[assignment]
PARAMS: Table = schema.Param.__table__  # type: ignore[assignment]
TAGS: Table = schema.RunTag.__table__  # type: ignore[assignment]

_ENTITY_TABLES = {"metrics": LATEST, "params": PARAMS, "tags": TAGS}
_ATTRIBUTE_COLUMNS = {
    "run_id": "run_id",
    "run_name": "name",
    "status": "status",
    "user_id": "user",
    "start_time": "start_time",
    "end_time": "end_time",
    "experiment_id": "experiment_id",
    "parent_run_id": "parent_run_id",
    "lifecycle_stage": "lifecycle_stage",
}
_VIEW_STAGES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": None}
_ESCAPE = "\\"

__all__ = [
    "And",
    "Comparison",
    "Node",
    "Or",
    "OrderKey",
    "build_search_query",
    "compile_filter",
    "parse_filter",
    "parse_order_by",
]


def build_search_query(
    experiment_ids: Sequence[str],
    filter_string: str,
    view_type: str,
    order_by: Sequence[str],
    offset: int,
    limit: int,
) -> Select[str]:
    """Select the ids of matching runs, ordered, with ``offset``/``limit`` applied.

    Raises :class:`~mloop.errors.FilterSyntaxError` for a bad filter or order_by item and
    :class:`~mloop.errors.InvalidInput` for an unknown view type or a negative page.
    """
    if view_type not in _VIEW_STAGES:
        raise InvalidInput(
            f"view type {view_type!r} is not one of {', '.join(_VIEW_STAGES)}; "
            "pass ACTIVE_ONLY, DELETED_ONLY or ALL"
        )
    if offset < 0 or limit < 0:
        raise InvalidInput(f"offset and limit must not be negative, got {offset} and {limit}")
    node = parse_filter(filter_string)
    keys = parse_order_by(order_by)

    ids = list(experiment_ids)
    conditions: list[ColumnElement[bool]] = [
        RUNS.c.experiment_id == ids[0] if len(ids) == 1 else RUNS.c.experiment_id.in_(ids)
    ]
    stage = _VIEW_STAGES[view_type]
    if stage is not None:
        conditions.append(RUNS.c.lifecycle_stage == stage)
    if node is not None:
        conditions.append(compile_filter(node))

    query = select(RUNS.c.run_id).select_from(RUNS)
    order: list[ColumnElement[Any]] = []
    for key in keys:
        if key.entity == "attributes":
            column: ColumnElement[Any] = RUNS.c[_ATTRIBUTE_COLUMNS[key.key]]
            nullable = key.key in NULLABLE_ATTRIBUTES
        else:
            joined = _ENTITY_TABLES[key.entity].alias()
            query = query.outerjoin(
                joined, and_(joined.c.run_id == RUNS.c.run_id, joined.c.key == key.key)
            )
            column, nullable = joined.c.value, True
        if nullable:
            order.append(column.is_(None))
        order.append(column.asc() if key.ascending else column.desc())
    order += [RUNS.c.start_time.desc(), RUNS.c.run_id.desc()]
    return query.where(*conditions).order_by(*order).offset(offset).limit(limit)


def compile_filter(node: Node) -> ColumnElement[bool]:
    """The WHERE condition for a parsed filter, correlated with the ``runs`` table."""
    if isinstance(node, And):
        return and_(*(compile_filter(item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(compile_filter(item) for item in node.items))
    if node.entity == "attributes":
        return _compare(RUNS.c[_ATTRIBUTE_COLUMNS[node.key]], node)
    table = _ENTITY_TABLES[node.entity]
    if node.op == "IS NULL":
        return ~exists().where(table.c.run_id == RUNS.c.run_id, table.c.key == node.key)
    if node.op == "IS NOT NULL":
        return exists().where(table.c.run_id == RUNS.c.run_id, table.c.key == node.key)
    if node.entity == "metrics":
        matching = select(table.c.run_id).where(
            table.c.key == node.key, _compare(table.c.value, node)
        )
        return RUNS.c.run_id.in_(matching)
    return exists().where(
        table.c.run_id == RUNS.c.run_id, table.c.key == node.key, _compare(table.c.value, node)
    )


def _compare(column: ColumnElement[Any], node: Comparison) -> ColumnElement[bool]:
    op, value = node.op, node.value
    if op == "IS NULL":
        return column.is_(None)
    if op == "IS NOT NULL":
        return column.is_not(None)
    if op in ("IN", "NOT IN"):
        assert isinstance(value, tuple)
        if not value:  # pragma: no cover - the parser never yields an empty list
            return false()
        return column.in_(value) if op == "IN" else column.not_in(value)
    if op == "LIKE":
        assert isinstance(value, str)
        return CaseSensitiveLike(column, value)
    if op == "ILIKE":
        assert isinstance(value, str)
        return column.ilike(_like_pattern(value), escape=_ESCAPE)
    comparisons = {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }
    result: ColumnElement[bool] = comparisons[op](value)
    return result


# -- case-sensitive LIKE on every database ---------------------------------------------------


def _like_parts(pattern: str) -> list[tuple[str, str]]:
    """Split a LIKE pattern (``\\`` escapes) into ("wild", "%"|"_") and ("char", c) parts.

    A trailing lone backslash is taken literally rather than being an error, so every
    pattern means the same on SQLite and PostgreSQL.
    """
    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == _ESCAPE and i + 1 < len(pattern):
            parts.append(("char", pattern[i + 1]))
            i += 2
            continue
        parts.append(("wild", ch) if ch in "%_" else ("char", ch))
        i += 1
    return parts


def _like_pattern(pattern: str) -> str:
    out = []
    for kind, ch in _like_parts(pattern):
        out.append(ch if kind == "wild" or ch not in "%_\\" else _ESCAPE + ch)
    return "".join(out)


def _glob_pattern(pattern: str) -> str:
    out = []
    for kind, ch in _like_parts(pattern):
        if kind == "wild":
            out.append("*" if ch == "%" else "?")
        else:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)


class CaseSensitiveLike(ColumnElement[bool]):
    """``column LIKE pattern``, case-sensitive everywhere: SQLite's LIKE ignores ASCII case,
    so there it compiles to ``GLOB`` with the pattern translated."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's protocol
        ("column", InternalTraversal.dp_clauseelement),
        ("like_pattern", InternalTraversal.dp_clauseelement),
        ("glob_pattern", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], pattern: str) -> None:
        self.column = column
        self.like_pattern = literal(_like_pattern(pattern))
        self.glob_pattern = literal(_glob_pattern(pattern))

    def self_group(self, against: OperatorType | None = None) -> ColumnElement[Any]:
        # Parenthesize instead of the default ``(expr) = 1`` for databases without booleans.
        return Grouping(self)


@compiles(CaseSensitiveLike)
def _compile_like(element: CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.like(element.like_pattern, escape=_ESCAPE), **kw)


@compiles(CaseSensitiveLike, "sqlite")
def _compile_glob(element: CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(
        element.column.op("GLOB", is_comparison=True)(element.glob_pattern), **kw
    )
