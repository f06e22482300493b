"""Traces and request logs: every prediction can be followed end to end by its trace id.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) set and the ``otel`` extra
installed, each request becomes an OpenTelemetry span exported over OTLP/HTTP (the SDK
reads the standard ``OTEL_*`` variables: headers, timeout, compression, service name).
Otherwise a no-op tracer still hands out W3C trace ids — the caller's ``traceparent``
when it sent a valid one, else a fresh random id — so the prediction log always has one.

``RequestLogger`` writes one JSON line per request to stdout for Fluentd/Logstash. It takes
a fixed set of fields (ids, deployment, model, status, latency, error code): there is no
way to pass inputs, outputs or headers to it, so none can leak into the logs.
"""

from __future__ import annotations

import os
import random
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    span_id: str
    sampled: bool


def parse_traceparent(header: str | None) -> TraceParent | None:
    """A W3C ``traceparent`` header, or None when absent or invalid (then a new trace
    starts, as the spec asks). Future versions may append fields; version ``ff`` is
    invalid, and so are all-zero ids."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if not match:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))


@dataclass
class RequestSpan:
    """What the request handler sees of its span: the ids, and a place for attributes."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    _span: Any = None

    @property
    def traceparent(self) -> str:
        """The header to send downstream (e.g. to a remote shadow model)."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    def set(self, **attributes: str | int | float | bool) -> None:
        self.attributes.update(attributes)
        if self._span is not None:
            self._span.set_attributes({f"mloop.{k}": v for k, v in attributes.items()})

    def error(self, code: str, message: str) -> None:
        """Mark the span failed, with an error code (never the request body)."""
        self.set(error=code)
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, message))


class Tracing(Protocol):
    enabled: bool

    def span(
        self, name: str, traceparent: str | None = None, **attributes: Any
    ) -> Any:  # a context manager yielding RequestSpan
        ...

    def shutdown(self) -> None: ...


def _random_id(bits: int) -> int:
    """A non-zero random id, as OpenTelemetry's own generator makes them: ids identify, they
    guard nothing, so the operating system's random source (a system call each) is not needed."""
    return random.getrandbits(bits) or 1


class NoopTracing:
    """Trace ids without exporting anything."""

    enabled = False

    @contextmanager
    def span(
        self, name: str, traceparent: str | None = None, **attributes: Any
    ) -> Iterator[RequestSpan]:
        parent = parse_traceparent(traceparent)
        trace_id = parent.trace_id if parent else f"{_random_id(128):032x}"
        yield RequestSpan(trace_id, f"{_random_id(64):016x}", dict(attributes))

    def shutdown(self) -> None:
        pass


class OtelTracing:
    """Spans through the OpenTelemetry SDK on a provider of its own (the process-global
    one is left to the application), exported in batches over OTLP/HTTP."""

    enabled = True

    def __init__(self, service_name: str = "mloop-serving") -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        configured = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create({} if configured else {SERVICE_NAME: service_name})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("mloop.serving")
        self._propagator = TraceContextTextMapPropagator()

    @contextmanager
    def span(
        self, name: str, traceparent: str | None = None, **attributes: Any
    ) -> Iterator[RequestSpan]:
        from opentelemetry.trace import SpanKind

        carrier = {"traceparent": traceparent} if parse_traceparent(traceparent) else {}
        context = self._propagator.extract(carrier)
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=SpanKind.SERVER,
            attributes={f"mloop.{k}": v for k, v in attributes.items()},
        ) as span:
            ids = span.get_span_context()
            yield RequestSpan(
                format(ids.trace_id, "032x"), format(ids.span_id, "016x"), dict(attributes), span
            )

    def shutdown(self) -> None:
        """Export what is buffered and stop (graceful shutdown)."""
        self._provider.shutdown()


def tracing_from_env(
    service_name: str = "mloop-serving", environ: Mapping[str, str] | None = None
) -> NoopTracing | OtelTracing:
    """OTLP tracing when an endpoint is configured and the ``otel`` extra is installed
    (``OTEL_SDK_DISABLED=true`` turns it off); the no-op tracer otherwise."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return NoopTracing()
    if not any(env.get(name) for name in ENDPOINT_VARIABLES):
        return NoopTracing()
    try:
        return OtelTracing(service_name)
    except ImportError:
        import logging

        logging.getLogger("mloop.serving").warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed; "
            "traces are off: pip install 'mloop[otel]'"
        )
        return NoopTracing()


class RequestLogger:
    """One JSON line per request on stdout (looked up per write, so a redirected or captured
    stdout is honoured). Only the named fields exist: nothing else can be logged."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream
        self.enabled = enabled
        self._lock = threading.Lock()

    def log(
        self,
        *,
        request_id: str,
        trace_id: str | None,
        deployment: str,
        status: int,
        latency_ms: float,
        model: str | None = None,
        version: int | str | None = None,
        role: str | None = None,
        error: str | None = None,
        protocol: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        line: dict[str, Any] = {
            "time": time.time(),
            "level": "error" if status >= 500 else "warning" if status >= 400 else "info",
            "logger": "mloop.serving",
            "event": "request",
            "request_id": request_id,
            "trace_id": trace_id,
            "deployment": deployment,
            "model": model,
            "version": version,
            "role": role,
            "status": status,
            "latency_ms": round(latency_ms, 3),
        }
        if error is not None:
            line["error"] = error
        if protocol is not None:
            line["protocol"] = protocol
        text = orjson.dumps(line).decode() + "\n"
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(text)
            stream.flush()
