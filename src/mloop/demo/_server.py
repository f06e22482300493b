"""The inference server the demo sends traffic to: real uvicorn on 127.0.0.1.

It runs in a thread of the demo's process, on a port the OS picks, serving a deployment
through :func:`mloop.serving.create_app` exactly as ``mloop serve`` would; it polls the
deployment often, so rollout steps reach it within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from mloop.errors import MloopError

START_TIMEOUT_S = 30.0


class ServerDidNotStart(MloopError):
    """The demo's inference server did not come up."""


@contextlib.contextmanager
def inference_server(deployment: str, *, poll_interval: float) -> Iterator[str]:
    """Serve ``deployment`` until the block ends; yield its base URL. Leaving the block
    drains requests in flight and flushes the prediction log."""
    import uvicorn

    from mloop.serving import create_app

    app = create_app(deployment, host="127.0.0.1", poll_interval=poll_interval, request_log=False)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mloop-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=10)
            raise ServerDidNotStart(
                f"the inference server for {deployment!r} did not start within "
                f"{START_TIMEOUT_S:.0f} s; run `mloop serve {deployment}` to see why"
            )
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
