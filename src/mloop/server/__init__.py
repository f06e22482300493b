"""The control-plane HTTP API over the stores: ``mloop server``.

``create_app()`` builds the ASGI app (over a given backend, or the stores the settings
name); ``serve()`` runs it with uvicorn. See docs/server.md.
"""

from mloop.server._app import create_app, serve

__all__ = ["create_app", "serve"]
