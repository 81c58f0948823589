"""Arrival proof through the rules worker, against a real Mosquitto and a real SQLite file: events published on the
backbone topics, the work order's status and timeline read back from the database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Value
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import WorkOrderEvent
from tests.rules.support import elevator
from tests.rules.test_worker import Rules, as_message, eventually, publish, rules_for, running, work_orders

CARD = "A1B2C3D4"


def demo_site(site_id: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                        {"id": "gate-north", "kind": "gate", "model": "barrier-a"},
                    ],
                }
            ],
            "technicians": [
                {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": [CARD], "disciplines": ["elevator"]}
            ],
        }
    )


def worker(port: int, engine: Engine, clock: FakeClock, metrics: Counters, site: Site) -> Rules:
    return rules_for(port, f"rules-{site.id}", engine, clock, metrics, sites=[site])


def card_read(site: str, clock: FakeClock, card: str, *, granted: bool = True) -> Event:
    gate = DeviceRef(site=site, building="b1", device="gate-north", kind=DeviceKind.GATE, model="barrier-a")
    data: dict[str, Value] = {"card": card, "granted": granted, "direction": "in"}
    return Event(ref=gate, ts=clock.now(), type=EventType.CARD_READ, data=data)


def fault(site: str, clock: FakeClock, code: str) -> Event:
    return Event(ref=elevator(site=site), ts=clock.now(), type=EventType.FAULT_RAISED, code=code)


def arrival_entries(engine: Engine, work_order_id: int) -> list[WorkOrderEvent]:
    with Session(engine) as session:
        wo = get_work_order(session, work_order_id)
        assert wo is not None
        return [e for e in wo.timeline if e.type == "transition" and e.status == "on_site"]


async def test_a_technicians_card_at_the_gate_puts_the_elevator_work_order_on_site(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    site = demo_site(topic_prefix)
    metrics = Counters()
    async with running(worker(mosquitto.port, engine, clock, metrics, site)):
        await publish(mosquitto.port, as_message(fault(topic_prefix, clock, "2")))
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 1, "a work order opened")
        clock.advance(timedelta(minutes=7))
        refused = card_read(topic_prefix, clock, CARD, granted=False)
        stranger = card_read(topic_prefix, clock, "DEADBEEF")
        await publish(mosquitto.port, as_message(refused), as_message(stranger))
        await eventually(lambda: metrics.get("rules_events_applied") == 3, "both reads applied")
        [wo] = work_orders(engine, topic_prefix)
        assert wo.status == "open", "a denied read and an unknown card move nothing"

        clock.advance(timedelta(minutes=1))
        read = card_read(topic_prefix, clock, CARD.lower())
        await publish(mosquitto.port, as_message(read))
        await eventually(lambda: metrics.get("rules_arrivals", source="card_read") == 1, "the arrival recorded")
    [wo] = work_orders(engine, topic_prefix)
    assert (wo.status, wo.on_site_at) == ("on_site", read.ts)
    [entry] = arrival_entries(engine, wo.id)
    assert (entry.source, entry.actor, entry.at) == ("card_read", "Li Ming", read.ts)


async def test_inspection_mode_puts_the_work_order_on_site_and_silences_the_cars_faults(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    site = demo_site(topic_prefix)
    metrics = Counters()
    inspection = Event(
        ref=elevator(site=topic_prefix),
        ts=clock.now() + timedelta(minutes=4),
        type=EventType.STATUS,
        code="43",
        message="inspection",
        data={"status_point": "service_mode", "status_value": "inspection"},
    )
    async with running(worker(mosquitto.port, engine, clock, metrics, site)):
        await publish(mosquitto.port, as_message(fault(topic_prefix, clock, "2")))
        clock.advance(timedelta(minutes=4))
        await publish(mosquitto.port, as_message(inspection))
        await eventually(lambda: metrics.get("rules_arrivals", source="inspection_mode") == 1, "the arrival recorded")
        clock.advance(timedelta(minutes=1))
        # The technician trips the safety circuit while working on the car: no new work order.
        await publish(mosquitto.port, as_message(fault(topic_prefix, clock, "1")))
        await eventually(lambda: metrics.get("rules_faults_suppressed") == 1, "the fault suppressed")
    [wo] = work_orders(engine, topic_prefix)
    assert (wo.fault, wo.status, wo.on_site_at) == ("2", "on_site", inspection.ts)
    [entry] = arrival_entries(engine, wo.id)
    assert (entry.source, entry.actor) == ("inspection_mode", "e1")
    assert metrics.get("rules_work_orders_opened") == 1


async def test_a_card_read_replayed_late_withdraws_the_breach_and_one_before_the_fault_is_applied_at_opening(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    site = demo_site(topic_prefix)
    metrics = Counters()
    t0 = clock.now()
    async with running(worker(mosquitto.port, engine, clock, metrics, site)):
        await publish(mosquitto.port, as_message(fault(topic_prefix, clock, "2")))
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 1, "a work order opened")
        clock.advance(timedelta(minutes=21))
        await eventually(lambda: metrics.get("rules_sla_breaches", clock="on_site", kind="elevator") == 1, "breached")
        # The gateway was cut off; its outbox now delivers a read stamped 15 minutes after the fault.
        read = card_read(topic_prefix, clock, CARD).model_copy(update={"ts": t0 + timedelta(minutes=15)})
        await publish(mosquitto.port, as_message(read))
        await eventually(lambda: metrics.get("rules_arrivals", source="card_read") == 1, "the arrival recorded")

        # A read first, then a fault stamped before it (its event delayed): the work order opens on site.
        second = card_read(topic_prefix, clock, CARD)
        await publish(mosquitto.port, as_message(second))
        await eventually(lambda: metrics.get("rules_events_applied") == 3, "the read kept")
        clock.advance(timedelta(minutes=5))
        earlier = fault(topic_prefix, clock, "3").model_copy(update={"ts": second.ts - timedelta(minutes=1)})
        await publish(mosquitto.port, as_message(earlier))
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 2, "the second work order opened")
    first, opened_late = work_orders(engine, topic_prefix)
    assert (first.status, first.on_site_at) == ("on_site", read.ts)
    with Session(engine) as session:
        wo = get_work_order(session, first.id)
        assert wo is not None
        on_site = next(c for c in wo.clocks if c.name == "on_site")
        assert (on_site.met_at, on_site.breached_at, on_site.breach_withdrawn_at) == (
            read.ts,
            None,
            clock.now() - timedelta(minutes=5),
        )
        [breach] = [e for e in wo.timeline if e.type == "sla_breached"]
        [withdrawn] = [e for e in wo.timeline if e.type == "breach_withdrawn"]
        assert (withdrawn.detail["breached_at"], withdrawn.actor) == (breach.at.isoformat(), "Li Ming")
    assert (opened_late.status, opened_late.on_site_at) == ("on_site", second.ts)
