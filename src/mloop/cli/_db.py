"""``mloop db …``: the metadata store's schema revision, and upgrading it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from mloop.cli import _render
from mloop.errors import StoreError

if TYPE_CHECKING:  # SQLAlchemy and Alembic load only when a db command runs
    from mloop.store import MetadataStore

db_app = typer.Typer(
    name="db", help="Inspect and upgrade the metadata store.", no_args_is_help=True
)

UriOption = Annotated[
    str | None,
    typer.Option(
        "--uri",
        help="Database URI (default: MLOOP_DB_URI, or the SQLite file inside MLOOP_HOME).",
        show_default=False,
    ),
]


@contextmanager
def _store(uri: str | None) -> Iterator[MetadataStore]:
    """The store at ``uri``, not migrated; database failures become one-line StoreErrors."""
    from sqlalchemy.exc import SQLAlchemyError

    from mloop.config import get_settings
    from mloop.store import open_store

    store = open_store(uri or get_settings().resolved_db_uri, migrate=False)
    try:
        yield store
    except SQLAlchemyError as exc:
        raise StoreError(
            f"the metadata store at {store.safe_uri} failed: {exc.__class__.__name__}: "
            f"{getattr(exc, 'orig', None) or exc}; check the URI and that the database is up"
        ) from exc
    finally:
        store.close()


@db_app.command("upgrade")
def upgrade_db(uri: UriOption = None) -> None:
    """Migrate the metadata store's schema to the newest revision this mloop knows."""
    from mloop.store import current_revision, upgrade

    with _store(uri) as store:
        before = current_revision(store.engine)
        upgrade(store)
        after = current_revision(store.engine)
    out = _render.console()
    if before == after:
        out.print(Text(f"{store.safe_uri} is already at the newest revision {after}."))
    else:
        out.print(Text(f"Upgraded {store.safe_uri} from {before or '(empty)'} to {after}."))


@db_app.command("current")
def current_db(uri: UriOption = None) -> None:
    """Show the store's schema revision and whether `mloop db upgrade` has work to do."""
    from mloop.store import current_revision, head_revision

    head = head_revision()
    with _store(uri) as store:
        current = current_revision(store.engine)
    if current == head:
        state = "up to date"
    elif current is None:
        state = "empty; `mloop db upgrade` creates the tables"
    else:
        state = f"this mloop's newest is {head}; `mloop db upgrade` migrates it"
    _render.console().print(Text(f"{store.safe_uri}: revision {current or '(none)'} ({state})"))
