"""The command and log sinks (the webhook one is tested against a real receiver in
tests/integration/test_monitoring_webhook.py)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from mloop.monitoring import Alert, CommandSink, LogSink
from mloop.monitoring._sinks import deliver, deliver_all

ALERT = Alert(
    id="a1", rule="iris-drift", deployment="iris", metric="drift.max_score", op=">",
    value=0.7, threshold=0.3, state="firing", fired_ms=1, resolved_ms=None,
    window_start_ms=0, window_end_ms=1, last_value=0.7, last_window_end_ms=1,
    message="iris: drift.max_score = 0.7 > 0.3", deliveries=[],
)  # fmt: skip


def test_a_command_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    result = deliver(CommandSink(argv=[sys.executable, "-c", script]), ALERT, "fired")
    assert result["ok"] is True
    body = json.loads(out.read_text())
    assert body["event"] == "fired"
    assert body["alert"]["rule"] == "iris-drift"
    assert "deliveries" not in body["alert"]


def test_arguments_are_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1])", f"; touch {marker}"]
    assert deliver(CommandSink(argv=argv), ALERT, "fired")["ok"] is True
    assert not marker.exists()


def test_failing_commands_are_recorded_not_raised() -> None:
    failed = deliver(
        CommandSink(argv=[sys.executable, "-c", "import sys; sys.stderr.write('no'); sys.exit(3)"]),
        ALERT, "fired",
    )  # fmt: skip
    assert failed["ok"] is False
    assert failed["error"] == "exit status 3: no"
    missing = deliver(CommandSink(argv=["/nonexistent/notify"]), ALERT, "fired")
    assert missing["ok"] is False
    assert "not found" in missing["error"]
    slow = deliver(
        CommandSink(argv=[sys.executable, "-c", "import time; time.sleep(5)"], timeout_s=0.2),
        ALERT, "fired",
    )  # fmt: skip
    assert "did not finish" in slow["error"]


def test_the_log_sink_and_every_sink_in_order(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mloop.monitoring.alerts"):
        results = deliver_all(ALERT, [LogSink(), CommandSink(argv=["/nonexistent"])], "fired")
    assert [r["sink"] for r in results] == ["log", "command"]
    assert "ALERT: iris: drift.max_score = 0.7 > 0.3" in caplog.text
    assert "not delivered to command" in caplog.text
