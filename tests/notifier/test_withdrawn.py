"""A breach withdrawn by late arrival evidence, on the fake clock over a real SQLite file: the escalation it started
stops, what was still queued for it is cancelled, and those it reached get an all clear, once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.notifier.message import render_text
from facmon.notifier.queue import deliveries_of, from_payload
from facmon.notifier.tables import NotificationStep
from facmon.workorders.breaches import SlaMonitor
from facmon.workorders.tables import WorkOrderEvent
from rules.arrival import apply_with_site_evidence
from tests.notifier.test_dispatch import MANAGER, MIN, SEC, STEP, Phone, make, open_work_order, run_to

LI = Technician.model_validate(
    {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": ["A1B2C3D4"], "disciplines": ["elevator"]}
)
GATE = DeviceRef(site="s1", building="b1", device="gate-north", kind=DeviceKind.GATE, model="barrier-a")


def late_card_read(engine: Engine, read_at: datetime, now: datetime) -> None:
    """Li's card read at `read_at`, reaching the rules worker at `now` (an outbox replayed after an outage)."""
    event = Event(ref=GATE, ts=read_at, type=EventType.CARD_READ, data={"card": "A1B2C3D4", "granted": True})
    apply_with_site_evidence(engine, event, [], now, technicians=(LI,), metrics=Counters())


def notifier_entries(engine: Engine, wo: int) -> list[WorkOrderEvent]:
    with Session(engine) as session:
        query = select(WorkOrderEvent).where(WorkOrderEvent.work_order_id == wo, WorkOrderEvent.source == "notifier")
        return list(session.execute(query.order_by(WorkOrderEvent.id)).scalars())


async def test_a_breach_withdrawn_before_its_escalation_went_out_cancels_it_and_stops_the_chain(
    engine: Engine, clock: FakeClock
) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone)
    monitor = SlaMonitor(engine, clock)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "entrapment")
    await run_to(clock, t0 + 20 * MIN, monitor, dispatcher, sender)
    phone.down = True  # the manager's phone channel is away when the breach is escalated
    await run_to(clock, t0 + 20 * MIN + 5 * SEC, monitor, dispatcher, sender)
    [queued] = [d for d in deliveries_of(engine, wo) if d.reason == "breach"]
    assert (queued.recipient_id, queued.delivered_at) == (MANAGER.id, None)
    assert queued.attempts >= 1

    late_card_read(engine, t0 + 19 * MIN, clock.now())
    phone.down = False
    await run_to(clock, t0 + 25 * MIN, monitor, dispatcher, sender)

    [cancelled] = [d for d in deliveries_of(engine, wo) if d.reason == "breach"]
    assert cancelled.delivered_at is None
    assert cancelled.cancelled_at == t0 + 20 * MIN + 5 * SEC + STEP, "cancelled at the first tick after the withdrawal"
    assert all(r[0] != MANAGER.id for r in phone.received), "the manager was never told"
    assert [d for d in deliveries_of(engine, wo) if d.reason == "withdrawn"] == [], "nobody to give the all clear"
    [entry] = [e for e in notifier_entries(engine, wo) if e.detail.get("reason") == "withdrawn"]
    assert entry.detail["cancelled"] == [cancelled.key]
    assert entry.detail["told"] == []
    assert entry.detail["clock"] == "on_site"


async def test_those_the_breach_reached_get_an_all_clear_once(engine: Engine, clock: FakeClock) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone)
    monitor = SlaMonitor(engine, clock)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "2", device="e2")  # elevator.fault: the supervisor on the on-site breach
    await run_to(clock, t0 + 20 * MIN + SEC, monitor, dispatcher, sender)
    assert phone.received[-1][:2] == ("zhao-lei", "breach")
    sent = len(phone.received)

    late_card_read(engine, t0 + 18 * MIN, t0 + 25 * MIN)
    # A second dispatcher over the same database, side by side, and the minute after which the breach is settled.
    second, _ = make(engine, clock, phone)
    await run_to(clock, t0 + 26 * MIN + SEC, monitor, dispatcher, second, sender)

    assert [r[:2] for r in phone.received[sent:]] == [("zhao-lei", "withdrawn")]
    [clear] = [d for d in deliveries_of(engine, wo) if d.reason == "withdrawn"]
    notification, recipient = from_payload(clear.payload)
    assert (recipient.id, notification.sla_clock, notification.key) == ("zhao-lei", "on_site", clear.message)
    assert "all clear" in render_text(notification)
    with Session(engine) as session:
        steps = set(
            session.execute(select(NotificationStep.step).where(NotificationStep.work_order_id == wo)).scalars()
        )
    assert {"supervisor#0", "supervisor#withdrawn", "withdrawn:on_site"} <= steps
    [entry] = [e for e in notifier_entries(engine, wo) if e.detail.get("reason") == "withdrawn"]
    assert entry.detail["told"] == [{"id": "zhao-lei", "channel": "phone"}]
    assert entry.detail["cancelled"] == []


async def test_a_breach_withdrawn_before_the_dispatcher_saw_it_sends_nothing(engine: Engine, clock: FakeClock) -> None:
    phone = Phone()
    dispatcher, sender = make(engine, clock, phone)
    monitor = SlaMonitor(engine, clock)
    t0 = clock.now()
    wo = open_work_order(engine, clock, "2", device="e3")
    await run_to(clock, t0 + 20 * MIN, dispatcher, sender)
    clock.advance(timedelta(seconds=2))
    await monitor.tick()  # the breach recorded ...
    late_card_read(engine, t0 + 10 * MIN, clock.now())  # ... and withdrawn before the dispatcher's next tick
    await run_to(clock, t0 + 23 * MIN, monitor, dispatcher, sender)
    assert [r[1] for r in phone.received] == ["opened", "reminder"], "no breach, no all clear"
    assert [d.reason for d in deliveries_of(engine, wo)] == ["opened", "reminder"]
