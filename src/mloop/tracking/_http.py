"""A lean keep-alive HTTP/1.1 client for the JSON calls to ``mloop server``, beside httpx.

Creating a run through a server is two small requests, and httpx spends more Python on
each (URL merging, cookie jars, event objects) than the round trip itself costs on a local
network; even the standard library's :mod:`http.client` spent 0.3 ms a request here
(its header parsing goes through the e-mail parser). So the request is written to the
socket as one buffer and the answer read back with the few rules an HTTP/1.1 server's
JSON answer needs: a status line, headers, and a body framed by ``Content-Length``,
``chunked`` encoding or the end of the connection. It is only used where it sends exactly
what the httpx client would: plain ``http://``, no credentials in the URI, no proxy in the
environment (httpx reads those); anything else stays on httpx. Failures become the
matching httpx exceptions, so error handling is shared with every other request.

Like httpcore, a pooled connection the server has closed meanwhile (an idle keep-alive
timeout) is noticed before it is used, so no request is ever sent twice.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_MAX_LINE = 65_536
_MAX_HEADERS = 100


class LeanResponse:
    """An answer: status, headers and the whole body (what the JSON calls need of one)."""

    __slots__ = ("content", "headers", "reason_phrase", "status_code")

    def __init__(
        self, status_code: int, reason_phrase: str, headers: list[tuple[str, str]], content: bytes
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)

    def to_httpx(self) -> httpx.Response:
        """The same answer as an :class:`httpx.Response` (for code written against httpx)."""
        return httpx.Response(self.status_code, headers=self.headers, content=self.content)


class LeanClient:
    """Requests to one ``http://host:port/prefix``, over a small pool of connections."""

    def __init__(
        self, host: str, port: int, prefix: str, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> None:
        self._host = host
        self._port = port
        self._prefix = prefix
        authority = f"[{host}]" if ":" in host else host
        self._host_header = authority if port == 80 else f"{authority}:{port}"
        self._headers = dict(headers)
        for name, value in self._headers.items():
            _check_header(name, value)
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
        try:
            return cls(parts.hostname, port, parts.path.rstrip("/"), headers, timeout)
        except ValueError:  # a header httpx would refuse too: let httpx say so
            return None

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> LeanResponse:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        message = self._message(method, target, content, headers)
        connection = self._checkout()
        try:
            connection.send(message)
            answer, keep = connection.read_response(method)
        except TimeoutError as exc:
            connection.close()
            if not connection.connected_once:
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except (OSError, ValueError) as exc:
            connection.close()
            if not connection.connected_once:
                raise httpx.ConnectError(str(exc)) from exc
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        if keep:
            self._checkin(connection)
        else:
            connection.close()
        return answer

    def _message(
        self,
        method: str,
        target: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        if not target.isprintable() or " " in target:
            raise httpx.InvalidURL(f"invalid request target {target!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{name}: {value}" for name, value in self._headers.items())
        for name, value in (headers or {}).items():
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        lines.append("Accept-Encoding: identity")
        if content is not None or method in _BODY_METHODS:
            lines.append(f"Content-Length: {len(content or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + content if content else head

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
                if connection.still_open():
                    return connection
                connection.close()
        return _Connection(self._host, self._port, self._connect_timeout, self._read_timeout)

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.append(connection)


class _Connection:
    """One socket: connects with the connect timeout, then reads with the read timeout."""

    def __init__(
        self, host: str, port: int, connect_timeout: float | None, read_timeout: float | None
    ) -> None:
        self._address = (host, port)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self.connected_once = False

    def send(self, message: bytes) -> None:
        if self._sock is None:
            sock = socket.create_connection(self._address, timeout=self._connect_timeout)
            self.connected_once = True
            sock.settimeout(self._read_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._file = sock, sock.makefile("rb")
        self._sock.sendall(message)

    def read_response(self, method: str) -> tuple[LeanResponse, bool]:
        """The next answer, and whether the connection may carry another request."""
        while True:
            version, status, reason = self._status_line()
            headers = self._headers()
            if not 100 <= status < 200 or status == 101:
                break  # an interim 1xx answer is followed by the real one
        fields = {name.lower(): value for name, value in headers}
        connection = fields.get("connection", "").lower()
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in fields:
            length = int(fields["content-length"])
            if length < 0:
                raise ValueError(f"negative Content-Length {length}")
            body = self._exactly(length)
        else:  # the body ends with the connection
            body, keep = self._file.read(), False
        return LeanResponse(status, reason, headers, body), keep

    def _line(self) -> bytes:
        line: bytes = self._file.readline(_MAX_LINE + 1)
        if not line:
            raise ConnectionError("the server closed the connection without answering")
        if len(line) > _MAX_LINE:
            raise ValueError("an answer line is longer than 64 KiB")
        return line

    def _status_line(self) -> tuple[str, int, str]:
        version, _, rest = self._line().decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError(f"not an HTTP/1.x status line: {version} {rest}"[:200])
        status = int(code)
        return version, status, reason or _phrase(status)

    def _headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            if len(headers) >= _MAX_HEADERS:
                raise ValueError(f"more than {_MAX_HEADERS} header lines")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ValueError(f"malformed header line {line[:100]!r}")
            headers.append((name.strip(), value.strip()))

    def _exactly(self, length: int) -> bytes:
        data: bytes = self._file.read(length)
        if len(data) != length:
            raise ConnectionError(f"the answer ended after {len(data)} of {length} bytes")
        return data

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._line().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._line()  # the CRLF after each chunk

    def still_open(self) -> bool:
        """An idle keep-alive socket with something to read has been closed by the server."""
        sock = self._sock
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

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None


def _check_header(name: str, value: str) -> None:
    """Refuse what would split the request (CR, LF) or break its framing."""
    if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
        raise ValueError(f"invalid HTTP header {name!r}")
    (name + value).encode("latin-1")  # UnicodeEncodeError is a ValueError too


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


__all__ = ["LeanClient", "LeanResponse"]
