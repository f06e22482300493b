"""Stage 4 (and the traffic of later stages): a client population calls the server.

Every phase of traffic records its wall-clock window, so monitoring can be asked about
exactly the requests of that phase.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mloop.demo._population import Era, applicants
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize
from mloop.demo._traffic import TrafficReport, send_traffic

if TYPE_CHECKING:
    from mloop.demo._narrator import Narrator


def traffic_phase(
    narrator: Narrator,
    result: DemoResult,
    size: DemoSize,
    url: str,
    *,
    phase: str,
    era: Era,
    requests: int,
    seed: int,
) -> TrafficReport:
    """Send ``requests`` applicants of ``era`` as one phase named ``phase``."""
    population = applicants(requests, era=era, seed=seed)
    start = int(time.time() * 1000)
    with narrator.progress(f"{phase}: {requests} requests", requests) as advance:
        report = send_traffic(
            url,
            DEPLOYMENT,
            population,
            clients=size.clients,
            rate_per_s=size.request_rate,
            on_answer=lambda: advance(1),
        )
    end = int(time.time() * 1000) + 1
    result.traffic[phase] = report
    result.window_ms[phase] = (start, end)
    refused = report.sent - report.answered
    accuracy = report.accuracy
    narrator.say(
        f"{report.answered} answered"
        + (f", [red]{refused} refused[/] {dict(report.statuses)}" if refused else "")
        + f"; {report.labelled} outcomes reported back as feedback"
        + (f"; accuracy against them {accuracy:.1%}" if accuracy is not None else "")
        + f"; predicted defaults {_share(report, '1'):.0%}"
    )
    return report


def _share(report: TrafficReport, label: str) -> float:
    total = sum(report.predicted.values())
    return report.predicted[label] / total if total else 0.0
