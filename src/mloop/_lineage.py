"""Writing edges of the lineage graph (dataset version → run → model version → …).

Every producer of an artifact records where it came from the same way: one edge per
source, written once (recording the same edge again is a no-op, so retries and
re-registrations of identical content are safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from mloop.store import schema as s

LINEAGE = cast(Table, s.LineageEdge.__table__)

#: (source kind, source id, relation), e.g. ``("run", run_id, "produced")``
Source = tuple[str, str, str]


def link_lineage(
    conn: Connection, dst_kind: str, dst_id: str, sources: Iterable[Source], now: int
) -> None:
    """Record an edge from each source to ``dst_kind``/``dst_id``, skipping known ones."""
    edges = [
        {
            "src_kind": src_kind,
            "src_id": src_id,
            "dst_kind": dst_kind,
            "dst_id": dst_id,
            "relation": relation,
            "created_time": now,
            "attributes": None,
        }
        for src_kind, src_id, relation in sources
    ]
    if edges:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(LINEAGE).on_conflict_do_nothing(), edges)


def produced_by(run_id: str | None) -> list[Source]:
    """The edge from the run that produced something, when there is one."""
    return [] if run_id is None else [("run", run_id, "produced")]
