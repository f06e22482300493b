"""Alerts POSTed to a real HTTP receiver on 127.0.0.1: the body, retries on 5xx and on a
closed port (bounded), no retry on 4xx, and the alert run end to end through a rule."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mloop.monitoring import Alert, WebhookSink, list_alerts, run_monitor, save_alert_rule
from mloop.monitoring._sinks import send_webhook
from mloop.serving._predlog import PredictionLog
from tests.fixtures.monitoring import HOUR, T0, Traffic, serve_window

ALERT = Alert(
    id="a1", rule="r", deployment="iris", metric="error_rate", op=">", value=0.5,
    threshold=0.1, state="firing", fired_ms=1, resolved_ms=None, window_start_ms=0,
    window_end_ms=1, last_value=0.5, last_window_end_ms=1, message="m", deliveries=[],
)  # fmt: skip


class Receiver:
    """Records every POST; answers the statuses queued in ``answers`` (then 200)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    log = PredictionLog(fsync="off", compact_interval=None)
    yield Traffic(log)
    log.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()
    thread.join(timeout=5)


def test_the_alert_arrives_as_json_with_the_headers(receiver: Receiver) -> None:
    sink = WebhookSink(url=receiver.url, headers={"Authorization": "Bearer abc"})
    result = send_webhook(sink, {"event": "fired", "alert": ALERT.to_dict()})
    assert result["ok"] is True
    assert result["status"] == 200
    assert result["target"] == receiver.url.split("/hook")[0]  # no path, no token
    assert receiver.bodies[0]["alert"]["rule"] == "r"
    assert receiver.headers[0]["Authorization"] == "Bearer abc"
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_5xx_is_retried_a_bounded_number_of_times(receiver: Receiver) -> None:
    waits: list[float] = []
    receiver.answers = [503, 502]
    ok = send_webhook(
        WebhookSink(url=receiver.url, retries=2, backoff_s=0.5), {}, sleep=waits.append
    )
    assert ok["ok"] is True
    assert ok["attempts"] == 3
    assert waits == [0.5, 1.0]
    receiver.answers = [500, 500, 500]
    failed = send_webhook(
        WebhookSink(url=receiver.url, retries=1, backoff_s=0), {}, sleep=waits.append
    )
    assert failed == {**failed, "ok": False, "attempts": 2, "error": "HTTP 500"}


def test_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.answers = [404]
    result = send_webhook(WebhookSink(url=receiver.url, retries=3, backoff_s=0), {})
    assert result["ok"] is False
    assert result["attempts"] == 1
    assert len(receiver.bodies) == 1


def test_a_closed_port_fails_after_the_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = WebhookSink(url=f"http://127.0.0.1:{port}/x", retries=1, backoff_s=0, timeout_s=1)
    result = send_webhook(sink, {})
    assert result["ok"] is False
    assert result["attempts"] == 2
    assert "ConnectError" in result["error"]


def test_a_rule_fires_and_resolves_through_the_webhook(
    receiver: Receiver, traffic: Traffic
) -> None:
    save_alert_rule({"name": "errors", "deployment": "iris", "metric": "error_rate",
                     "threshold": 0.1, "sinks": [{"webhook": receiver.url}]})  # fmt: skip
    serve_window(traffic, T0, 50, seed=1, error_every=2)
    serve_window(traffic, T0 + HOUR, 50, seed=2)
    fired = run_monitor("iris", now_ms=T0 + HOUR)
    assert [a.rule for a in fired.fired] == ["errors"]
    resolved = run_monitor("iris", now_ms=T0 + 2 * HOUR)
    assert [a.rule for a in resolved.resolved] == ["errors"]
    assert [b["event"] for b in receiver.bodies] == ["fired", "resolved"]
    assert receiver.bodies[0]["alert"]["value"] == 0.5
    (alert,) = list_alerts("iris")
    assert [d["ok"] for d in alert.deliveries] == [True, True]
    assert all("s3cret" not in json.dumps(d) for d in alert.deliveries)
