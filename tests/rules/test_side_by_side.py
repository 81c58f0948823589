"""Several rules workers over one real PostgreSQL database, each a thread with an engine (connections) of its own,
ticking the same clocks at the same moment: every timer fires once, and the events of one device give the same
result in whatever order and on whichever worker they are applied as in the order of their times."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Postgres
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, EventType
from facmon.workorders.breaches import record_breaches
from facmon.workorders.tables import TimelineType, WorkOrder, WorkOrderClock, WorkOrderEvent
from rules import fire_checks, maintenance_visits
from rules.engine import evaluate
from rules.pipeline import Outcome, Step, claim, lock_device, run_handlers
from rules.state_store import apply_state_event, tick
from rules.tables import DeviceStateRow, DeviceStatus, RuleHold
from rules.worker import Broker, RulesWorker
from tests.rules.support import elevator
from tests.rules.test_arrival_worker import CARD, card_read, demo_site

T = TypeVar("T")
WORKERS = 4
T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
DEVICES = 40


@pytest.fixture
def engines(postgres_engine: Engine) -> Iterator[list[Engine]]:
    """One engine per worker on the test's database (each its own connections, as separate processes have)."""
    url = postgres_engine.url.render_as_string(hide_password=False)
    made = [make_engine(url) for _ in range(WORKERS)]
    yield made
    for engine in made:
        engine.dispose()


def race(engines: Sequence[Engine], work: Callable[[Engine], T]) -> list[T]:
    """`work` on every engine at once (started together at a barrier), each in a thread of its own."""
    barrier = threading.Barrier(len(engines))

    def run(engine: Engine) -> T:
        barrier.wait()
        return work(engine)

    with ThreadPoolExecutor(len(engines)) as pool:
        return list(pool.map(run, engines))


def site(devices: int = DEVICES) -> Site:
    cars = [
        {"id": f"e{n}", "kind": "elevator", "model": "elev-gb-a", "role": "main", "address": {"host": "h"}}
        for n in range(devices)
    ]
    return Site.model_validate({"site": {"id": "s1"}, "buildings": [{"id": "b1", "devices": cars}]})


def worker(engine: Engine, sites: Sequence[Site] = ()) -> RulesWorker:
    """A rules worker that is never connected: its handlers, as it applies an event."""
    return RulesWorker(
        Broker("127.0.0.1", 1, "unused"), engine=engine, clock=FakeClock(T0), metrics=Counters(), sites=sites
    )


def apply(rules: RulesWorker, engine: Engine, event: Event, now: datetime) -> None:
    run_handlers(engine, event, evaluate(rules.rules, event, now), now, rules.handlers)


def fault(device: str, ts: datetime, raised: bool, code: str = "30") -> Event:
    kind = EventType.FAULT_RAISED if raised else EventType.FAULT_CLEARED
    return Event(ref=elevator(device=device), ts=ts, type=kind, code=code)


def comm(device: str, ts: datetime, lost: bool, building: str = "b1") -> Event:
    return Event(
        ref=elevator(device=device, building=building),
        ts=ts,
        type=EventType.COMM_LOST if lost else EventType.COMM_RESTORED,
    )


def count(engine: Engine, query: Any) -> int:
    with Session(engine) as session:
        return int(session.execute(query).scalar_one())


# --- timers ----------------------------------------------------------------------------------------------------------


def test_sla_breaches_are_recorded_once_by_four_monitors_ticking_together(engines: list[Engine]) -> None:
    rules = worker(engines[0])
    for n in range(DEVICES):
        apply(rules, engines[0], fault(f"e{n}", T0, raised=True), T0)
    clocks = count(engines[0], select(func.count()).select_from(WorkOrderClock))
    assert clocks >= DEVICES
    recorded: list[tuple[int, str]] = []
    for second in range(3):
        now = T0 + timedelta(days=1, seconds=second)
        for breaches in race(engines, lambda engine, now=now: record_breaches(engine, now)):  # type: ignore[misc]
            recorded += [(b.work_order_id, b.clock) for b in breaches]
    assert len(recorded) == len(set(recorded)) == clocks
    timeline = select(func.count()).where(WorkOrderEvent.type == TimelineType.SLA_BREACHED)
    assert count(engines[0], timeline) == clocks


def test_state_holds_fire_once_with_four_workers_ticking_together(engines: list[Engine]) -> None:
    rules = worker(engines[0])
    for n in range(DEVICES):
        # A building each: many cars lost in one building would be one grouped work order.
        lost = comm(f"e{n}", T0, lost=True, building=f"b{n}")
        apply_state_event(engines[0], lost, rules.state_rules, {}, T0)
    assert count(engines[0], select(func.count()).select_from(RuleHold)) == DEVICES
    fired = 0
    for second in range(3):
        now = T0 + timedelta(minutes=10, seconds=second)
        results = race(engines, lambda engine, now=now: tick(engine, rules.state_rules, {}, now))  # type: ignore[misc]
        fired += sum(r.holds_fired for r in results)
    assert fired == DEVICES
    assert count(engines[0], select(func.count()).select_from(RuleHold)) == 0
    orders = select(func.count()).where(WorkOrder.fault == "comm_lost", WorkOrder.occurrences == 1)
    assert count(engines[0], orders) == count(engines[0], select(func.count()).select_from(WorkOrder)) == DEVICES


def _overdue_once(
    engines: list[Engine], work: Callable[[Engine, datetime], list[Any]], period: timedelta, subjects: list[str]
) -> None:
    """Two overdue periods, each ticked by every worker at once at three moments: one work order per subject, opened
    by the first period and counted once more by the second."""
    for periods in (1, 2):
        found = 0
        for second in range(3):
            now = T0 + periods * period + timedelta(seconds=second)
            found += sum(len(r) for r in race(engines, lambda engine, now=now: work(engine, now)))  # type: ignore[misc]
        assert found == len(subjects)
        with Session(engines[0]) as session:
            rows = session.execute(select(WorkOrder.device, WorkOrder.occurrences)).all()
        assert sorted(tuple(r) for r in rows) == sorted((subject, periods) for subject in subjects)


def test_fire_checks_fall_overdue_once_per_period_with_four_monitors(engines: list[Engine]) -> None:
    for n in range(DEVICES):
        fire_checks.register_panel(engines[0], "s1", "b1", f"p{n}", T0)
    period = timedelta(days=30)
    panels = [f"p{n}" for n in range(DEVICES)]
    _overdue_once(engines, lambda engine, now: fire_checks.open_overdue(engine, period, now), period, panels)


def test_maintenance_visits_fall_overdue_once_per_cycle_with_four_monitors(engines: list[Engine]) -> None:
    maintenance_visits.register_elevators(engines[0], [site()], T0)
    cycle = maintenance_visits.DEFAULT_CYCLE
    cars = [f"e{n}" for n in range(DEVICES)]
    _overdue_once(engines, lambda engine, now: maintenance_visits.open_overdue(engine, cycle, now), cycle, cars)


# --- events of one device on different workers ---------------------------------------------------------------------


def _waiting_on_a_lock(engine: Engine) -> int:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def test_a_second_worker_waits_for_the_first_to_commit_the_same_devices_event(engines: list[Engine]) -> None:
    rules = worker(engines[0])
    first, second, other = fault("e1", T0, raised=True), fault("e1", T0, raised=False), fault("e2", T0, raised=True)
    pool = ThreadPoolExecutor(1)
    try:
        with Session(engines[0]) as session, session.begin():
            assert claim(session, first.id, T0)
            lock_device(session, first)
            # Another device is not held up.
            apply(rules, engines[1], other, T0)
            applying = pool.submit(apply, rules, engines[2], second, T0)
            deadline = time.monotonic() + 10
            while _waiting_on_a_lock(engines[3]) == 0:  # polling PostgreSQL's own view of who waits
                assert time.monotonic() < deadline, "the second worker did not wait for the device's lock"
                assert not applying.done(), applying.result()
                time.sleep(0.01)
            # The first worker's work, committed only now: the second must see it when it goes on.
            step = Step(session, first, evaluate(rules.rules, first, T0), T0, Outcome())
            for handler in rules.handlers:
                handler(step)
    finally:
        pool.shutdown(wait=False)
    applying.result(timeout=10)
    with Session(engines[0]) as session:
        [cleared] = session.execute(select(WorkOrder.fault_cleared_at).where(WorkOrder.device == "e1")).scalars()
    assert cleared == T0  # the second saw the first's work order once it could go on


def test_a_card_read_on_one_worker_while_another_opens_the_work_order_proves_the_arrival(
    engines: list[Engine],
) -> None:
    """A fault and a technician's card read are events of different devices: two workers apply them at once. The
    read must not miss the work order being opened (nor the opening the read): the second waits for the first."""
    estate = demo_site("s1")  # e1, a gate, and Li Ming, an elevator technician with a card
    rules, now = worker(engines[0], [estate]), T0 + timedelta(minutes=2)
    broken = fault("e1", T0, raised=True)
    read = card_read("s1", FakeClock(T0 + timedelta(minutes=1)), CARD)
    pool = ThreadPoolExecutor(1)
    try:
        with Session(engines[0]) as session, session.begin():
            # The fault's worker opens the work order; its transaction is not committed yet.
            assert claim(session, broken.id, now)
            lock_device(session, broken)
            step = Step(session, broken, evaluate(rules.rules, broken, now), now, Outcome())
            for handler in rules.handlers:
                handler(step)
            assert step.outcome.opened
            applying = pool.submit(apply, worker(engines[2], [estate]), engines[2], read, now)
            deadline = time.monotonic() + 10
            while _waiting_on_a_lock(engines[3]) == 0:
                assert not applying.done(), "the card read went on without waiting for the opening to commit"
                assert time.monotonic() < deadline, "the card read neither waited nor finished"
                time.sleep(0.01)
    finally:
        pool.shutdown(wait=False)
    applying.result(timeout=10)
    with Session(engines[0]) as session:
        [(status, on_site_at)] = session.execute(select(WorkOrder.status, WorkOrder.on_site_at)).all()
    assert (status, on_site_at) == ("on_site", read.ts)


def _story(device: str) -> list[Event]:
    """A device's events: a fault raised and cleared, lost and found again, raised again and cleared again."""
    s = timedelta(seconds=1)
    return [
        fault(device, T0, raised=True),
        fault(device, T0 + 2 * s, raised=False),
        comm(device, T0 + 4 * s, lost=True),
        comm(device, T0 + 6 * s, lost=False),
        fault(device, T0 + 8 * s, raised=True, code="31"),
        fault(device, T0 + 9 * s, raised=False, code="31"),
    ]


def _outcome(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What the events left, without ids and processing times: work orders, device status and state, holds."""
    with Session(engine) as session:
        orders = session.execute(
            select(
                WorkOrder.device,
                WorkOrder.fault,
                WorkOrder.status,
                WorkOrder.occurrences,
                WorkOrder.detected_at,
                WorkOrder.last_occurrence_at,
                WorkOrder.fault_cleared_at,
            )
        ).all()
        status = session.execute(select(DeviceStatus.device, DeviceStatus.comm, DeviceStatus.last_event_at)).all()
        state = session.execute(select(DeviceStateRow.device, DeviceStateRow.comm, DeviceStateRow.faults)).all()
        holds = session.execute(select(RuleHold.device, RuleHold.rule_id)).all()
    return {
        "work orders": sorted(tuple(r) for r in orders),
        "status": sorted(tuple(r) for r in status),
        "state": sorted((d, c, tuple(f)) for d, c, f in state),
        "holds": sorted(tuple(r) for r in holds),
    }


def test_events_of_one_device_on_two_workers_out_of_order_end_as_in_order(
    engines: list[Engine], postgres: Postgres, postgres_template: str
) -> None:
    devices = [f"e{n}" for n in range(DEVICES)]
    now = T0 + timedelta(minutes=1)
    # The reference: every event in the order of its time, on one worker, in a database of its own.
    reference = make_engine(postgres.create_database("in_order", template=postgres_template))
    try:
        rules = worker(reference, [site()])
        for event in sorted((e for d in devices for e in _story(d)), key=lambda e: e.ts):
            apply(rules, reference, event, now)
        expected = _outcome(reference)
    finally:
        reference.dispose()
        postgres.drop_database("in_order")
    # Two workers, each taking every other event of each device, each in an order of its own: clears before raises.
    shuffled = random.Random(15)
    queues: list[list[Event]] = [[], []]
    for device in devices:
        story = _story(device)
        queues[0] += story[1::2]
        queues[1] += story[0::2]
    queues[0].sort(key=lambda e: e.ts)
    shuffled.shuffle(queues[1])

    def consume(engine: Engine, queue: list[Event]) -> None:
        rules = worker(engine, [site()])
        for event in queue:
            apply(rules, engine, event, now)

    barrier = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        done = [
            pool.submit(lambda e=e, q=q: (barrier.wait(), consume(e, q))) for e, q in zip(engines, queues, strict=False)
        ]
        for future in done:
            future.result()
    got = _outcome(engines[0])
    assert got == expected
    # What that is: per device one work order per fault, still open (a person resolves it), its fault cleared.
    assert len(got["work orders"]) == 2 * DEVICES
    assert all(status == "open" and cleared is not None for *_, status, _, _, _, cleared in got["work orders"])
    assert got["holds"] == []
