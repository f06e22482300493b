"""The lean HTTP client against a real local HTTP/1.1 server: keep-alive, closed sockets,
errors, and where it must step aside for httpx."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mloop.tracking._http import LeanClient

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
