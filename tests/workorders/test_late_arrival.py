"""Breaches withdrawn and arrivals moved back by evidence at its own time, on a real SQLite file: the same path for
a transition through the API as for one the site proves, and the lifecycle points that correct InfluxDB."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.workorders.breaches import record_breaches
from facmon.workorders.late_arrival import Evidence, backdate_arrival
from facmon.workorders.lifecycle import pending_lines
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.rules.support import MakeEvent

RULES = load_rules()
MIN = timedelta(minutes=1)


def open_one(engine: Engine, clock: FakeClock, make_event: MakeEvent, code: str = "2") -> int:
    event = make_event("fault_raised", code)
    [wo_id] = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    return wo_id


def load(engine: Engine, wo_id: int) -> WorkOrder:
    with Session(engine, expire_on_commit=False) as session:
        wo = get_work_order(session, wo_id)
        assert wo is not None
        return wo


def test_a_transition_dated_before_the_deadline_withdraws_the_breach_and_influxdb_hears_of_it(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    t0 = clock.now()
    wo_id = open_one(engine, clock, make_event)
    [breach] = record_breaches(engine, t0 + 21 * MIN)
    exported = {entry_id for entry_id, _ in pending_lines(engine, 100)}
    # An arrival at 19 min entered at 30 min (the workflow takes a time; the rules worker passes the evidence's).
    arrived, entered = t0 + 19 * MIN, t0 + 30 * MIN
    transition(engine, wo_id, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=arrived, now=entered)
    wo = load(engine, wo_id)
    on_site = next(c for c in wo.clocks if c.name == "on_site")
    assert (on_site.met_at, on_site.breached_at, on_site.breach_withdrawn_at) == (arrived, None, entered)
    [withdrawn] = [e for e in wo.timeline if e.type == "breach_withdrawn"]
    assert withdrawn.detail["evidence"] == {"source": "api", "actor": "Li Ming", "at": (t0 + 19 * MIN).isoformat()}
    assert withdrawn.detail["breached_at"] == breach.breached_at.isoformat()

    lines = [line for entry_id, line in pending_lines(engine, 100) if entry_id not in exported]
    breach_lines = [line for line in lines if "event=sla_breached" in line]
    [again] = breach_lines
    assert "withdrawn=true" in again
    first = next(line for entry_id, line in pending_lines(engine, 100) if "event=sla_breached" in line)
    assert again.split(" ")[0] == first.split(" ")[0], "the same series"
    assert again.rsplit(" ", 1)[1] == first.rsplit(" ", 1)[1], "and the same time: the same point"
    [point] = [line for line in lines if "event=breach_withdrawn" in line]
    assert ",clock=on_site," in point


def test_an_arrival_after_the_deadline_keeps_the_breach(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    t0 = clock.now()
    wo_id = open_one(engine, clock, make_event)
    record_breaches(engine, t0 + 21 * MIN)
    transition(engine, wo_id, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=t0 + 21 * MIN)
    on_site = next(c for c in load(engine, wo_id).clocks if c.name == "on_site")
    assert (on_site.breached_at, on_site.breach_withdrawn_at) == (t0 + 21 * MIN, None)


def test_backdating_needs_evidence_earlier_than_the_arrival_after_the_detection_and_no_cancellation(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    t0 = clock.now()
    arrived, cancelled = open_one(engine, clock, make_event), open_one(engine, clock, make_event, "3")
    transition(engine, arrived, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=t0 + 10 * MIN)
    transition(engine, cancelled, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=t0 + 10 * MIN)
    transition(engine, cancelled, WorkOrderStatus.CANCELLED, actor="Wang", source="api", at=t0 + 11 * MIN, note="dup")
    with Session(engine) as session, session.begin():
        card = Evidence("card_read", "Li Ming", t0 + 10 * MIN)
        assert not backdate_arrival(session, arrived, card, t0 + 30 * MIN), "not earlier"
        before = Evidence("card_read", "Li Ming", t0 - MIN)
        assert not backdate_arrival(session, arrived, before, t0 + 30 * MIN), "before the detection"
        earlier = Evidence("card_read", "Li Ming", t0 + 5 * MIN)
        assert not backdate_arrival(session, cancelled, earlier, t0 + 30 * MIN), "cancelled"
        assert backdate_arrival(session, arrived, earlier, t0 + 30 * MIN)
    assert load(engine, arrived).on_site_at == t0 + 5 * MIN
    assert load(engine, cancelled).on_site_at == t0 + 10 * MIN
