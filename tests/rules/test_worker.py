"""The rules worker against a real Mosquitto and a real SQLite file: no mocks, waits are polls with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomqtt
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, Reading
from facmon.kernel.topics import EVENT, event_topic, subscription
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.breaches import BreachHandler, SlaBreach
from facmon.workorders.lifecycle import LifecycleSink
from facmon.workorders.tables import WorkOrder
from rules.monitors import RulesMonitors, Timing
from rules.worker import Broker, RulesWorker
from tests.rules.support import MakeEvent, elevator

DEADLINE_S = 10.0


@dataclass(frozen=True)
class Rules:
    """A worker and its monitors, started side by side as the composition root starts them."""

    worker: RulesWorker
    monitors: RulesMonitors


def rules_for(
    port: int,
    client_id: str,
    engine: Engine,
    clock: FakeClock,
    metrics: Counters,
    *,
    sites: Sequence[Site] | None = None,
    on_breach: BreachHandler | None = None,
    lifecycle_sink: LifecycleSink | None = None,
) -> Rules:
    """A worker reconnecting quickly, with monitors ticking every 10 ms."""
    broker = Broker("127.0.0.1", port, client_id, reconnect_min_s=0.05, reconnect_max_s=0.5)
    worker = RulesWorker(broker, engine=engine, clock=clock, metrics=metrics, sites=sites)
    monitors = RulesMonitors(
        engine,
        clock,
        metrics,
        broker=broker,
        sites=sites or (),
        state_rules=worker.state_rules,
        timing=Timing(tick_interval_s=0.01),
        on_breach=on_breach,
        lifecycle_sink=lifecycle_sink,
    )
    return Rules(worker, monitors)


def make_worker(
    port: int,
    engine: Engine,
    clock: FakeClock,
    metrics: Counters,
    client_id: str,
    on_breach: BreachHandler | None = None,
    lifecycle_sink: LifecycleSink | None = None,
    *,
    site: str | None = None,
) -> Rules:
    """A worker without site files; with `site`, it takes that site's events only, as a worker with a site file does
    (the shared test broker keeps other tests' retained comm events)."""
    rules = rules_for(port, client_id, engine, clock, metrics, on_breach=on_breach, lifecycle_sink=lifecycle_sink)
    if site is not None:
        rules.worker.topics = [subscription(site, leaf=EVENT)]
    return rules


async def _run(rules: Rules) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(rules.worker.run())
        for monitor in rules.monitors.services():
            tg.create_task(monitor.run())


@contextlib.asynccontextmanager
async def running(rules: Rules) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(_run(rules))
    try:
        await eventually(lambda: rules.worker.subscribed.is_set() or task.done(), "worker subscribed")
        assert not task.done(), "worker stopped on its own"
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {what}")
        await asyncio.sleep(0.02)


async def publish(port: int, *messages: tuple[str, bytes | str]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def as_message(event: Event) -> tuple[str, str]:
    return event_topic(event.ref), event.model_dump_json()


def work_orders(engine: Engine, site: str) -> list[WorkOrder]:
    with Session(engine) as session:
        query = select(WorkOrder).where(WorkOrder.site == site).order_by(WorkOrder.id)
        return list(session.execute(query).scalars())


async def test_event_on_the_broker_opens_a_work_order(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, make_event: MakeEvent, topic_prefix: str
) -> None:
    metrics = Counters()
    async with running(make_worker(mosquitto.port, engine, clock, metrics, f"rules-{topic_prefix}", site=topic_prefix)):
        await publish(mosquitto.port, as_message(make_event("fault_raised", "entrapment", site=topic_prefix)))
        # The counter moves after the commit, so once it does the work order is there too.
        await eventually(lambda: metrics.get("rules_work_orders_opened") == 1, "a work order opened")
    [wo] = work_orders(engine, topic_prefix)
    assert (wo.device, wo.fault, wo.priority, wo.status) == ("e1", "entrapment", "emergency", "open")
    assert wo.due_at == clock.now() + timedelta(minutes=20)


async def test_bad_payloads_are_counted_and_do_not_stop_the_next_event(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, make_event: MakeEvent, topic_prefix: str
) -> None:
    metrics = Counters()
    ref = elevator(site=topic_prefix)
    topic = event_topic(ref)
    reading = Reading(ref=ref, ts=clock.now(), values={"floor": 3})
    other_device = make_event("fault_raised", "2", site=topic_prefix, device="e9")
    bad: list[tuple[str, bytes | str]] = [
        (topic, b"\xff not json"),
        (topic, b"[1, 2]"),
        (topic, reading.model_dump_json()),  # a reading is not an event
        (topic, other_device.model_dump_json()),  # filed under the wrong device
        (topic, make_event("fault_raised", None, site=topic_prefix).model_dump_json()),  # a fault needs a code
    ]
    good = make_event("fault_raised", "2", site=topic_prefix)
    async with running(make_worker(mosquitto.port, engine, clock, metrics, f"rules-{topic_prefix}", site=topic_prefix)):
        await publish(mosquitto.port, *bad, as_message(good))
        await eventually(lambda: metrics.get("rules_events_applied") == 1, "the good event applied")
    assert len(work_orders(engine, topic_prefix)) == 1
    assert metrics.get("rules_events_rejected") == len(bad)
    assert metrics.get("rules_events_rejected", reason="decode") == 2
    assert metrics.get("rules_events_rejected", reason="not_event") == 1
    assert metrics.get("rules_events_rejected", reason="topic_mismatch") == 1
    assert metrics.get("rules_events_rejected", reason="invalid") == 1
    assert metrics.get("rules_events_applied") == 1


async def test_events_sent_while_the_worker_was_down_are_processed_after_restart(
    mosquitto: Mosquitto, engine: Engine, clock: FakeClock, make_event: MakeEvent, topic_prefix: str
) -> None:
    metrics = Counters()
    client_id = f"rules-{topic_prefix}"
    # The first run creates the persistent session and its subscription at the broker.
    async with running(make_worker(mosquitto.port, engine, clock, metrics, client_id, site=topic_prefix)):
        pass
    first = make_event("fault_raised", "2", site=topic_prefix)
    clock.advance(30)
    repeat = make_event("fault_raised", "2", site=topic_prefix)
    other = make_event("fault_raised", "7", site=topic_prefix, device="e2")
    # `first` twice: the same event delivered again (QoS 1 is at-least-once) must not count twice.
    await publish(mosquitto.port, *map(as_message, (first, first, repeat, other)))

    async with running(make_worker(mosquitto.port, engine, clock, metrics, client_id, site=topic_prefix)):
        await eventually(
            lambda: (metrics.get("rules_events_applied"), metrics.get("rules_events_duplicate")) == (3, 1),
            "three events applied and the duplicate recognised",
        )
    e1, e2 = work_orders(engine, topic_prefix)
    assert (e1.device, e1.fault, e1.occurrences) == ("e1", "2", 2)
    assert (e2.device, e2.fault, e2.occurrences) == ("e2", "7", 1)


async def test_worker_reconnects_after_a_broker_restart(
    mosquitto_factory: Callable[[], Mosquitto], engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    broker = mosquitto_factory()
    metrics = Counters()
    rules = make_worker(broker.port, engine, clock, metrics, f"rules-{uuid.uuid4().hex[:8]}")
    worker = rules.worker
    async with running(rules) as task:
        await asyncio.to_thread(broker.stop)
        await eventually(lambda: not worker.subscribed.is_set(), "worker noticed the broker is gone")
        await asyncio.to_thread(broker.start)
        await eventually(lambda: worker.subscribed.is_set(), "worker subscribed again")
        await publish(broker.port, as_message(make_event("fault_raised", "11", site="reconnect")))
        await eventually(lambda: len(work_orders(engine, "reconnect")) == 1, "a work order after the restart")
        assert not task.done()
    assert metrics.get("rules_mqtt_disconnects") >= 1


async def test_an_event_is_acknowledged_only_after_it_is_committed(
    mosquitto: Mosquitto, tmp_path: Path, clock: FakeClock, make_event: MakeEvent, topic_prefix: str
) -> None:
    # The database file's folder does not exist yet: every transaction fails with OperationalError.
    url = f"sqlite:///{tmp_path / 'later' / 'facmon.db'}"
    broken, metrics = make_engine(url), Counters()
    client_id = f"rules-{topic_prefix}"
    try:
        async with running(make_worker(mosquitto.port, broken, clock, metrics, client_id, site=topic_prefix)):
            await publish(mosquitto.port, as_message(make_event("fault_raised", "8", site=topic_prefix)))
            await eventually(lambda: metrics.get("rules_db_retries") >= 2, "the worker retrying the database")
    finally:
        broken.dispose()
    assert metrics.get("rules_events_applied") == 0

    # The worker was stopped holding the event unacknowledged, so the broker delivers it again to the next run.
    (tmp_path / "later").mkdir()
    engine = make_engine(url)
    try:
        create_schema(engine)
        async with running(make_worker(mosquitto.port, engine, clock, metrics, client_id, site=topic_prefix)):
            await eventually(lambda: metrics.get("rules_events_applied") == 1, "the redelivered event applied")
        assert [wo.fault for wo in work_orders(engine, topic_prefix)] == ["8"]
    finally:
        engine.dispose()


async def ticks_pass(rules: Rules) -> None:
    """Let the monitors run at the fake clock's time: once each periodic loop has ticked for the first time, wait
    until every loop the last `advance` woke (the SLA monitor, the state ticker, the exporter...) has done its work at
    the new time and sleeps again."""
    clock = rules.worker.clock
    assert isinstance(clock, FakeClock)
    monitors = rules.monitors
    await eventually(lambda: monitors.sla.ticks > 0 and monitors.state_ticker.ticks > 0, "the first ticks")
    await clock.settle()


async def test_breaches_fire_once_at_the_right_time_across_a_worker_restart(
    mosquitto: Mosquitto, db_url: str, clock: FakeClock, make_event: MakeEvent, topic_prefix: str
) -> None:
    url = db_url
    client_id = f"rules-{topic_prefix}"
    heard: list[SlaBreach] = []
    lines: list[str] = []

    async def on_breach(breach: SlaBreach) -> None:
        heard.append(breach)

    class Sink:
        async def write(self, batch: Sequence[str]) -> None:
            lines.extend(batch)

    event = make_event("fault_raised", "entrapment", site=topic_prefix)
    t0 = clock.now()
    first_engine, first_metrics = make_engine(url), Counters()
    create_schema(first_engine)
    first = make_worker(
        mosquitto.port, first_engine, clock, first_metrics, client_id, on_breach, Sink(), site=topic_prefix
    )
    async with running(first):
        await publish(mosquitto.port, as_message(event))
        await eventually(lambda: first_metrics.get("rules_work_orders_opened") == 1, "the work order opened")
        clock.advance(2 * 60)
        await ticks_pass(first)
    first_engine.dispose()
    assert heard == []

    second_engine, second_metrics = make_engine(url), Counters()
    create_schema(second_engine)
    second = make_worker(
        mosquitto.port, second_engine, clock, second_metrics, client_id, on_breach, Sink(), site=topic_prefix
    )
    try:
        async with running(second):
            # The same event delivered again after the restart: recognised by its id, nothing opens.
            await publish(mosquitto.port, as_message(event))
            await eventually(lambda: second_metrics.get("rules_events_duplicate") == 1, "the redelivery recognised")
            clock.advance(t0 + timedelta(minutes=3) - clock.now())
            await ticks_pass(second)
            assert heard == []  # the deadline itself is still in time
            clock.advance(1)
            await eventually(lambda: len(heard) == 1, "the acknowledgement breach")
            await ticks_pass(second)
            clock.advance(t0 + timedelta(minutes=20, seconds=1) - clock.now())
            await eventually(lambda: len(heard) == 2, "the arrival breach")
            clock.advance(t0 + timedelta(minutes=30, seconds=1) - clock.now())
            await eventually(lambda: len(heard) == 3, "the statutory breach")
            # The exporter may have looked before the breach was recorded: one more interval, and it is out.
            clock.advance(1)
            await ticks_pass(second)
            await eventually(lambda: sum("event=sla_breached" in line for line in lines) == 3, "breach points")
        assert [(b.clock, b.breached_at - t0) for b in heard] == [
            ("acknowledge", timedelta(minutes=3, seconds=1)),
            ("on_site", timedelta(minutes=20, seconds=1)),
            ("statutory_on_site", timedelta(minutes=30, seconds=1)),
        ]
        [wo] = work_orders(second_engine, topic_prefix)
        assert wo.occurrences == 1
        assert second_metrics.get("rules_sla_breaches") == 3
        assert sum("event=opened" in line for line in lines) == 1
    finally:
        second_engine.dispose()
