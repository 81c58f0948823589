"""State rules against a real SQLite file: state and holds survive restarts, holds fire once, groups, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.workorders.tables import WorkOrder, WorkOrderMember
from rules.state_rules import load_state_rules
from rules.state_store import StateTicker, apply_state_event, tick
from rules.tables import RuleHold
from tests.rules.support import elevator

RULES = load_state_rules()
T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai: outside the peaks
SITE = Site.model_validate(
    {
        "site": {"id": "s1", "timezone": "Europe/Berlin"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": "m1", "kind": "elevator", "model": "elev-gb-a", "role": "main", "address": {"host": "h"}},
                    {"id": "p1", "kind": "elevator", "model": "elev-gb-a", "role": "peak", "address": {"host": "h"}},
                    {"id": "k1", "kind": "elevator", "model": "elev-gb-a", "role": "backup", "address": {"host": "h"}},
                ],
            }
        ],
    }
)
SITES = {"s1": SITE}


def event(clock: FakeClock, type_: EventType, device: str = "e1", code: str | None = None, **data: str) -> Event:
    return Event(ref=elevator(device=device), ts=clock.now(), type=type_, code=code, data=data)


def apply(engine: Engine, clock: FakeClock, ev: Event) -> list[int]:
    return apply_state_event(engine, ev, RULES, SITES, clock.now()).opened


def orders(engine: Engine) -> list[tuple[str, str, str, int]]:
    with Session(engine) as session:
        rows = session.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars()
        return [(wo.device, wo.kind, wo.fault, wo.occurrences) for wo in rows]


def holds(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(h.device, h.rule_id) for h in session.execute(select(RuleHold)).scalars()]


def test_comm_restored_within_the_hold_cancels_it(engine: Engine) -> None:
    clock = FakeClock(T0)
    apply(engine, clock, event(clock, EventType.COMM_LOST))
    assert holds(engine) == [("e1", "elevator.comm.lost.work-order")]
    clock.advance(timedelta(minutes=9, seconds=59))
    apply(engine, clock, event(clock, EventType.COMM_RESTORED))
    assert holds(engine) == []
    clock.advance(timedelta(minutes=5))
    assert tick(engine, RULES, SITES, clock.now()).opened == []
    assert orders(engine) == []


def test_a_hold_fires_once_at_its_due_time_after_a_restart(engine: Engine, db_url: str) -> None:
    clock = FakeClock(T0)
    lost_at = clock.now()
    apply(engine, clock, event(clock, EventType.COMM_LOST))
    clock.advance(timedelta(minutes=5))
    tick(engine, RULES, SITES, clock.now())
    engine.dispose()  # the worker goes away mid-hold; its successor opens the same database
    fresh = make_engine(db_url)
    try:
        ticker = StateTicker(fresh, load_state_rules(), SITES, clock)
        clock.advance(timedelta(minutes=4, seconds=59))
        assert tick(fresh, ticker.rules, SITES, clock.now()).opened == []  # one second early
        clock.advance(timedelta(seconds=1))
        [opened] = tick(fresh, ticker.rules, SITES, clock.now()).opened
        assert [tick(fresh, ticker.rules, SITES, clock.now() + timedelta(seconds=s)).opened for s in (1, 2)] == [[], []]
        with Session(fresh) as session:
            wo = session.get(WorkOrder, opened)
            assert wo is not None
            assert (wo.device, wo.fault, wo.sla_profile, wo.detected_at) == ("e1", "comm_lost", "comm_lost", lost_at)
            # The comm_lost profile's clocks start after its 10-minute hold: on site within 2 h of that.
            assert wo.due_at == lost_at + timedelta(minutes=10, hours=2)
    finally:
        fresh.dispose()


def test_state_is_persisted_and_a_redelivered_event_changes_nothing(engine: Engine) -> None:
    clock = FakeClock(T0)
    lost = event(clock, EventType.STATUS, "m1", "41", status_point="power_source", status_value="backup")
    apply(engine, clock, lost)
    assert apply_state_event(engine, lost, RULES, SITES, clock.now()).duplicate
    assert holds(engine) == [("m1", "elevator.power.backup")]


def test_main_power_lost_gives_one_work_order_per_elevator_not_per_repeat(engine: Engine) -> None:
    clock = FakeClock(T0)
    for _ in range(3):
        apply(
            engine,
            clock,
            event(clock, EventType.STATUS, "m1", "41", status_point="power_source", status_value="backup"),
        )
        clock.advance(timedelta(seconds=10))
    clock.advance(timedelta(minutes=1))
    tick(engine, RULES, SITES, clock.now())
    assert orders(engine) == [("m1", "elevator", "main_power_lost", 1)]


def test_main_power_lost_on_a_whole_building_is_one_grouped_work_order(engine: Engine) -> None:
    clock = FakeClock(T0)
    for device in ("m1", "p1", "k1"):
        apply(
            engine,
            clock,
            event(clock, EventType.STATUS, device, "41", status_point="power_source", status_value="backup"),
        )
        clock.advance(timedelta(seconds=5))
    clock.advance(timedelta(minutes=1))
    result = tick(engine, RULES, SITES, clock.now())
    assert result.holds_fired == 3
    assert orders(engine) == [("b1", "building", "group/main_power_lost", 3)]
    with Session(engine) as session:
        assert sorted(m.device for m in session.execute(select(WorkOrderMember)).scalars()) == ["k1", "m1", "p1"]


def test_a_peak_elevator_already_out_at_the_window_start_gets_a_work_order(engine: Engine) -> None:
    # Berlin, winter: 06:00 local is 05:00 UTC.
    clock = FakeClock(datetime(2026, 1, 15, 4, 0, tzinfo=UTC))
    tick(engine, RULES, SITES, clock.now())  # the first tick sets the watermark
    apply(
        engine,
        clock,
        event(clock, EventType.STATUS, "p1", "43", status_point="service_mode", status_value="inspection"),
    )
    assert orders(engine) == []  # 05:00 local: no peak yet
    clock.advance(timedelta(minutes=59, seconds=59))
    assert tick(engine, RULES, SITES, clock.now()).opened == []
    clock.advance(timedelta(seconds=1))
    assert len(tick(engine, RULES, SITES, clock.now()).opened) == 1
    clock.advance(timedelta(seconds=1))
    assert tick(engine, RULES, SITES, clock.now()).opened == []
    assert orders(engine) == [("p1", "elevator", "peak_not_in_service", 1)]


def test_main_out_with_the_backup_out_opens_backup_needed(engine: Engine) -> None:
    clock = FakeClock(T0)
    apply(
        engine,
        clock,
        event(clock, EventType.STATUS, "k1", "42", status_point="service_mode", status_value="out_of_service"),
    )
    apply(engine, clock, event(clock, EventType.FAULT_RAISED, "m1", "2"))
    assert orders(engine) == [("m1", "elevator", "backup_needed", 1)]
