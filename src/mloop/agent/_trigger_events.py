"""Which events each kind of trigger sees at a moment ``now``.

Every function here is a pure question to the stores (alerts, window metrics, dataset
versions) plus the clock the caller passes in; none of them claims or runs anything. The
event key is what makes an event the same event to every agent that computes it:

========== ============================= ===============================================
kind       key                           fires
========== ============================= ===============================================
alert      ``alert:<alert id>``          once per alert of the rule, fired after arming
performance ``performance:<window no.>`` once per window (``now // window``) while the
                                         metric is past its threshold
schedule   ``schedule:<UTC fire time>``  once per cron time; after a gap, only the newest
dataset    ``dataset:<name>@<version>``  once for the newest version above the one seen
                                         at arming (versions in between are coalesced)
========== ============================= ===============================================
"""

from __future__ import annotations

from typing import Any

from mloop._ids import new_id
from mloop.agent._trigger_schedule import due_fire_ms, iso_utc
from mloop.agent._trigger_spec import DatasetCondition, PerformanceCondition, Trigger
from mloop.agent._trigger_store import Event
from mloop.config import Settings
from mloop.errors import NotFound


def arming(trigger: Trigger, *, now_ms: int, settings: Settings | None = None) -> dict[str, Any]:
    """What a trigger has seen when it is saved: events before this never fire it."""
    armed: dict[str, Any] = {"since_ms": now_ms}
    if trigger.on.dataset is not None:
        armed["version"] = _newest_version(trigger.on.dataset.name, settings)
    return armed


def due_events(
    trigger: Trigger, armed: dict[str, Any], *, now_ms: int, settings: Settings | None = None
) -> list[Event]:
    """The events of ``trigger`` at ``now_ms``, oldest first (claimed or not)."""
    since = int(armed.get("since_ms", 0))
    on = trigger.on
    if on.alert is not None:
        return _alert_events(on.alert, since, now_ms, settings)
    if on.performance is not None:
        return _performance_events(on.performance, now_ms, settings)
    if on.schedule is not None:
        fired = due_fire_ms(on.schedule.cron, since, now_ms)
        if fired is None:
            return []
        return [
            Event(
                key=f"schedule:{iso_utc(fired)}",
                detail={"cron": on.schedule.cron, "scheduled_ms": fired},
                params={},
            )
        ]
    assert on.dataset is not None
    return _dataset_events(on.dataset, int(armed.get("version", 0)), settings)


def manual_event(trigger: Trigger, *, who: str, settings: Settings | None = None) -> Event:
    """An event for ``mloop triggers fire``: always new. A dataset trigger gets the
    dataset's newest version, as a new version would have given it."""
    params: dict[str, Any] = {}
    detail: dict[str, Any] = {"by": who}
    if trigger.on.dataset is not None:
        newest = _newest_version(trigger.on.dataset.name, settings)
        if newest:
            ref = f"{trigger.on.dataset.name}@{newest}"
            params[trigger.on.dataset.param] = ref
            detail["dataset"] = ref
    return Event(key=f"manual:{new_id()}", detail=detail, params=params)


def _alert_events(rule: str, since_ms: int, now_ms: int, settings: Settings | None) -> list[Event]:
    from mloop.monitoring import list_alerts

    found = list_alerts(rule=rule, since_ms=since_ms, settings=settings)
    alerts = [a for a in found if a.fired_ms <= now_ms]
    alerts.sort(key=lambda a: (a.fired_ms, str(a.id)))
    return [
        Event(
            key=f"alert:{alert.id}",
            detail={
                "alert": str(alert.id),
                "rule": alert.rule,
                "deployment": alert.deployment,
                "metric": alert.metric,
                "value": alert.value,
                "threshold": alert.threshold,
                "fired_ms": alert.fired_ms,
                "message": alert.message,
            },
            params={},
        )
        for alert in alerts
        if alert.fired_ms > since_ms
    ]


def _performance_events(
    condition: PerformanceCondition, now_ms: int, settings: Settings | None
) -> list[Event]:
    from mloop.monitoring import window_metrics

    window = condition.window_ms
    start = now_ms - window
    metrics = window_metrics(condition.deployment, start, now_ms, settings=settings)
    value = primary_value(condition, metrics)
    if value is None or not condition.breached(value):
        return []
    threshold = condition.below if condition.below is not None else condition.above
    return [
        Event(
            key=f"performance:{now_ms // window}",
            detail={
                "deployment": condition.deployment,
                "metric": condition.metric,
                "value": value,
                "threshold": threshold,
                "direction": "below" if condition.below is not None else "above",
                "window_start_ms": start,
                "window_end_ms": now_ms,
            },
            params={},
        )
    ]


def primary_value(condition: PerformanceCondition, metrics: dict[Any, Any]) -> float | None:
    """The metric over the deployment's primary answers: one primary's value, or the mean
    over several (an ensemble) weighted by how many answers (labels, for the online
    metric) each had. None when there is too little to judge."""
    weighted = 0.0
    total = 0
    for key, window in metrics.items():
        role = key[2] if isinstance(key, tuple) and len(key) > 2 else "primary"
        if role != "primary":
            continue
        value = getattr(window, condition.metric, None)
        if value is None:
            continue
        weight = int(window.labelled if condition.metric == "online_metric" else window.count)
        if weight <= 0:
            continue
        weighted += float(value) * weight
        total += weight
    needed = condition.min_labelled if condition.metric == "online_metric" else 1
    if total == 0 or total < needed:
        return None
    return weighted / total


def _dataset_events(
    condition: DatasetCondition, seen: int, settings: Settings | None
) -> list[Event]:
    newest = _newest_version(condition.name, settings)
    if newest <= seen:
        return []
    ref = f"{condition.name}@{newest}"
    return [
        Event(
            key=f"dataset:{ref}",
            detail={"dataset": ref, "previous": seen or None},
            params={condition.param: ref},
        )
    ]


def _newest_version(name: str, settings: Settings | None) -> int:
    from mloop.data._versions import open_registry

    with open_registry(settings) as registry:
        try:
            versions = registry.list_versions(name)
        except NotFound:
            return 0
    return max((v.version for v in versions), default=0)
