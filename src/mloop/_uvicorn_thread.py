"""An ASGI app served by uvicorn in a thread of this process, on 127.0.0.1 and a port the OS
picks: what the demo and the tests need to talk to a real server over real HTTP."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from mloop.errors import MloopError


class ServerDidNotStart(MloopError):
    """A server in a thread did not come up in time."""


@contextlib.contextmanager
def serve_in_thread(
    app: Any,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
    name: str = "mloop-uvicorn",
    what: str = "the server",
    hint: str = "",
) -> Iterator[str]:
    """Serve ``app`` until the block ends and yield its base URL; leaving the block drains
    requests in flight (and runs the app's shutdown). Raises :class:`ServerDidNotStart`
    (``what`` did not start …; ``hint``) when it is not up within ``start_timeout`` s."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        ws="none",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=10)
            raise ServerDidNotStart(
                f"{what} did not start within {start_timeout:.0f} s" + (f"; {hint}" if hint else "")
            )
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=stop_timeout)
