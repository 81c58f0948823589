"""The fire alarm path (apart from work orders), false alarms per local day, and overdue single-item checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.tables import WorkOrder
from rules.arrival import open_orders
from rules.fire import FalseAlarmDay, false_alarm_days
from rules.fire_checks import FireCheckMonitor, record_check, register_panel
from rules.obligations import overdue_due
from rules.tables import FireAlarm, FireAlarmOutcome, FireCheckResult
from rules.worker import Broker, RulesWorker

PANEL = DeviceRef(site="s1", building="b1", device="fp1", kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def point_event(type_: EventType, code: str, point: str, ts: datetime, point_type: str) -> Event:
    return Event(ref=PANEL, ts=ts, type=type_, code=code, point=point, data={"point_type": point_type})


@pytest.fixture
def worker(engine: Engine, clock: FakeClock) -> RulesWorker:
    # Not connected: the test hands events to the same path the consumer uses for each message.
    return RulesWorker(Broker("127.0.0.1", 1, "t"), engine=engine, clock=clock, metrics=Counters())


def alarms(engine: Engine) -> list[FireAlarm]:
    with Session(engine) as session:
        return list(session.execute(select(FireAlarm).order_by(FireAlarm.id)).scalars())


def work_orders(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(select(WorkOrder.fault).order_by(WorkOrder.id)).scalars())


async def test_a_fire_signal_is_a_fire_alarm_and_a_supervisory_one_is_not(
    engine: Engine, clock: FakeClock, worker: RulesWorker
) -> None:
    clock.advance(T0 - clock.now())
    fire = point_event(EventType.FAULT_RAISED, "fire", "1-004", T0, "smoke_detector")
    supervisory = point_event(EventType.FAULT_RAISED, "supervisory", "1-007", T0, "water_flow_indicator")
    fault = point_event(EventType.FAULT_RAISED, "fault", "1-009", T0, "smoke_detector")
    for event in (fire, supervisory, fault, fire):  # the fire event delivered twice
        await worker._apply(event)
    [alarm] = alarms(engine)
    assert (alarm.device, alarm.point, alarm.point_type, alarm.raised_at, alarm.cleared_at, alarm.outcome) == (
        "fp1",
        "1-004",
        "smoke_detector",
        T0,
        None,
        FireAlarmOutcome.UNKNOWN,
    )
    # Only the point in fault is maintenance work; neither the fire nor the supervisory signal opened a work order.
    assert work_orders(engine) == ["1-009/fault"]
    assert worker.metrics.get("rules_fire_alarms") == 1

    clock.advance(90)
    await worker._apply(point_event(EventType.FAULT_CLEARED, "fire", "1-004", clock.now(), "smoke_detector"))
    [alarm] = alarms(engine)
    assert alarm.cleared_at == T0 + timedelta(seconds=90)


async def test_a_clear_processed_before_its_alarm_clears_it(
    engine: Engine, clock: FakeClock, worker: RulesWorker
) -> None:
    """Two workers took the point's events and the clear's finished first: the alarm is recorded cleared, as in
    order. An alarm after that clear, and one of another point, stay raised."""
    clock.advance(T0 + timedelta(minutes=5) - clock.now())

    def fire(type_: EventType, point: str, at: datetime) -> Event:
        return point_event(type_, "fire", point, at, "smoke_detector")

    await worker._apply(fire(EventType.FAULT_CLEARED, "1-004", T0 + timedelta(seconds=40)))
    await worker._apply(fire(EventType.FAULT_RAISED, "1-004", T0))
    await worker._apply(fire(EventType.FAULT_RAISED, "1-005", T0 + timedelta(seconds=10)))
    await worker._apply(fire(EventType.FAULT_RAISED, "1-004", T0 + timedelta(seconds=60)))
    got = [(a.point, a.raised_at, a.cleared_at) for a in alarms(engine)]
    assert got == [
        ("1-004", T0, T0 + timedelta(seconds=40)),
        ("1-005", T0 + timedelta(seconds=10), None),
        ("1-004", T0 + timedelta(seconds=60), None),
    ]
    await worker._apply(fire(EventType.FAULT_CLEARED, "1-004", T0 + timedelta(seconds=90)))
    assert [a.cleared_at for a in alarms(engine)] == [T0 + timedelta(seconds=40), None, T0 + timedelta(seconds=90)]


# Shanghai is UTC+8: its day 2026-03-02 runs from 2026-03-01T16:00Z to 2026-03-02T16:00Z.
DAY_START = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)


def falses(*offsets_s: float, site: str = "s1") -> list[tuple[str, datetime, str]]:
    return [(site, DAY_START + timedelta(seconds=s), "false_alarm") for s in offsets_s]


D1, D2, D3 = (date(2026, 3, d) for d in (1, 2, 3))


@pytest.mark.parametrize(
    ("alarms_", "expected"),
    [
        ([], []),
        # Five in a day is the limit, not over it.
        (falses(0, 1, 2, 3, 4), [FalseAlarmDay("s1", D2, 5, False)]),
        (falses(0, 1, 2, 3, 4, 5), [FalseAlarmDay("s1", D2, 6, True)]),
        # A second before local midnight is the day before: 1 + 5, neither flagged.
        (falses(-1, 1, 2, 3, 4, 5), [FalseAlarmDay("s1", D1, 1, False), FalseAlarmDay("s1", D2, 5, False)]),
        # The local day ends at 16:00Z, not at UTC midnight: six alarms on one UTC day split 3 + 3.
        (
            falses(*(86400 - 3 + i for i in range(6))),
            [FalseAlarmDay("s1", D2, 3, False), FalseAlarmDay("s1", D3, 3, False)],
        ),
        # Per site: six over two sites is no site's problem.
        (
            falses(0, 1, 2) + falses(3, 4, 5, site="s2"),
            [FalseAlarmDay("s1", D2, 3, False), FalseAlarmDay("s2", D2, 3, False)],
        ),
        # Confirmed alarms and alarms without a verdict are not false alarms.
        (
            [*falses(0, 1, 2, 3, 4), ("s1", DAY_START, "confirmed"), ("s1", DAY_START, "unknown")],
            [FalseAlarmDay("s1", D2, 5, False)],
        ),
    ],
)
def test_false_alarms_per_site_and_local_day(
    alarms_: list[tuple[str, datetime, str]], expected: list[FalseAlarmDay]
) -> None:
    assert false_alarm_days(alarms_, {"s1": SHANGHAI, "s2": SHANGHAI}) == expected


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (29 * DAY, None),
        (30 * DAY - timedelta(seconds=1), None),
        (30 * DAY, 30 * DAY),
        (59 * DAY, 30 * DAY),
        (60 * DAY, 60 * DAY),
    ],
)
def test_overdue_due(elapsed: timedelta, expected: timedelta | None) -> None:
    assert overdue_due(T0, 30 * DAY, T0 + elapsed) == (None if expected is None else T0 + expected)


async def test_an_overdue_check_opens_one_work_order_per_period(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = FireCheckMonitor(engine, clock, period=30 * DAY)
    register_panel(engine, "s1", "b1", "fp1", T0)
    register_panel(engine, "s1", "b1", "fp1", T0 + DAY)  # seen again: the schedule keeps the first sighting
    clock.advance(30 * DAY - timedelta(seconds=1))
    assert await monitor.tick() == []
    clock.advance(1)
    [overdue] = await monitor.tick()
    assert (overdue.subject, overdue.due_at) == ("fp1", T0 + 30 * DAY)
    clock.advance(3600)
    assert await monitor.tick() == []  # the same period does not open it again
    # A second monitor (a restart) finds the period taken too.
    assert await FireCheckMonitor(engine, clock, period=30 * DAY).tick() == []
    with Session(engine) as session:
        [wo] = session.execute(select(WorkOrder)).scalars()
        assert (wo.device, wo.kind, wo.fault, wo.status, wo.occurrences, wo.detected_at) == (
            "fp1",
            "fire_panel",
            "single_item_check_overdue",
            "open",
            1,
            T0 + 30 * DAY,
        )
        assert wo.sla_profile == "fire.single-item-check"


async def test_a_recorded_check_stops_the_overdue_work_order(engine: Engine) -> None:
    clock = FakeClock(T0)
    monitor = FireCheckMonitor(engine, clock, period=30 * DAY)
    register_panel(engine, "s1", "b1", "fp1", T0)
    clock.advance(20 * DAY)
    record_check(
        engine,
        site="s1",
        device="fp1",
        system=None,
        item="detector test",
        actor="wang",
        result=FireCheckResult.PASSED,
        note=None,
        at=clock.now(),
        now=clock.now(),
    )
    clock.advance(15 * DAY)  # 35 days after first seen, 15 after the check
    assert await monitor.tick() == []
    clock.advance(15 * DAY)  # 30 days after the check
    [overdue] = await monitor.tick()
    assert overdue.due_at == T0 + 50 * DAY
    # Still unchecked a period later: overdue again, the open work order counts a second occurrence.
    clock.advance(30 * DAY)
    assert len(await monitor.tick()) == 1
    assert await monitor.tick() == []
    with Session(engine) as session:
        assert [(w.fault, w.occurrences) for w in session.execute(select(WorkOrder)).scalars()] == [
            ("single_item_check_overdue", 2)
        ]


async def test_a_system_is_scheduled_from_its_first_check(engine: Engine) -> None:
    clock = FakeClock(T0)
    record_check(
        engine,
        site="s1",
        device=None,
        system="sprinkler",
        item="alarm valve test",
        actor="wang",
        result=FireCheckResult.FAILED,
        note="valve stuck",
        at=T0,
        now=T0,
    )
    clock.advance(30 * DAY)
    [overdue] = await FireCheckMonitor(engine, clock, period=30 * DAY).tick()
    assert overdue.subject == "system:sprinkler"
    with Session(engine) as session:
        [wo] = session.execute(select(WorkOrder)).scalars()
        assert (wo.kind, wo.title) == ("fire_system", "Monthly single-item check overdue: fire system sprinkler")


async def test_a_card_read_beside_a_fire_systems_overdue_check_moves_only_device_work_orders(engine: Engine) -> None:
    clock = FakeClock(T0)
    record_check(
        engine, site="s1", device=None, system="sprinkler", item="alarm valve test", actor="wang",
        result=FireCheckResult.PASSED, note=None, at=T0, now=T0,
    )  # fmt: skip
    clock.advance(30 * DAY)
    await FireCheckMonitor(engine, clock, period=30 * DAY).tick()
    with Session(engine) as session:
        assert [o.kind for o in open_orders(session, "s1")] == []  # used to raise: 'fire_system' is no DeviceKind
