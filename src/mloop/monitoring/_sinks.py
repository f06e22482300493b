"""Where alerts go: the log, a webhook (HTTP POST of JSON), a command (JSON on stdin).

A sink that fails does not stop the others or the monitoring run: each delivery's outcome
is recorded with the alert (``deliveries``) and logged. Nothing secret is logged: a
webhook is named by its host only (URLs often carry tokens) and its headers never appear.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from mloop._ids import now_ms
from mloop.monitoring._spec import CommandSink, LogSink, Sink, WebhookSink
from mloop.monitoring._store import Alert

log = logging.getLogger("mloop.monitoring.alerts")

Sleep = Callable[[float], None]


def payload(alert: Alert, event: str) -> dict[str, Any]:
    """The JSON a webhook or a command receives."""
    body = alert.to_dict()
    body.pop("deliveries")
    return {"event": event, "alert": body}


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def send_webhook(
    sink: WebhookSink, body: dict[str, Any], *, sleep: Sleep = time.sleep
) -> dict[str, Any]:
    """POST ``body``; retry connection errors, timeouts and 5xx answers (at most
    ``retries`` more times, the wait doubling from ``backoff_s``). A 4xx is not retried:
    the receiver refused this alert, and would again."""
    import httpx

    result: dict[str, Any] = {"sink": "webhook", "target": _host(sink.url)}
    content = orjson.dumps(body)
    headers = {"Content-Type": "application/json", **sink.headers}
    wait = sink.backoff_s
    with httpx.Client(timeout=sink.timeout_s, follow_redirects=False) as client:
        for attempt in range(1, sink.retries + 2):
            result["attempts"] = attempt
            try:
                answer = client.post(sink.url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                result.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
            else:
                result["status"] = answer.status_code
                if answer.is_success:
                    result.update(ok=True, error=None)
                    return result
                result.update(ok=False, error=f"HTTP {answer.status_code}")
                if answer.status_code < 500:
                    return result
            if attempt <= sink.retries:
                sleep(wait)
                wait *= 2
    return result


def run_command(sink: CommandSink, body: dict[str, Any]) -> dict[str, Any]:
    """Run ``argv`` (no shell) with ``body`` as JSON on stdin; exit status 0 is success."""
    result: dict[str, Any] = {"sink": "command", "target": sink.argv[0], "attempts": 1}
    try:
        done = subprocess.run(
            sink.argv,
            input=orjson.dumps(body),
            capture_output=True,
            timeout=sink.timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return {**result, "ok": False, "error": f"program {sink.argv[0]!r} not found"}
    except subprocess.TimeoutExpired:
        return {**result, "ok": False, "error": f"did not finish within {sink.timeout_s:g} s"}
    except OSError as exc:
        return {**result, "ok": False, "error": f"could not run it: {exc.strerror or exc}"}
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
        return {**result, "ok": False, "status": done.returncode,
                "error": f"exit status {done.returncode}" + (f": {tail}" if tail else "")}  # fmt: skip
    return {**result, "ok": True, "status": 0, "error": None}


def deliver(sink: Sink, alert: Alert, event: str, *, sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Send one alert event to one sink; never raises."""
    body = payload(alert, event)
    try:
        if isinstance(sink, LogSink):
            level = logging.WARNING if event == "fired" else logging.INFO
            text = alert.message if event == "fired" else alert.resolution
            log.log(level, "%s: %s", "ALERT" if event == "fired" else "resolved", text)
            result: dict[str, Any] = {"sink": "log", "target": log.name, "attempts": 1, "ok": True}
        elif isinstance(sink, WebhookSink):
            result = send_webhook(sink, body, sleep=sleep)
        else:
            result = run_command(sink, body)
    except Exception as exc:  # a sink's bug must not lose the other sinks' deliveries
        log.exception("alert sink %s failed", sink.type)
        result = {"sink": sink.type, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result.update(event=event, at=now_ms())
    if not result.get("ok"):
        log.warning(
            "alert %s (%s) not delivered to %s %s: %s",
            alert.rule, event, result["sink"], result.get("target", ""), result.get("error"),
        )  # fmt: skip
    return result


def deliver_all(
    alert: Alert, sinks: Sequence[Sink], event: str, *, sleep: Sleep = time.sleep
) -> list[dict[str, Any]]:
    return [deliver(sink, alert, event, sleep=sleep) for sink in sinks]
