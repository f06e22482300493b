"""Tracing: W3C trace ids with and without OpenTelemetry, OTLP export to a real receiver
on 127.0.0.1, and the one-line JSON request log."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mloop.serving._tracing import (
    NoopTracing,
    OtelTracing,
    RequestLogger,
    parse_traceparent,
    tracing_from_env,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"


def test_parse_traceparent() -> None:
    parsed = parse_traceparent(HEADER)
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id, parsed.sampled) == (TRACE, PARENT, True)
    assert parse_traceparent(f"00-{TRACE.upper()}-{PARENT}-00").sampled is False  # type: ignore[union-attr]
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-future") is not None
    for bad in (
        None,
        "",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"00-{TRACE[:-1]}-{PARENT}-01",
        "garbage",
    ):
        assert parse_traceparent(bad) is None, bad


@given(st.text(max_size=80))
def test_any_header_parses_or_is_ignored(header: str) -> None:
    parsed = parse_traceparent(header)
    if parsed is not None:
        assert len(parsed.trace_id) == 32
        assert len(parsed.span_id) == 16


def test_noop_keeps_the_callers_trace_or_makes_one() -> None:
    tracing = NoopTracing()
    with tracing.span("infer", HEADER, deployment="iris") as span:
        assert span.trace_id == TRACE
        assert span.span_id != PARENT
        assert span.traceparent.startswith(f"00-{TRACE}-")
        span.set(status=200)
    with tracing.span("infer", "not a header") as first, tracing.span("infer") as second:
        assert len(first.trace_id) == 32
        assert first.trace_id != second.trace_id
    assert span.attributes == {"deployment": "iris", "status": 200}


def test_no_endpoint_means_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(tracing_from_env(environ={}), NoopTracing)
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    assert isinstance(tracing_from_env(environ=disabled), NoopTracing)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_spans_are_exported_over_otlp_http(
    otlp_receiver: tuple[str, list[tuple[str, str, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "iris-server")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    tracing = tracing_from_env()
    assert isinstance(tracing, OtelTracing)

    with tracing.span("infer", HEADER, deployment="iris") as span:
        span.set(model="iris", version=3, status=200)
    with tracing.span("infer") as fresh:
        fresh.error("INVALID_INPUT", "bad shape")
    tracing.shutdown()  # flushes the batch

    assert received, "nothing reached the receiver"
    assert {(path, kind) for path, kind, _ in received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    spans = []
    for _, _, body in received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "iris-server"
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    by_trace = {s.trace_id.hex(): s for s in spans}
    assert set(by_trace) == {TRACE, fresh.trace_id}
    child = by_trace[TRACE]
    assert child.parent_span_id.hex() == PARENT
    assert child.span_id.hex() == span.span_id
    assert child.name == "infer"
    attributes = {a.key: a.value for a in child.attributes}
    assert attributes["mloop.deployment"].string_value == "iris"
    assert attributes["mloop.version"].int_value == 3
    failed = by_trace[fresh.trace_id]
    assert failed.parent_span_id == b""
    assert failed.status.code == 2  # STATUS_CODE_ERROR
    assert failed.status.message == "bad shape"


def test_request_log_lines() -> None:
    stream = io.StringIO()
    logger = RequestLogger(stream)
    logger.log(
        request_id="r1",
        trace_id=TRACE,
        deployment="iris",
        status=200,
        latency_ms=1.23456,
        model="iris",
        version=3,
        role="primary",
    )
    logger.log(
        request_id="r2",
        trace_id=None,
        deployment="iris",
        status=400,
        latency_ms=0.5,
        error="SIGNATURE_MISMATCH",
    )
    RequestLogger(stream, enabled=False).log(
        request_id="r3", trace_id=None, deployment="iris", status=200, latency_ms=1
    )

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "r1"
    assert first["trace_id"] == TRACE
    assert (first["status"], first["level"], first["latency_ms"]) == (200, "info", 1.235)
    assert (first["model"], first["version"], first["role"]) == ("iris", 3, "primary")
    assert (second["level"], second["error"]) == ("warning", "SIGNATURE_MISMATCH")
    assert set(first) == {
        "time",
        "level",
        "logger",
        "event",
        "request_id",
        "trace_id",
        "deployment",
        "model",
        "version",
        "role",
        "status",
        "latency_ms",
    }


def test_request_log_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    RequestLogger().log(request_id="r1", trace_id=None, deployment="iris", status=503, latency_ms=2)
    assert json.loads(capsys.readouterr().out)["level"] == "error"
