"""A lean keep-alive HTTP/1.1 client for the JSON calls to ``mloop server``, beside httpx.

Creating a run through a server is two small requests, and httpx spends more Python on
each (URL merging, cookie jars, event objects) than the round trip itself costs on a local
network; the standard library's :mod:`http.client` spends a fraction of that. It is only
used where it sends exactly what the httpx client would: plain ``http://``, no credentials
in the URI, no proxy in the environment (httpx reads those); anything else stays on httpx.
Answers become :class:`httpx.Response` objects and failures the matching httpx exceptions,
so error handling is shared with every other request.

Like httpcore, a pooled connection the server has closed meanwhile (an idle keep-alive
timeout) is noticed before it is used, so no request is ever sent twice.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import httpx

_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class LeanClient:
    """Requests to one ``http://host:port/prefix``, over a small pool of connections."""

    def __init__(
        self, host: str, port: int, prefix: str, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> None:
        self._host = host
        self._port = port
        self._prefix = prefix
        self._headers = dict(headers)
        self._connect_timeout = timeout.connect
        self._read_timeout = timeout.read
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._owner = os.getpid()

    @classmethod
    def for_uri(
        cls, base_url: str, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> LeanClient | None:
        """A lean client for ``base_url``, or ``None`` where httpx must be used."""
        if any(os.environ.get(name) for name in _PROXY_VARIABLES):
            return None
        try:
            parts = urlsplit(base_url)
            port = parts.port or 80
        except ValueError:
            return None
        if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
            return None
        return cls(parts.hostname, port, parts.path.rstrip("/"), headers, timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        connection = self._checkout()
        try:
            connection.request(
                method, target, body=content, headers={**self._headers, **(headers or {})}
            )
            answer = connection.getresponse()
            body = answer.read()
        except TimeoutError as exc:
            connection.close()
            if not connection.connected_once:
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if not connection.connected_once:
                raise httpx.ConnectError(str(exc)) from exc
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        if answer.will_close:
            connection.close()
        else:
            self._checkin(connection)
        return httpx.Response(answer.status, headers=answer.getheaders(), content=body)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self) -> _Connection:
        with self._lock:
            if os.getpid() != self._owner:  # a forked child must not share the parent's sockets
                self._idle, self._owner = [], os.getpid()
            while self._idle:
                connection = self._idle.pop()
                if _still_open(connection):
                    return connection
                connection.close()
        return _Connection(self._host, self._port, self._connect_timeout, self._read_timeout)

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.append(connection)


class _Connection(http.client.HTTPConnection):
    """Connects with the connect timeout, then waits for answers with the read timeout."""

    def __init__(
        self, host: str, port: int, connect_timeout: float | None, read_timeout: float | None
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._read_timeout = read_timeout
        self.connected_once = False

    def connect(self) -> None:
        super().connect()
        self.connected_once = True
        self.sock.settimeout(self._read_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _still_open(connection: _Connection) -> bool:
    """An idle keep-alive socket with something to read has been closed by the server."""
    sock = connection.sock
    if sock is None:
        return False
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        sock.recv(1, socket.MSG_PEEK)  # end of stream, or bytes nobody asked for
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


__all__ = ["LeanClient"]
