"""Elevator maintenance visits: recorded when a car leaves inspection after at least the minimum time in it, with the
technician whose card was last read at the site within the hour before; an elevator without a visit for the 15-day
cycle gets one `check` work order per overdue period (fake clock); a visit resolves it and moves the cycle on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Value
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from rules.arrival import apply_with_site_evidence
from rules.engine import evaluate, load_rules
from rules.maintenance_models import MaintenanceSchedule, MaintenanceVisit, VisitSource
from rules.maintenance_visits import (
    InspectionSpan,
    MaintenanceMonitor,
    add_visit,
    ended_inspection,
    list_visits,
    record_visit,
)
from tests.rules.support import elevator

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
RULES = load_rules()
GATE = DeviceRef(site="s1", building="b1", device="gate-north", kind=DeviceKind.GATE, model="barrier-a")
LI = Technician.model_validate(
    {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": ["A1B2C3D4"], "disciplines": ["elevator"]}
)
WANG = Technician.model_validate(
    {"id": "wang", "name": "Wang Fang", "phone": "13800000002", "cards": ["0F0F0F0F"], "disciplines": ["elevator"]}
)
TECHNICIANS = (LI, WANG)
SITE = Site.model_validate(
    {
        "site": {"id": "s1"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "gate-north", "kind": "gate", "model": "barrier-a"},
                ],
            }
        ],
    }
)


def mode(value: str, ts: datetime, device: str = "e1", event_id: str | None = None) -> Event:
    data: dict[str, Value] = {"status_point": "service_mode", "status_value": value}
    code = "43" if value == "inspection" else "40"
    extra = {} if event_id is None else {"id": event_id}
    return Event(ref=elevator(device=device), ts=ts, type=EventType.STATUS, code=code, data=data, **extra)


def card(number: str, ts: datetime) -> Event:
    data: dict[str, Value] = {"card": number, "granted": True, "direction": "in"}
    return Event(ref=GATE, ts=ts, type=EventType.CARD_READ, data=data)


def apply(engine: Engine, event: Event, now: datetime | None = None, metrics: Counters | None = None) -> None:
    now = now or event.ts
    apply_with_site_evidence(
        engine, event, evaluate(RULES, event, now), now, technicians=TECHNICIANS, metrics=metrics or Counters()
    )


def visits(engine: Engine) -> list[tuple[str, datetime, datetime, str | None, str]]:
    with Session(engine) as session:
        return [
            (v.device, v.started_at, v.ended_at, v.technician, v.source)
            for v in reversed(list_visits(session, site="s1"))
        ]


# --- pure ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "at", "previous", "since", "expected"),
    [
        ("normal", T0 + 10 * MIN, "inspection", T0, InspectionSpan(T0, T0 + 10 * MIN)),  # exactly the minimum
        ("out_of_service", T0 + 2 * DAY, "inspection", T0, InspectionSpan(T0, T0 + 2 * DAY)),
        ("normal", T0 + 10 * MIN - timedelta(seconds=1), "inspection", T0, None),  # a look, not a visit
        ("inspection", T0 + 30 * MIN, "inspection", T0, None),  # inspection reported again
        ("normal", T0 + 30 * MIN, "normal", T0, None),  # was not in inspection
        ("normal", T0 + 30 * MIN, None, None, None),  # nothing known
        ("normal", T0 - MIN, "inspection", T0, None),  # a late replay from before the inspection
    ],
)
def test_ended_inspection(
    new: str, at: datetime, previous: str | None, since: datetime | None, expected: InspectionSpan | None
) -> None:
    assert ended_inspection(new, at, previous, since, 10 * MIN) == expected


# --- from the site ---------------------------------------------------------------------------------------------------


def test_leaving_inspection_records_a_visit_with_the_last_technician_at_the_gate(engine: Engine) -> None:
    metrics = Counters()
    apply(engine, card("0F0F0F0F", T0 - 58 * MIN))  # Wang, 58 min before
    apply(engine, card("A1B2C3D4", T0 - 20 * MIN))  # Li, later: Li was the last one in
    apply(engine, card("0F0F0F0F", T0 + 5 * MIN))  # after the start: does not count
    apply(engine, mode("inspection", T0))
    apply(engine, mode("inspection", T0 + 15 * MIN))  # reported again: the inspection still began at T0
    leave = mode("normal", T0 + 45 * MIN)
    apply(engine, leave, metrics=metrics)
    apply(engine, leave, metrics=metrics)  # redelivered: nothing more
    assert visits(engine) == [("e1", T0, T0 + 45 * MIN, "li", "inspection_mode")]
    assert metrics.get("rules_maintenance_visits", source="inspection_mode") == 1
    with Session(engine) as session:
        [visit] = session.execute(select(MaintenanceVisit)).scalars()
        assert (visit.event_id, visit.actor, visit.building, visit.recorded_at) == (leave.id, None, "b1", leave.ts)
        schedule = session.get(MaintenanceSchedule, ("s1", "e1"))
        assert schedule is not None
        assert schedule.last_visit_at == T0


def test_a_short_inspection_or_no_card_read_within_the_hour(engine: Engine) -> None:
    apply(engine, card("A1B2C3D4", T0 - 61 * MIN))  # more than an hour before the second inspection
    apply(engine, mode("inspection", T0 - 70 * MIN, device="e2"))
    apply(engine, mode("normal", T0 - 61 * MIN, device="e2"))  # 9 min: a look, no visit
    apply(engine, mode("inspection", T0))
    apply(engine, mode("normal", T0 + 10 * MIN))  # exactly the minimum: a visit, but nobody's card in the hour
    assert visits(engine) == [("e1", T0, T0 + 10 * MIN, None, "inspection_mode")]


def test_the_minimum_is_a_setting(engine: Engine) -> None:
    for event in (mode("inspection", T0), mode("normal", T0 + 5 * MIN)):
        apply_with_site_evidence(
            engine, event, [], event.ts, technicians=(), metrics=Counters(), min_inspection=5 * MIN
        )
    assert visits(engine) == [("e1", T0, T0 + 5 * MIN, None, "inspection_mode")]


# --- overdue ---------------------------------------------------------------------------------------------------------


def overdue_orders(engine: Engine) -> list[WorkOrder]:
    with Session(engine) as session:
        query = select(WorkOrder).where(WorkOrder.fault == "maintenance_overdue").order_by(WorkOrder.id)
        return list(session.execute(query).scalars())


async def test_an_elevator_without_a_visit_for_15_days_gets_one_work_order_per_period(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[SITE])
    assert await monitor.tick() == []  # both elevators scheduled from now
    clock.advance(15 * DAY - timedelta(seconds=1))
    assert await monitor.tick() == []
    clock.advance(1)
    found = await monitor.tick()
    assert sorted((o.device, o.due_at) for o in found) == [("e1", T0 + 15 * DAY), ("e2", T0 + 15 * DAY)]
    clock.advance(3600)
    assert await monitor.tick() == []  # the same period does not open it again
    assert await MaintenanceMonitor(engine, clock, sites=[SITE]).tick() == []  # nor does a restart
    e1 = overdue_orders(engine)[0]
    assert (e1.device, e1.kind, e1.category, e1.status, e1.priority, e1.occurrences) == (
        "e1",
        "elevator",
        "check",
        "open",
        "urgent",
        1,
    )
    assert (e1.title, e1.sla_profile, e1.detected_at) == (
        "Elevator e1 (b1): no maintenance visit for 15 days",
        "elevator.maintenance",
        T0 + 15 * DAY,
    )
    with Session(engine) as session:
        stored = get_work_order(session, e1.id)
        assert stored is not None
        assert [(c.name, c.milestone, c.due_at) for c in stored.clocks] == [("visit_done", "resolved", T0 + 17 * DAY)]
    # Still no visit a cycle later: overdue again, counted on the open work order.
    clock.advance(15 * DAY)
    assert len(await monitor.tick()) == 2
    assert [(w.device, w.occurrences) for w in overdue_orders(engine)] == [("e1", 2), ("e2", 2)]


async def test_a_cycle_is_a_setting(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[SITE], cycle=7 * DAY)
    await monitor.tick()
    clock.advance(7 * DAY)
    assert len(await monitor.tick()) == 2
    assert overdue_orders(engine)[0].title == "Elevator e1 (b1): no maintenance visit for 7 days"


async def test_a_visit_in_inspection_resolves_the_overdue_work_order_and_moves_the_cycle(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[SITE])
    await monitor.tick()
    clock.advance(16 * DAY)
    await monitor.tick()
    e1 = overdue_orders(engine)[0]
    start = T0 + 16 * DAY + 2 * 3600 * timedelta(seconds=1)
    apply(engine, card("A1B2C3D4", start - 10 * MIN))  # Li at the gate: the card read puts it on site
    apply(engine, mode("inspection", start))
    apply(engine, mode("normal", start + 50 * MIN))
    with Session(engine) as session:
        done = get_work_order(session, e1.id)
        assert done is not None
        assert (done.status, done.on_site_at, done.resolved_at) == ("resolved", start - 10 * MIN, start + 50 * MIN)
        last = done.timeline[-1]
        assert (last.status, last.actor, last.source) == ("resolved", "li", "inspection_mode")
        assert last.note == f"maintenance visit #1, {start:%Y-%m-%d %H:%M} to {start + 50 * MIN:%Y-%m-%d %H:%M} UTC"
        assert [(c.name, c.met_at) for c in done.clocks] == [("visit_done", start + 50 * MIN)]
    # e2 was not visited: Li's card read put its work order on site (as for any elevator work order of the estate),
    # but only a visit resolves it. e1's next cycle runs from the visit's start.
    assert [w.status for w in overdue_orders(engine)] == ["resolved", "on_site"]
    clock.advance(start + 15 * DAY - timedelta(seconds=1) - clock.now())
    # (e2, unvisited, is overdue a second time at T0 + 30 days meanwhile.)
    assert [(o.device, o.due_at) for o in await monitor.tick()] == [("e2", T0 + 30 * DAY)]
    clock.advance(1)
    assert [(o.device, o.due_at) for o in await monitor.tick()] == [("e1", start + 15 * DAY)]
    newer = overdue_orders(engine)[-1]
    assert (newer.device, newer.status, newer.previous_id) == ("e1", "open", e1.id)


async def test_a_visit_entered_by_hand_resolves_it_too(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[SITE])
    await monitor.tick()
    clock.advance(15 * DAY)
    await monitor.tick()
    e2 = overdue_orders(engine)[1]
    start = T0 + 15 * DAY + 3 * 3600 * timedelta(seconds=1)
    visit = record_visit(
        engine,
        site="s1",
        building="b1",
        device="e2",
        started_at=start,
        ended_at=start + 40 * MIN,
        technician="wang",
        source=VisitSource.API,
        actor="ann",
        note="half-monthly items done",
        now=start + DAY,
    )
    assert (visit.source, visit.actor, visit.technician, visit.event_id) == ("api", "ann", "wang", None)
    with Session(engine) as session:
        done = get_work_order(session, e2.id)
        assert done is not None
        steps = [(e.status, e.actor, e.source, e.at) for e in done.timeline if e.type == "transition"]
        assert steps == [
            ("acknowledged", "wang", "api", start),  # implied by the arrival
            ("on_site", "wang", "api", start),
            ("resolved", "wang", "api", start + 40 * MIN),
        ]
    # A visit recorded late, older than the last one, does not move the cycle back.
    record_visit(
        engine,
        site="s1",
        building="b1",
        device="e2",
        started_at=T0 + DAY,
        ended_at=T0 + DAY + 30 * MIN,
        technician=None,
        source=VisitSource.API,
        actor="ann",
        note=None,
        now=start + DAY,
    )
    with Session(engine) as session:
        schedule = session.get(MaintenanceSchedule, ("s1", "e2"))
        assert schedule is not None
        assert schedule.last_visit_at == start


async def test_the_tick_settles_a_visit_recorded_without_settling(engine: Engine) -> None:
    # A crash between recording the visit and resolving the work order: the next tick mends it.
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[SITE])
    await monitor.tick()
    clock.advance(15 * DAY)
    await monitor.tick()
    with Session(engine) as session, session.begin():
        add_visit(
            session,
            site="s1",
            building="b1",
            device="e1",
            started_at=clock.now() + MIN,
            ended_at=clock.now() + 30 * MIN,
            technician=None,
            source=VisitSource.INSPECTION_MODE,
            actor=None,
            note=None,
            now=clock.now() + 30 * MIN,
            event_id="ev-leave",
        )
    assert overdue_orders(engine)[0].status == "open"
    clock.advance(31 * MIN)
    await monitor.tick()
    first = overdue_orders(engine)[0]
    assert (first.status, first.resolved_at) == (WorkOrderStatus.RESOLVED.value, T0 + 15 * DAY + 30 * MIN)
    with Session(engine) as session:
        wo = get_work_order(session, first.id)
        assert wo is not None
        assert wo.timeline[-1].actor == "e1"  # nobody known: the car's own id, as inspection-mode arrivals record
