"""Triggers and firings in the metadata store, on SQLite and a real PostgreSQL: saving is
idempotent and audited, an event is claimed once however many threads race for it, the
cooldown skips, and history outlives the trigger."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import inspect

from mloop.agent._trigger_firings import claim_firing, finish_firing, get_firing, list_firings
from mloop.agent._trigger_spec import Trigger
from mloop.agent._trigger_store import (
    Event,
    delete_trigger,
    get_stored_trigger,
    list_stored_triggers,
    save_trigger,
)
from mloop.agent._triggers import fire_trigger
from mloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mloop.registry import Principal, RoleGrant, list_audit_log, verify_audit_log
from mloop.store import MetadataStore, head_revision
from mloop.store import current_revision as schema_revision
from mloop.store._engine import _alembic_config

T0 = 1_800_000_000_000


def _trigger(name: str = "nightly", cron: str = "0 3 * * *", **extra: object) -> Trigger:
    return Trigger.parse(
        {"name": name, "pipeline": "pkg.mod:fn", "on": {"schedule": cron}, **extra}
    )


def _event(key: str = "schedule:2027-01-15T08:00Z") -> Event:
    return Event(key=key, detail={"scheduled_ms": T0}, params={"data": "churn@2"})


def test_save_get_list_delete_with_audit(db: str) -> None:
    made = save_trigger(
        _trigger(params={"data": "churn@latest"}), armed={"since_ms": T0}, now_ms=T0
    )
    assert (made.created_by, made.creation_time, made.armed) == ("ada", T0, {"since_ms": T0})
    again = save_trigger(_trigger(params={"data": "churn@latest"}), armed={"since_ms": T0 + 9})
    assert again == made  # unchanged: no new arming, no audit entry
    save_trigger(_trigger("b", "@daily"), armed={})
    assert [s.trigger.name for s in list_stored_triggers()] == ["b", "nightly"]
    # a new parameter keeps the arming; a new event re-arms
    kept = save_trigger(_trigger(params={"data": "x@1"}), armed={"since_ms": T0 + 5})
    assert kept.armed == {"since_ms": T0}
    assert kept.trigger.params == {"data": "x@1"}
    moved = save_trigger(_trigger(cron="0 4 * * *"), armed={"since_ms": T0 + 7})
    assert moved.armed == {"since_ms": T0 + 7}
    assert get_stored_trigger("nightly").trigger.on.schedule.cron == "0 4 * * *"  # type: ignore[union-attr]
    delete_trigger("nightly")
    with pytest.raises(NotFound, match="`mloop triggers list`"):
        get_stored_trigger("nightly")
    with pytest.raises(NotFound, match="nothing to delete"):
        delete_trigger("nightly")
    actions = [e.action for e in reversed(list_audit_log(target="trigger:nightly"))]
    assert actions == ["trigger.create", "trigger.update", "trigger.update", "trigger.delete"]
    assert verify_audit_log().ok


def test_an_event_is_claimed_once_and_its_outcome_recorded(db: str) -> None:
    trigger = _trigger(params={"data": "churn@latest", "label": "y"})
    save_trigger(trigger, armed={})
    firing = claim_firing(trigger, _event(), now_ms=T0, actor="agent-1")
    assert firing is not None
    assert (firing.status, firing.fired_by, firing.kind) == ("running", "agent-1", "schedule")
    assert firing.params == {"data": "churn@2", "label": "y"}  # the event's params win
    assert claim_firing(trigger, _event(), now_ms=T0 + 1, actor="agent-2") is None
    done = finish_firing(firing.id, "stopped", reason="gate refused: f1 -0.04", now_ms=T0 + 50)
    assert (done.status, done.reason, done.finished_ms) == (
        "stopped",
        "gate refused: f1 -0.04",
        T0 + 50,
    )
    assert get_firing(firing.id) == done
    with pytest.raises(Conflict, match="has ended already"):
        finish_firing(firing.id, "failed")
    with pytest.raises(InvalidInput, match="not one of"):
        finish_firing(firing.id, "skipped")
    entries = list_audit_log(target="trigger:nightly", limit=2)
    assert [e.action for e in entries] == ["trigger.stopped", "trigger.fire"]
    assert entries[0].after["reason"] == "gate refused: f1 -0.04"
    assert "params" not in entries[1].after  # parameters may name paths; the event is enough
    delete_trigger("nightly")
    assert [f.id for f in list_firings("nightly")] == [firing.id]  # history outlives it


def test_racing_threads_claim_an_event_once(db: str) -> None:
    trigger = _trigger()
    save_trigger(trigger, armed={})
    winners: list[str] = []
    start = threading.Barrier(6)

    def agent(n: int) -> None:
        start.wait()
        for key in ("schedule:a", "schedule:b", "schedule:c"):
            if claim_firing(trigger, _event(key), now_ms=T0, actor=f"agent-{n}") is not None:
                winners.append(key)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(winners) == ["schedule:a", "schedule:b", "schedule:c"]
    assert len(list_firings("nightly")) == 3


def test_events_inside_the_cooldown_are_skipped_with_the_reason(db: str) -> None:
    trigger = _trigger(cooldown="1h")
    save_trigger(trigger, armed={})
    first = claim_firing(trigger, _event("alert:1"), now_ms=T0)
    assert first is not None
    assert first.status == "running"
    skipped = claim_firing(trigger, _event("alert:2"), now_ms=T0 + 3_599_999)
    assert skipped is not None
    assert skipped.status == "skipped"
    assert skipped.reason is not None
    assert "within the cooldown of 1h" in skipped.reason
    later = claim_firing(trigger, _event("alert:3"), now_ms=T0 + 3_600_000)
    assert later is not None
    assert later.status == "running"
    assert [f.event_key for f in list_firings("nightly", status="skipped")] == ["alert:2"]
    manual = claim_firing(trigger, _event("manual:x"), now_ms=T0 + 3_600_001)
    assert manual is not None
    assert (manual.status, manual.kind) == ("running", "manual")


def test_history_filters_and_limits(db: str) -> None:
    trigger = _trigger()
    for n in range(4):
        claim_firing(trigger, _event(f"schedule:{n}"), now_ms=T0 + n)
    assert [f.event_key for f in list_firings(limit=2)] == ["schedule:3", "schedule:2"]
    assert list_firings("other") == []
    with pytest.raises(InvalidInput, match="limit must be at least 1"):
        list_firings(limit=0)
    with pytest.raises(InvalidInput, match="status 'done' is not one of"):
        list_firings(status="done")


def test_migration_0009_goes_down_and_up(store: MetadataStore) -> None:
    tables = {"triggers", "trigger_firings"}
    assert tables <= set(inspect(store.engine).get_table_names())
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0008")
    assert not tables & set(inspect(store.engine).get_table_names())
    assert schema_revision(store.engine) == "0008"
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    assert schema_revision(store.engine) == head_revision()
    assert tables <= set(inspect(store.engine).get_table_names())
    uniques = inspect(store.engine).get_unique_constraints("trigger_firings")
    assert [u["column_names"] for u in uniques] == [["trigger", "event_key"]]


def test_api_callers_need_the_global_admin_role(db: str) -> None:
    deployer = Principal("bob", "user", (RoleGrant("deployer", "global"),))
    model_admin = Principal("carol", "user", (RoleGrant("admin", "model:churn"),))
    admin = Principal("root", "user", (RoleGrant("admin", "global"),))
    for who in (deployer, model_admin):
        with pytest.raises(PermissionDenied, match="needs the admin role globally"):
            save_trigger(_trigger(), armed={}, actor=who)
    save_trigger(_trigger(), armed={}, actor=admin)
    with pytest.raises(PermissionDenied):
        delete_trigger("nightly", actor=deployer)
    with pytest.raises(PermissionDenied):
        fire_trigger("nightly", actor=deployer)
    assert get_stored_trigger("nightly").created_by == "root"
    delete_trigger("nightly", actor=admin)
