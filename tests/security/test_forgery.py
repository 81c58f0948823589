"""Estate A's gateway login cannot open, clear or mark arrival on a work order of estate B, and a device no site
file has opens nothing: the real rules worker over TLS on the generated broker configuration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.kernel.mqtt import mqtt_client
from facmon.kernel.topics import event_topic
from facmon.workorders.tables import WorkOrder
from rules.worker import Broker, RulesWorker
from tests.security.conftest import OBSERVER, SecureBroker, two_sites
from tests.support import eventually

DEADLINE_S = 10.0


def _work_orders(engine: Engine, site: str) -> dict[tuple[str, str], WorkOrder]:
    with Session(engine) as session:
        found = session.execute(select(WorkOrder).where(WorkOrder.site == site)).scalars()
        return {(wo.device, wo.fault): wo for wo in found}


@contextlib.asynccontextmanager
async def _rules(broker: SecureBroker, engine: Engine, clock: FakeClock, sites: list[Site]) -> AsyncIterator[Counters]:
    login = broker.login("rules")
    metrics = Counters()
    worker = RulesWorker(
        Broker(
            login.host,
            login.port,
            f"rules-{uuid.uuid4().hex[:8]}",
            username=login.username,
            password=login.password,
            tls=login.tls_settings,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
        ),
        engine=engine,
        clock=clock,
        metrics=metrics,
        sites=sites,
    )
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.subscribed.is_set() or task.done(), DEADLINE_S, "the worker's subscription")
        assert not task.done(), "the worker stopped on its own"
        yield metrics
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _publish(broker: SecureBroker, user: str, *events: Event) -> None:
    async with mqtt_client(broker.login(user)) as client:
        for event in events:
            await client.publish(event_topic(event.ref), event.model_dump_json(), qos=1)


async def test_another_estates_gateway_cannot_touch_its_work_orders(
    secure_broker: SecureBroker, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    site_a, site_b = two_sites(topic_prefix)
    now = clock.now()

    def event(ref: DeviceRef, type_: EventType, code: str | None = None, **data: object) -> Event:
        return Event.model_validate({"ref": ref, "ts": now, "type": type_, "code": code, "data": data})

    e1, e2, g1 = site_b.ref("e1"), site_b.ref("e2"), site_b.ref("g1")
    async with _rules(secure_broker, engine, clock, [site_a, site_b]) as metrics:
        await _publish(secure_broker, f"gateway-{site_b.id}", event(e1, EventType.FAULT_RAISED, "2"))
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 1, DEADLINE_S, "B's own work order")
        clock.advance(timedelta(minutes=1))
        forged = [
            # A's gateway, in B's name: B's technician at B's gate (arrival), B's fault cleared, an entrapment in B.
            event(g1, EventType.CARD_READ, card="0A1B2C3D", granted=True, direction="in"),
            event(e1, EventType.FAULT_CLEARED, "2"),
            event(e2, EventType.FAULT_RAISED, "entrapment"),
        ]
        for message in forged:
            # One connection each: Mosquitto 2.0 acknowledges a refused QoS 1 publish but breaks the connection
            # after it (MQTT 3.1.1 lets a broker close it), and an attacker can always connect again.
            await _publish(secure_broker, f"gateway-{site_a.id}", message)
        # Taken by the broker (PUBACK) before B's next event is sent: had it passed, the worker would see it first.
        await _publish(secure_broker, f"gateway-{site_b.id}", event(e2, EventType.FAULT_RAISED, "7"))
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 2, DEADLINE_S, "B's second work order")

    orders = _work_orders(engine, site_b.id)
    assert set(orders) == {("e1", "2"), ("e2", "7")}, "a forged event opened a work order"
    first = orders[("e1", "2")]
    assert (first.status, first.on_site_at, first.fault_cleared_at) == ("open", None, None)
    assert metrics.get("rules_events_received") == 2
    assert not _work_orders(engine, site_a.id)


async def test_a_device_no_site_file_has_is_refused_counted_and_parked(
    secure_broker: SecureBroker, engine: Engine, clock: FakeClock, topic_prefix: str
) -> None:
    site_a, site_b = two_sites(topic_prefix)
    ghost = DeviceRef(site=site_b.id, building="b1", device="ghost", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    disguised = site_b.ref("g1").model_copy(update={"kind": DeviceKind.ELEVATOR, "model": "elev-gb-a"})
    refused = [
        Event(ref=ghost, ts=clock.now(), type=EventType.FAULT_RAISED, code="entrapment"),
        Event(ref=disguised, ts=clock.now(), type=EventType.FAULT_RAISED, code="entrapment"),
    ]
    legal = Event(ref=site_b.ref("e1"), ts=clock.now(), type=EventType.FAULT_RAISED, code="2")
    letters: list[dict[str, object]] = []
    async with (
        _rules(secure_broker, engine, clock, [site_a, site_b]) as metrics,
        mqtt_client(secure_broker.login(OBSERVER)) as observer,
    ):
        await observer.subscribe(f"facmon/v1/_dead/{site_b.id}/#", qos=1)
        # B's own gateway login may publish under B; the site file, not the ACL, says what B has.
        await _publish(secure_broker, f"gateway-{site_b.id}", *refused, legal)
        await eventually(lambda: metrics.get("rules_events_applied") == 1, DEADLINE_S, "the legal event applied")
        async with asyncio.timeout(DEADLINE_S):
            async for message in observer.messages:
                assert isinstance(message.payload, bytes)
                letters.append(json.loads(message.payload))
                if len(letters) == len(refused):
                    break

    assert set(_work_orders(engine, site_b.id)) == {("e1", "2")}
    assert metrics.get("rules_events_refused", reason="unknown_device") == 1
    assert metrics.get("rules_events_refused", reason="device_mismatch") == 1
    assert [(letter["source"], letter["topic"]) for letter in letters] == [
        ("rules", event_topic(event.ref)) for event in refused
    ]
