"""A simulated client population calling the inference server over HTTP.

Each applicant is one request from one of a bounded set of clients (``X-Mloop-Route-Key``
is the client id, so a client sticks to one model during a canary), sent a few at a time
so the server's micro-batching has company. The true outcome of an applicant becomes
known later, as in credit scoring: labels are posted to ``/v1/feedback`` a batch behind
the requests they answer, and the last batch when the traffic ends.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.demo._population import FEATURES, LABEL
from mloop.errors import MloopError

if TYPE_CHECKING:
    import httpx
    import pandas as pd

CONCURRENCY = 8
FEEDBACK_BATCH = 50
TIMEOUT_S = 30.0


class TrafficFailed(MloopError):
    """The inference server stopped answering the demo's clients."""


@dataclass
class TrafficReport:
    """What the clients saw: answers, refusals by status, labels sent, answers by label."""

    sent: int = 0
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    labelled: int = 0
    predicted: Counter[str] = field(default_factory=Counter)
    request_ids: list[str] = field(default_factory=list)
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        """Share of answers that matched the label the client later reported."""
        return self.correct / self.answered if self.answered else None


def send_traffic(
    url: str,
    deployment: str,
    applicants: pd.DataFrame,
    *,
    clients: int,
    rate_per_s: float | None = None,
    feedback: bool = True,
    on_answer: Callable[[], None] | None = None,
) -> TrafficReport:
    """Send one request per applicant (labels as feedback when ``feedback``). With
    ``rate_per_s`` the applicants arrive at that rate (no faster), as a population does:
    a phase of ``n`` requests then lasts at least ``n / rate_per_s`` seconds."""
    return asyncio.run(
        _send(
            url,
            deployment,
            applicants,
            clients=clients,
            rate_per_s=rate_per_s,
            feedback=feedback,
            on_answer=on_answer,
        )
    )


async def _send(
    url: str,
    deployment: str,
    applicants: pd.DataFrame,
    *,
    clients: int,
    rate_per_s: float | None,
    feedback: bool,
    on_answer: Callable[[], None] | None,
) -> TrafficReport:
    import httpx

    loop = asyncio.get_running_loop()
    started = loop.time()

    report = TrafficReport()
    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in applicants[list(FEATURES)].to_dict(orient="records")
    ]
    labels = [int(v) for v in applicants[LABEL]]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(rows)):
        queue.put_nowait(index)
    pending: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S, limits=limits) as http:

        async def client() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                if rate_per_s:
                    delay = started + index / rate_per_s - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                answer = await _predict(http, deployment, rows[index], f"client-{index % clients}")
                report.sent += 1
                if answer is None:
                    report.statuses[0] += 1
                    continue
                status, request_id, prediction = answer
                report.statuses[status] += 1
                if status == 200 and request_id is not None:
                    report.answered += 1
                    report.request_ids.append(request_id)
                    report.predicted[str(prediction)] += 1
                    report.correct += int(prediction == labels[index])
                    pending.append({"request_id": request_id, "label": labels[index]})
                if on_answer is not None:
                    on_answer()
                if feedback and len(pending) >= 2 * FEEDBACK_BATCH:
                    batch = pending[:FEEDBACK_BATCH]
                    del pending[:FEEDBACK_BATCH]
                    report.labelled += await _post_feedback(http, batch)

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        if feedback and pending:
            report.labelled += await _post_feedback(http, pending)
    if report.sent and not report.answered:
        raise TrafficFailed(
            f"the inference server answered none of {report.sent} requests "
            f"(statuses {dict(report.statuses)}); run `mloop serve {deployment}` to see why"
        )
    return report


async def _predict(
    http: httpx.AsyncClient, deployment: str, row: dict[str, Any], client_id: str
) -> tuple[int, str | None, Any] | None:
    import httpx

    try:
        response = await http.post(
            f"/v1/models/{deployment}:predict",
            json={"instances": [row]},
            headers={"X-Mloop-Route-Key": client_id},
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return response.status_code, None, None
    body = response.json()
    prediction = body["predictions"][0]
    if isinstance(prediction, dict):
        prediction = prediction.get("label", prediction.get("predictions"))
    return 200, body.get("id") or response.headers.get("x-request-id"), prediction


async def _post_feedback(http: httpx.AsyncClient, items: list[dict[str, Any]]) -> int:
    import httpx

    try:
        response = await http.post("/v1/feedback", json={"items": items})
    except httpx.HTTPError:
        return 0
    if response.status_code != 200:
        return 0
    return int(response.json().get("recorded", 0))
