"""``python -m mloop.server [--host H] [--port P] [--workers N] [--auth auto|on|off]``."""

from __future__ import annotations

import argparse

from mloop.server._app import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mloop.server", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument(
        "--auth",
        choices=("auto", "on", "off"),
        default=None,
        help="require API keys (default: MLOOP_SERVER_AUTH, else auto = on unless the host "
        "is a loopback address)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request (off by default: it costs ~0.15 ms a request)",
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers, args.auth, access_log=args.access_log)


if __name__ == "__main__":
    main()
