"""The inference server the demo sends traffic to: real uvicorn on 127.0.0.1.

It runs in a thread of the demo's process, on a port the OS picks, serving a deployment
through :func:`mloop.serving.create_app` exactly as ``mloop serve`` would; it polls the
deployment often, so rollout steps reach it within a fraction of a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

START_TIMEOUT_S = 30.0


@contextlib.contextmanager
def inference_server(deployment: str, *, poll_interval: float) -> Iterator[str]:
    """Serve ``deployment`` until the block ends; yield its base URL. Leaving the block
    drains requests in flight and flushes the prediction log."""
    from mloop._uvicorn_thread import serve_in_thread
    from mloop.serving import create_app

    app = create_app(deployment, host="127.0.0.1", poll_interval=poll_interval, request_log=False)
    with serve_in_thread(
        app,
        start_timeout=START_TIMEOUT_S,
        name="mloop-demo-server",
        what=f"the inference server for {deployment!r}",
        hint=f"run `mloop serve {deployment}` to see why",
    ) as url:
        yield url
