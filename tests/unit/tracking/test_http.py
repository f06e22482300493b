"""The lean HTTP client against a real local HTTP/1.1 server: keep-alive, closed sockets,
errors, and where it must step aside for httpx."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.tracking._http import LeanClient, _Connection

TIMEOUTS = httpx.Timeout(5.0, connect=2.0)


class _Recorder(BaseHTTPRequestHandler):
    """Echoes each request as JSON; ``/drop`` answers, then closes the connection without
    saying so, as a server does when a keep-alive connection times out."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes, str | None]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(  # type: ignore[attr-defined]
            (self.command, self.path, body, self.headers.get("User-Agent"))
        )
        payload = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(418 if self.path.endswith("/teapot") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if self.path.endswith("/drop"):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Tells the test when it has closed a connection (no waiting on clocks)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[tuple[str, str, bytes, str | None]] = []
        self.closed = threading.Event()

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.set()


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def lean(server: _Server) -> LeanClient:
    client = LeanClient.for_uri(
        f"http://127.0.0.1:{server.server_address[1]}/api/v1", {"User-Agent": "t"}, TIMEOUTS
    )
    assert client is not None
    return client


def test_requests_reuse_one_connection_and_carry_the_headers(
    server: _Server,
) -> None:
    client = lean(server)
    first = client.request("POST", "/runs", content=b'{"a": 1}')
    second = client.request("GET", "/runs/x", params={"key": "a b"})
    assert first.json() == {"method": "POST", "path": "/api/v1/runs"}
    assert second.json()["path"] == "/api/v1/runs/x?key=a+b"
    assert server.seen == [
        ("POST", "/api/v1/runs", b'{"a": 1}', "t"),
        ("GET", "/api/v1/runs/x?key=a+b", b"", "t"),
    ]
    assert len(client._idle) == 1
    client.close()


def test_a_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice(
    server: _Server,
) -> None:
    client = lean(server)
    client.request("POST", "/drop")
    assert server.closed.wait(10)
    # The server closed the socket silently; it must not be used for the next request.
    assert client.request("POST", "/after").status_code == 200
    assert [path for _, path, _, _ in server.seen] == [
        "/api/v1/drop",
        "/api/v1/after",
    ]
    client.close()


def test_error_statuses_come_back_as_responses(server: _Server) -> None:
    client = lean(server)
    response = client.request("GET", "/teapot")
    assert response.status_code == 418
    assert response.is_error
    client.close()


def test_an_unreachable_server_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = LeanClient.for_uri(f"http://127.0.0.1:{port}", {}, TIMEOUTS)
    assert client is not None
    with pytest.raises(httpx.ConnectError):
        client.request("GET", "/health")


@pytest.mark.parametrize(
    "uri",
    [
        "https://tracking.example.com",  # certificates: httpx's trust store
        "http://user:secret@tracking.example.com",  # httpx sends these as basic auth
        "http://tracking.example.com:notaport",
    ],
)
def test_httpx_keeps_what_the_lean_client_would_do_differently(uri: str) -> None:
    assert LeanClient.for_uri(uri, {}, TIMEOUTS) is None


def test_a_proxy_in_the_environment_keeps_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.com:3128")
    assert LeanClient.for_uri("http://127.0.0.1:5000", {}, TIMEOUTS) is None


# -- reading answers: framing, property-tested over a socket pair -----------------------------


def _answer_over_socket(raw: bytes, method: str = "GET") -> tuple[Any, bool]:
    """What the lean client reads from ``raw`` arriving on its socket (then closed)."""
    ours, theirs = socket.socketpair()
    connection = _Connection("unused", 0, 5.0, 5.0)
    connection._sock, connection._file = ours, ours.makefile("rb")
    connection.connected_once = True
    writer = threading.Thread(target=lambda: (theirs.sendall(raw), theirs.close()))
    writer.start()
    try:
        return connection.read_response(method)
    finally:
        writer.join()
        connection.close()


def _chunked(body: bytes, cuts: list[int]) -> bytes:
    pieces, start = [], 0
    for cut in [*sorted({min(c, len(body)) for c in cuts}), len(body)]:
        if cut > start:
            pieces.append(body[start:cut])
            start = cut
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return framed + b"0\r\nX-Trailer: t\r\n\r\n"


@given(
    body=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    framing=st.sampled_from(["length", "chunked", "close"]),
    extra=st.lists(
        st.tuples(
            st.text("abcdefghij-", min_size=1, max_size=10), st.text("xyz 123;=", max_size=20)
        ),
        max_size=5,
    ),
)
@settings(max_examples=150, deadline=None)
def test_any_framed_body_reads_back_whole(
    body: bytes, cuts: list[int], framing: str, extra: list[tuple[str, str]]
) -> None:
    head = [b"HTTP/1.1 201 Created"] + [f"{k}: {v}".encode() for k, v in extra]
    if framing == "length":
        raw = b"\r\n".join([*head, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body
    elif framing == "chunked":
        raw = b"\r\n".join([*head, b"Transfer-Encoding: chunked"]) + b"\r\n\r\n"
        raw += _chunked(body, cuts)
    else:
        raw = b"\r\n".join([*head, b"Connection: close"]) + b"\r\n\r\n" + body
    answer, keep = _answer_over_socket(raw)
    assert (answer.status_code, answer.reason_phrase, answer.content) == (201, "Created", body)
    assert keep == (framing != "close")
    assert ("Transfer-Encoding", "chunked") in answer.headers or framing != "chunked"


@pytest.mark.parametrize(
    ("raw", "method", "content", "keep"),
    [
        (b"HTTP/1.1 204 No Content\r\nserver: x\r\n\r\n", "POST", b"", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", b"", True),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "GET",
            b"ok",
            True,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", b"ok", False),
        (b"HTTP/1.1 418\r\nContent-Length: 0\r\n\r\n", "GET", b"", True),
    ],
)
def test_answers_without_a_body_and_old_servers(
    raw: bytes, method: str, content: bytes, keep: bool
) -> None:
    answer, reusable = _answer_over_socket(raw, method)
    assert answer.content == content
    assert reusable == keep
    assert answer.reason_phrase  # 418 without a phrase gets the standard one


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # closed without answering
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_broken_answers_are_errors_not_guesses(raw: bytes) -> None:
    with pytest.raises((OSError, ValueError)):
        _answer_over_socket(raw)


def test_broken_answers_from_a_server_become_httpx_protocol_errors() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_badly() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            conn.close()

        thread = threading.Thread(target=answer_badly)
        thread.start()
        client = LeanClient.for_uri(f"http://127.0.0.1:{port}", {}, TIMEOUTS)
        assert client is not None
        with pytest.raises(httpx.RemoteProtocolError, match="5 of 10 bytes"):
            client.request("GET", "/x")
        thread.join()


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "line\nbreak", "k\u0101"])
def test_header_values_that_would_split_the_request_keep_httpx(value: str) -> None:
    assert LeanClient.for_uri("http://127.0.0.1:5000", {"Authorization": value}, TIMEOUTS) is None
