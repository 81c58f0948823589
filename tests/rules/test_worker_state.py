"""State rules in the running worker, over a real Mosquitto: a comm_lost hold and a peak-window rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from tests.rules.test_worker import Rules, as_message, eventually, publish, rules_for, running, ticks_pass, work_orders

# 11:00 in Shanghai, outside the peaks.
T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def site(site_id: str) -> Site:
    elevator = {"kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}}
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [{"id": "b1", "devices": [{"id": "e1", **elevator, "role": "peak"}]}],
        }
    )


def worker(port: int, engine: Engine, clock: FakeClock, metrics: Counters, site_id: str) -> Rules:
    return rules_for(port, f"rules-{site_id}", engine, clock, metrics, sites=[site(site_id)])


def status(site_id: str, clock: FakeClock, type_: EventType, **data: str) -> Event:
    # No role in the event: the worker takes it from the site file.
    ref = DeviceRef(site=site_id, building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    return Event(ref=ref, ts=clock.now(), type=type_, code="43" if data else None, data=data)


async def test_comm_lost_opens_a_work_order_only_after_its_hold(
    mosquitto: Mosquitto, engine: Engine, topic_prefix: str
) -> None:
    clock, metrics = FakeClock(T0), Counters()
    rules_worker = worker(mosquitto.port, engine, clock, metrics, topic_prefix)
    async with running(rules_worker):
        await publish(mosquitto.port, as_message(status(topic_prefix, clock, EventType.COMM_LOST)))
        await eventually(lambda: metrics.get("rules_holds_started") == 1, "the hold started")
        clock.advance(timedelta(minutes=9))
        await ticks_pass(rules_worker)
        assert work_orders(engine, topic_prefix) == []
        clock.advance(timedelta(minutes=1))
        await eventually(lambda: metrics.get("rules_holds_fired") == 1, "the hold fired")
    [wo] = work_orders(engine, topic_prefix)
    assert (wo.device, wo.fault, wo.detected_at) == ("e1", "comm_lost", T0)


async def test_a_peak_elevator_leaving_service_in_the_morning_peak(
    mosquitto: Mosquitto, engine: Engine, topic_prefix: str
) -> None:
    clock, metrics = FakeClock(datetime(2026, 1, 15, 6, 30, tzinfo=UTC) - timedelta(hours=8)), Counters()
    async with running(worker(mosquitto.port, engine, clock, metrics, topic_prefix)):
        event = status(topic_prefix, clock, EventType.STATUS, status_point="service_mode", status_value="inspection")
        await publish(mosquitto.port, as_message(event))
        await eventually(lambda: len(work_orders(engine, topic_prefix)) == 1, "a work order opened")
    [wo] = work_orders(engine, topic_prefix)
    assert (wo.device, wo.fault, wo.sla_profile) == ("e1", "peak_not_in_service", "elevator.fault")
