"""Breach detection on the fake clock: on time, once, across restarts and between monitors, over a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.breaches import SlaBreach, SlaMonitor, record_breaches
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import Milestone, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import ApplyResult, apply_event
from tests.rules.support import MakeEvent
from tests.support import eventually

RULES = load_rules()
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def apply(engine: Engine, event: Event, clock: FakeClock) -> ApplyResult:
    return apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now())


class Heard:
    """An on_breach callback that remembers what it was handed."""

    def __init__(self) -> None:
        self.breaches: list[SlaBreach] = []

    async def __call__(self, breach: SlaBreach) -> None:
        self.breaches.append(breach)

    def clocks(self) -> list[str]:
        return [b.clock for b in self.breaches]


async def tick_at(monitor: SlaMonitor, clock: FakeClock, at: datetime) -> list[str]:
    clock.advance(at - clock.now())
    return [b.clock for b in await monitor.tick()]


async def test_entrapment_breaches_acknowledge_arrival_and_statutory_each_once_on_time(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    [wo_id] = apply(engine, make_event("fault_raised", "entrapment"), clock).opened
    t0, heard = clock.now(), Heard()
    monitor = SlaMonitor(engine, clock, on_breach=heard)
    expected = [
        (t0 + 2 * MIN, []),
        (t0 + 3 * MIN, []),  # the deadline itself is still in time
        (t0 + 3 * MIN + SEC, ["acknowledge"]),  # the next tick after it
        (t0 + 3 * MIN + 2 * SEC, []),  # once
        (t0 + 19 * MIN, []),
        (t0 + 20 * MIN + SEC, ["on_site"]),
        (t0 + 25 * MIN, []),
        (t0 + 30 * MIN + SEC, ["statutory_on_site"]),
        (t0 + 3 * 60 * MIN, []),
        (t0 + 4 * 60 * MIN, []),  # the 4 h repair (rescue and make safe) deadline
        (t0 + 4 * 60 * MIN + SEC, ["repair"]),
        (t0 + 24 * 60 * MIN, []),
    ]
    assert [(at, await tick_at(monitor, clock, at)) for at, _ in expected] == expected
    assert heard.clocks() == ["acknowledge", "on_site", "statutory_on_site", "repair"]
    first = heard.breaches[0]
    assert (first.work_order_id, first.site, first.device, first.fault, first.priority, first.milestone) == (
        wo_id,
        "s1",
        "e1",
        "entrapment",
        "emergency",
        Milestone.ACKNOWLEDGED,
    )
    assert (first.due_at, first.breached_at, first.met_at) == (t0 + 3 * MIN, t0 + 3 * MIN + SEC, None)
    with Session(engine) as session:
        wo = get_work_order(session, wo_id)
        assert wo is not None
        entries = [(e.at, e.detail["clock"], e.status) for e in wo.timeline if e.type == "sla_breached"]
        assert {c.name: c.breached_at for c in wo.clocks} == {
            "acknowledge": t0 + 3 * MIN + SEC,
            "on_site": t0 + 20 * MIN + SEC,
            "statutory_on_site": t0 + 30 * MIN + SEC,
            "repair": t0 + 4 * 60 * MIN + SEC,
        }
    assert entries == [
        (t0 + 3 * MIN + SEC, "acknowledge", "open"),
        (t0 + 20 * MIN + SEC, "on_site", "open"),
        (t0 + 30 * MIN + SEC, "statutory_on_site", "open"),
        (t0 + 4 * 60 * MIN + SEC, "repair", "open"),
    ]
    assert monitor.metrics.get("rules_sla_breaches", clock="on_site", kind="elevator") == 1


async def test_met_in_time_or_cancelled_in_time_never_breaches(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    [prompt] = apply(engine, make_event("fault_raised", "entrapment"), clock).opened
    [false_alarm] = apply(engine, make_event("fault_raised", "15", device="e2"), clock).opened
    t0, heard = clock.now(), Heard()
    monitor = SlaMonitor(engine, clock, on_breach=heard)
    clock.advance(2 * MIN)
    transition(engine, prompt, WorkOrderStatus.ON_SITE, actor="card 7", source="card_read", at=clock.now())
    transition(engine, false_alarm, WorkOrderStatus.CANCELLED, actor="li", source="api", at=clock.now(), note="test")
    for minutes in (3, 4, 21, 31, 180):
        assert await tick_at(monitor, clock, t0 + minutes * MIN + SEC) == []
    # Rescued and made safe inside the 4 h repair clock.
    transition(engine, prompt, WorkOrderStatus.RESOLVED, actor="li", source="api", at=clock.now())
    for minutes in (241, 600, 24 * 60 + 1):
        assert await tick_at(monitor, clock, t0 + minutes * MIN + SEC) == []
    assert heard.breaches == []


async def test_a_clock_met_late_while_no_monitor_ran_is_still_recorded(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    [wo_id] = apply(engine, make_event("fault_raised", "entrapment"), clock).opened
    t0 = clock.now()
    clock.advance(5 * MIN)
    transition(engine, wo_id, WorkOrderStatus.ACKNOWLEDGED, actor="li", source="api", at=clock.now())
    monitor = SlaMonitor(engine, clock)
    [late] = await monitor.tick()
    assert (late.clock, late.due_at, late.met_at, late.breached_at) == (
        "acknowledge",
        t0 + 3 * MIN,
        t0 + 5 * MIN,
        t0 + 5 * MIN,
    )


async def test_restart_fires_each_breach_once_and_a_redelivered_event_opens_nothing(
    db_url: str, clock: FakeClock, make_event: MakeEvent
) -> None:
    url = db_url
    event = make_event("fault_raised", "entrapment")
    t0, heard = clock.now(), Heard()

    first = make_engine(url)
    create_schema(first)
    [wo_id] = apply(first, event, clock).opened
    monitor = SlaMonitor(first, clock, on_breach=heard)
    assert await tick_at(monitor, clock, t0 + 2 * MIN) == []
    del monitor  # the process goes away partway to the first deadline
    first.dispose()

    second = make_engine(url)
    create_schema(second)
    # The broker delivers the same event again after the restart: its id was processed, nothing opens or recurs.
    assert apply(second, event, clock) == ApplyResult(duplicate=True)
    monitor = SlaMonitor(second, clock, on_breach=heard)
    assert await tick_at(monitor, clock, t0 + 3 * MIN) == []
    assert await tick_at(monitor, clock, t0 + 3 * MIN + SEC) == ["acknowledge"]
    second.dispose()

    third = make_engine(url)  # and once more, right after the breach was recorded
    monitor = SlaMonitor(third, clock, on_breach=heard)
    assert await tick_at(monitor, clock, t0 + 3 * MIN + 2 * SEC) == []
    # Down from 4 to 25 minutes: the arrival breach that fell due meanwhile is recorded by the first tick after.
    assert await tick_at(monitor, clock, t0 + 25 * MIN) == ["on_site"]
    assert await tick_at(monitor, clock, t0 + 30 * MIN + SEC) == ["statutory_on_site"]
    assert heard.clocks() == ["acknowledge", "on_site", "statutory_on_site"]
    with Session(third) as session:
        wo = get_work_order(session, wo_id)
        assert wo is not None
        assert (wo.occurrences, [e.type for e in wo.timeline].count("sla_breached")) == (1, 3)
    third.dispose()


def test_two_monitors_at_the_same_moment_record_a_breach_once(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    for device in ("e1", "e2", "e3"):
        apply(engine, make_event("fault_raised", "2", device=device), clock)
    clock.advance(21 * MIN)
    barrier = threading.Barrier(4)
    recorded: list[list[SlaBreach]] = []

    def monitor() -> None:
        barrier.wait()
        recorded.append(record_breaches(engine, clock.now()))

    threads = [threading.Thread(target=monitor) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(recorded) == 4
    assert sorted(b.device for batch in recorded for b in batch) == ["e1", "e2", "e3"]


async def test_a_failing_subscriber_does_not_stop_the_others(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    apply(engine, make_event("fault_raised", "2"), clock)
    apply(engine, make_event("fault_raised", "2", device="e2"), clock)
    handed: list[str] = []

    async def fragile(breach: SlaBreach) -> None:
        handed.append(breach.device)
        if breach.device == "e1":
            raise RuntimeError("webhook down")

    metrics = Counters()
    monitor = SlaMonitor(engine, clock, on_breach=fragile, metrics=metrics)
    clock.advance(21 * MIN)
    assert len(await monitor.tick()) == 2
    assert handed == ["e1", "e2"]
    assert metrics.get("rules_sla_breach_handler_errors") == 1
    assert await monitor.tick() == []  # recorded all the same: not handed on again


async def test_run_keeps_ticking_through_a_database_outage(tmp_path: Path, clock: FakeClock) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'facmon.db'}")
    metrics = Counters()
    task = asyncio.create_task(SlaMonitor(broken, clock, metrics=metrics).run(interval_s=1.0))
    try:
        await eventually(lambda: clock.sleeping, what="the first tick to end")
        assert metrics.get("rules_sla_monitor_db_errors") == 1
        await clock.advance_and_settle(0.5)
        assert metrics.get("rules_sla_monitor_db_errors") == 1  # not before its interval
        await clock.advance_and_settle(0.5)
        assert metrics.get("rules_sla_monitor_db_errors") == 2
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        broken.dispose()
