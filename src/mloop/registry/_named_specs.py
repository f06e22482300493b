"""Specs kept under a name in the metadata store, every change in the audit log.

Rollout plans, triggers, evaluation gates and alert rules are all stored this way: one row
a name, the spec as canonical JSON, who created it and when. Writing that (and its audit
entry) once here keeps their histories alike; what differs between them — the spec's type,
extra columns, who may write, what else a delete touches — stays in their own modules,
which hand it in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, delete, select, update

from mloop._ids import now_ms as wall_clock_ms
from mloop.config import Settings
from mloop.errors import NotFound
from mloop.registry import _audit
from mloop.registry._db import Actor, actor_name, connect, write
from mloop.store import MetadataStore

Row = Mapping[Any, Any]


@dataclass(frozen=True)
class NamedSpecs:
    """The rows of ``table``, keyed by its ``name`` column, the spec in ``spec_column``.

    ``kind`` names them in the audit log (``<kind>.create``, target ``<kind>:<name>``).
    ``missing`` and ``nothing_to_delete`` (by default the same) are the messages
    (``str.format`` templates with ``name``) of a get and of a delete that find no row:
    they tell the user which command lists or creates them.
    """

    table: Table
    kind: str
    missing: str
    nothing_to_delete: str | None = None
    spec_column: str = "spec"

    def save(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        actor: Actor,
        other_columns: Callable[[Row | None], Mapping[str, Any]] | None = None,
        now_ms: int | None = None,
        store: MetadataStore | None = None,
        settings: Settings | None = None,
    ) -> Row:
        """Create or replace the row of ``name`` and return it as stored. An unchanged spec
        writes nothing, so re-applying a file leaves no audit entries behind.
        ``other_columns`` gives the row's further columns from the row it replaces (None
        when creating), inside the same transaction."""
        who = actor_name(actor)

        def work(conn: Connection) -> Row:
            row = self._find(conn, name)
            if row is not None and row[self.spec_column] == spec:
                return row
            now = wall_clock_ms() if now_ms is None else now_ms
            values = {
                self.spec_column: spec,
                **(other_columns(row) if other_columns else {}),
                "last_update_time": now,
            }
            if row is None:
                values = {"name": name, **values, "created_by": who, "creation_time": now}
                conn.execute(self.table.insert(), values)
            else:
                conn.execute(update(self.table).where(self._named(name)).values(values))
                values = {**row, **values}
            _audit.append(
                conn,
                actor=who,
                action=f"{self.kind}.{'create' if row is None else 'update'}",
                target=f"{self.kind}:{name}",
                before=None if row is None else row[self.spec_column],
                after=spec,
            )
            return values

        with connect(store, settings) as db:
            return write(db, work)

    def get(
        self, name: str, *, store: MetadataStore | None = None, settings: Settings | None = None
    ) -> Row:
        with connect(store, settings) as db, db.read() as conn:
            row = self._find(conn, name)
        if row is None:
            raise NotFound(self.missing.format(name=name))
        return row

    def rows(
        self,
        *where: ColumnElement[bool],
        store: MetadataStore | None = None,
        settings: Settings | None = None,
    ) -> list[Row]:
        """Every row matching ``where``, by name."""
        query = select(self.table).where(*where).order_by(self.table.c.name)
        with connect(store, settings) as db, db.read() as conn:
            return [row._mapping for row in conn.execute(query)]

    def delete(
        self,
        name: str,
        *,
        actor: Actor,
        before_delete: Callable[[Connection], None] | None = None,
        store: MetadataStore | None = None,
        settings: Settings | None = None,
    ) -> None:
        """Remove the row of ``name``. ``before_delete`` runs in the same transaction once
        the row is found: it may refuse (by raising) or update what hangs on the row."""
        who = actor_name(actor)

        def work(conn: Connection) -> None:
            row = self._find(conn, name)
            if row is None:
                raise NotFound((self.nothing_to_delete or self.missing).format(name=name))
            if before_delete is not None:
                before_delete(conn)
            conn.execute(delete(self.table).where(self._named(name)))
            _audit.append(
                conn,
                actor=who,
                action=f"{self.kind}.delete",
                target=f"{self.kind}:{name}",
                before=row[self.spec_column],
                after=None,
            )

        with connect(store, settings) as db:
            write(db, work)

    def _named(self, name: str) -> ColumnElement[bool]:
        return self.table.c.name == name

    def _find(self, conn: Connection, name: str) -> Row | None:
        row = conn.execute(select(self.table).where(self._named(name))).first()
        return None if row is None else row._mapping
