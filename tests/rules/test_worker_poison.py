"""Poison on the backbone, through a real Mosquitto into the real rules worker and a real SQLite file.

Each payload (`tests.kernel.poison`, around a good event) is refused, counted and acknowledged, and the good event
sent after it opens its work order: the worker is still up. A refused message is not redelivered to the next run
of the worker (it was acknowledged), a retained one is met again on every restart and passed every time, and an
event that breaks a handler with what it holds is skipped instead of stopping the worker. A gateway whose clock ran
a day ahead and was set right does not make the events after it be ignored.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import aiomqtt
from hypothesis import given
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, EventType
from facmon.kernel.topics import event_topic
from rules.tables import DeviceStatus
from tests.kernel.poison import live, poison
from tests.rules.support import elevator
from tests.rules.test_worker import as_message, eventually, make_worker, publish, running, work_orders

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
EXAMPLES = 30


def _event(site: str, ts: datetime, type_: EventType, code: str | None = None, device: str = "e1") -> Event:
    return Event(ref=elevator(site=site, device=device), ts=ts, type=type_, code=code)


async def _poison_then_good(port: int, engine: Engine, site: str, payload: bytes) -> None:
    clock, metrics = FakeClock(T0), Counters()
    good = _event(site, T0, EventType.FAULT_RAISED, "2")
    async with running(make_worker(port, engine, clock, metrics, f"rules-{site}", site=site)) as task:
        await publish(port, (event_topic(good.ref), payload), as_message(good))
        await eventually(lambda: metrics.get("rules_events_applied") == 1 or task.done(), "the good event applied")
        assert not task.done(), "the worker stopped"
    assert metrics.get("rules_events_rejected") == 1
    assert [wo.fault for wo in work_orders(engine, site)] == ["2"]


def test_poison_is_refused_and_the_next_event_still_opens_its_work_order(
    mosquitto: Mosquitto, topic_prefix: str, db_url: str
) -> None:
    kinds: set[str] = set()
    runs = itertools.count()
    engine = make_engine(db_url)
    around = _event("s", T0, EventType.FAULT_RAISED, "2").model_dump(mode="json")

    @live(EXAMPLES)
    @given(case=poison(around))
    def check(case: tuple[str, bytes]) -> None:
        kind, payload = case
        asyncio.run(_poison_then_good(mosquitto.port, engine, f"{topic_prefix}-{next(runs)}", payload))
        kinds.add(kind)

    try:
        check()
    finally:
        engine.dispose()
    assert len(kinds) >= 8, kinds


async def test_a_refused_message_is_acknowledged_and_a_retained_one_passed_on_every_restart(
    mosquitto: Mosquitto, engine: Engine, topic_prefix: str
) -> None:
    clock, metrics = FakeClock(T0), Counters()
    topic = event_topic(elevator(site=topic_prefix))
    deep = b"[" * 10_000 + b"]" * 10_000
    client_id = f"rules-{topic_prefix}"
    async with running(make_worker(mosquitto.port, engine, clock, metrics, client_id, site=topic_prefix)):
        await publish(mosquitto.port, (topic, deep))
        await _publish_retained(mosquitto.port, topic, deep)
        await eventually(lambda: metrics.get("rules_events_rejected", reason="decode") == 2, "both refused")
    try:
        for restart in range(2):
            # The same persistent session: both were acknowledged, so only the retained one comes again (the broker
            # sends it on every subscription), and it is passed again.
            again = Counters()
            good = _event(topic_prefix, clock.now(), EventType.FAULT_RAISED, str(restart))
            async with running(make_worker(mosquitto.port, engine, clock, again, client_id, site=topic_prefix)) as task:
                await publish(mosquitto.port, as_message(good))
                await eventually(lambda: again.get("rules_events_applied") == 1, f"run {restart}'s event")  # noqa: B023
                assert not task.done()
            assert again.get("rules_events_rejected") == 1, restart
    finally:
        await _publish_retained(mosquitto.port, topic, b"")
    assert [wo.fault for wo in work_orders(engine, topic_prefix)] == ["0", "1"]


async def _publish_retained(port: int, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1, retain=True)


async def test_an_event_that_breaks_a_handler_is_skipped(
    mosquitto: Mosquitto, engine: Engine, topic_prefix: str
) -> None:
    metrics = Counters()
    # Valid JSON and a valid event, but a time whose deadlines lie past year 9999 (the worker's clock is there too,
    # so it is not from the future): the SLA arithmetic overflows.
    breaking = _event(topic_prefix, datetime(9999, 12, 31, 23, 50, tzinfo=UTC), EventType.FAULT_RAISED, "2")
    good = _event(topic_prefix, T0, EventType.FAULT_RAISED, "3", device="e2")
    far = FakeClock(datetime(9999, 12, 31, 23, 50, tzinfo=UTC))
    async with running(make_worker(mosquitto.port, engine, far, metrics, f"rules-{topic_prefix}", site=topic_prefix)):
        await publish(mosquitto.port, as_message(breaking), as_message(good))
        await eventually(lambda: metrics.get("rules_events_applied") == 1, "the good event after it applied")
    assert metrics.get("rules_events_failed", error="OverflowError") == 1
    assert [wo.fault for wo in work_orders(engine, topic_prefix)] == ["3"]


def _comm(engine: Engine, site: str) -> str | None:
    with Session(engine) as session:
        return session.execute(select(DeviceStatus.comm).where(DeviceStatus.site == site)).scalar_one_or_none()


async def test_a_gateway_clock_a_day_ahead_then_set_right_does_not_hide_later_events(
    mosquitto: Mosquitto, engine: Engine, topic_prefix: str
) -> None:
    clock, metrics = FakeClock(T0), Counters()
    ahead = T0 + timedelta(days=1)
    async with running(make_worker(mosquitto.port, engine, clock, metrics, f"rules-{topic_prefix}", site=topic_prefix)):
        # The gateway's clock is a day ahead: the device is lost and a fault raised, stamped tomorrow.
        await publish(
            mosquitto.port,
            as_message(_event(topic_prefix, ahead, EventType.COMM_LOST)),
            as_message(_event(topic_prefix, ahead, EventType.FAULT_RAISED, "2")),
        )
        await eventually(lambda: metrics.get("rules_events_applied") == 2, "the events from tomorrow")
        assert metrics.get("rules_events_from_future") == 2
        assert _comm(engine, topic_prefix) == "lost"
        # Its clock is set right: the device answers again and the fault clears, stamped today.
        clock.advance(30)
        await publish(
            mosquitto.port,
            as_message(_event(topic_prefix, clock.now(), EventType.COMM_RESTORED)),
            as_message(_event(topic_prefix, clock.now(), EventType.FAULT_CLEARED, "2")),
        )
        await eventually(lambda: metrics.get("rules_events_applied") == 4, "the events of today")
    assert _comm(engine, topic_prefix) == "ok"
    [wo] = work_orders(engine, topic_prefix)
    assert wo.detected_at == T0
    assert wo.fault_cleared_at == T0 + timedelta(seconds=30)
