"""Which backend a tracking URI means: the URI picks it, callers never branch on it."""

from __future__ import annotations

import threading

from mloop.config import Settings, get_settings
from mloop.tracking._backend import TrackingBackend

_lock = threading.Lock()
_backends: dict[tuple[str, str, str, str], TrackingBackend] = {}


def backend_for(
    tracking_uri: str | None = None, settings: Settings | None = None
) -> TrackingBackend:
    """The backend for ``tracking_uri`` (or the settings'), shared within the process.

    ``http(s)://…`` talks to a tracking server; a database URI (``sqlite:///…``,
    ``postgresql+psycopg://…``) or nothing writes the stores directly.
    """
    settings = settings or get_settings()
    uri = tracking_uri or settings.tracking_uri or settings.resolved_db_uri
    key = (uri, settings.resolved_artifact_uri, settings.kek_file or "", settings.api_key or "")
    with _lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = _open(uri, settings)
        return backend


def _open(uri: str, settings: Settings) -> TrackingBackend:
    if uri.startswith(("http://", "https://")):
        from mloop.tracking._rest_backend import RestBackend

        return RestBackend(uri, api_key=settings.api_key)
    from mloop.artifacts import artifact_store_for
    from mloop.store import open_store
    from mloop.tracking._sql_backend import SqlBackend

    return SqlBackend(open_store(uri), artifact_store_for(settings))


def reset_backends() -> None:
    """Close and forget every cached backend (tests, and after changing settings)."""
    with _lock:
        for backend in _backends.values():
            backend.close()
        _backends.clear()
