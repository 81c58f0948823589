"""Entrapment from the car's state, and as one condition with the controller's flag: pure logic, a FakeClock."""

from __future__ import annotations

import pytest

from collectors.modbus.conditions import DeviceConditions
from collectors.modbus.entrapment import EntrapmentDetector
from collectors.modbus.event_specs import EntrapmentSpec
from collectors.registry import modbus_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import EventType, Value

# A car stopped between floors with someone in it and the door shut.
STUCK: dict[str, Value] = {
    "service_mode": "normal",
    "passenger": True,
    "door": "closed",
    "door_zone": False,
    "moving": False,
}
LEVEL_OPEN: dict[str, Value] = {**STUCK, "door_zone": True, "door": "open"}


class Car:
    """A detector fed at the times a FakeClock says."""

    def __init__(self, spec: EntrapmentSpec | None = None) -> None:
        self.clock = FakeClock()
        self.detector = EntrapmentDetector(spec or EntrapmentSpec())

    def at(self, t_s: float, values: dict[str, Value]) -> bool:
        self.clock.advance(t_s - self.clock.monotonic())
        return self.detector.update(values, self.clock.monotonic())


def test_outside_the_door_zone_trapped_at_45_s_not_before() -> None:
    car = Car()
    assert not car.at(0, STUCK)
    assert not car.at(44.9, STUCK)
    assert car.at(45, STUCK)
    assert car.detector.reason == (
        "passenger trapped in the car: stopped outside the door zone with the door closed for 45 s"
    )


def test_level_at_a_landing_with_the_door_shut_takes_90_s() -> None:
    car = Car()
    level_closed = {**STUCK, "door_zone": True}
    assert not car.at(0, level_closed)
    assert not car.at(89.9, level_closed)
    assert car.at(90, level_closed)
    assert "level at a landing" in car.detector.reason


def test_thresholds_come_from_the_spec() -> None:
    car = Car(EntrapmentSpec(passenger_s=2, outside_zone_s=5, in_zone_s=7))
    assert not car.at(0, STUCK)
    assert not car.at(4.9, STUCK)
    assert car.at(5, STUCK)


def test_the_passenger_must_be_present_without_a_break() -> None:
    car = Car()
    empty = {**STUCK, "passenger": False}
    assert not car.at(0, empty)
    # Stopped long enough, but the passenger has only just been seen.
    assert not car.at(100, STUCK)
    assert not car.at(105, STUCK)
    # The sensor flickers: the 10 s start again.
    assert not car.at(106, empty)
    assert not car.at(107, STUCK)
    assert not car.at(116.9, STUCK)
    assert car.at(117, STUCK)


def test_a_car_that_moves_or_opens_restarts_the_stop_clock() -> None:
    car = Car()
    assert not car.at(0, STUCK)
    assert not car.at(40, {**STUCK, "moving": True})
    assert not car.at(41, STUCK)
    assert not car.at(85.9, STUCK)
    assert car.at(86, STUCK)


def test_moving_between_outside_and_level_restarts_the_clock_for_the_new_place() -> None:
    car = Car()
    assert not car.at(0, STUCK)
    # Re-levelled at 30 s: now the 90 s of a car level with its door shut apply, from then.
    level_closed = {**STUCK, "door_zone": True}
    assert not car.at(30, level_closed)
    assert not car.at(119.9, level_closed)
    assert car.at(120, level_closed)


@pytest.mark.parametrize(
    "values",
    [
        {**STUCK, "door_zone": True},  # levelled, door still shut
        {**STUCK, "door_zone": True, "door": "opening"},
        {**STUCK, "door": "open"},  # an open door outside the zone is not a rescue
        {**STUCK, "passenger": False},  # a quiet sensor in a shut car proves nothing
    ],
)
def test_only_level_with_the_door_open_clears_it(values: dict[str, Value]) -> None:
    car = Car()
    car.at(0, STUCK)
    assert car.at(45, STUCK)
    assert car.at(50, values)
    assert not car.at(51, LEVEL_OPEN)
    assert car.detector.reason == ""


def test_inspection_is_quiet_and_the_clock_starts_again_after_it() -> None:
    car = Car()
    inspection = {**STUCK, "service_mode": "inspection"}
    assert not car.at(0, inspection)
    assert not car.at(600, inspection)
    assert not car.at(601, STUCK)
    assert not car.at(645.9, STUCK)
    assert car.at(646, STUCK)


def test_a_refused_value_leaves_the_last_one_standing() -> None:
    car = Car()
    assert not car.at(0, STUCK)
    # The door value was refused in this poll (absent): the car is still taken as shut.
    assert not car.at(20, {k: v for k, v in STUCK.items() if k != "door"})
    assert car.at(45, {k: v for k, v in STUCK.items() if k != "door"})


def test_missing_state_never_traps() -> None:
    car = Car()
    assert not car.at(0, {"passenger": True})
    assert not car.at(1000, {"passenger": True})
    # Stopped with the door shut, but where is not known: no clock runs.
    unplaced = Car()
    assert not unplaced.at(0, {k: v for k, v in STUCK.items() if k != "door_zone"})
    assert not unplaced.at(1000, {k: v for k, v in STUCK.items() if k != "door_zone"})


# -- with the controller's flag: one condition ---------------------------------------------------------------------


def _entrapment_events(
    conditions: DeviceConditions, clock: FakeClock, t_s: float, values: dict[str, Value]
) -> list[tuple[EventType, str]]:
    clock.advance(t_s - clock.monotonic())
    return [(c.type, c.code) for c in conditions.update(values, clock.monotonic()) if c.code == "entrapment"]


RAISED = (EventType.FAULT_RAISED, "entrapment")
CLEARED = (EventType.FAULT_CLEARED, "entrapment")


def test_flag_first_then_detector_is_one_raise_and_one_clear() -> None:
    conditions, clock = DeviceConditions(modbus_driver("elev-gb-a")), FakeClock()
    assert _entrapment_events(conditions, clock, 0, {**STUCK, "entrapment": True}) == [RAISED]
    assert conditions.active["entrapment"] == "passenger trapped in the car"
    assert _entrapment_events(conditions, clock, 50, {**STUCK, "entrapment": True}) == []
    assert conditions.detector is not None
    assert conditions.detector.trapped
    # The controller lets go of its flag while the door is still shut: the condition stands.
    assert _entrapment_events(conditions, clock, 60, {**STUCK, "entrapment": False}) == []
    assert _entrapment_events(conditions, clock, 70, {**LEVEL_OPEN, "entrapment": False}) == [CLEARED]
    assert conditions.active == {}


def test_detector_first_then_flag_is_one_raise_cleared_when_both_let_go() -> None:
    conditions, clock = DeviceConditions(modbus_driver("elev-gb-a")), FakeClock()
    assert _entrapment_events(conditions, clock, 0, {**STUCK, "entrapment": False}) == []
    assert _entrapment_events(conditions, clock, 45, {**STUCK, "entrapment": False}) == [RAISED]
    assert _entrapment_events(conditions, clock, 46, {**STUCK, "entrapment": True}) == []
    # The rescue opens the door, but the controller still flags it: not cleared until it lets go.
    assert _entrapment_events(conditions, clock, 60, {**LEVEL_OPEN, "entrapment": True}) == []
    assert _entrapment_events(conditions, clock, 61, {**LEVEL_OPEN, "entrapment": False}) == [CLEARED]


def test_a_model_without_a_flag_reports_the_same_code() -> None:
    conditions, clock = DeviceConditions(modbus_driver("elev-st-b")), FakeClock()
    assert _entrapment_events(conditions, clock, 0, STUCK) == []
    assert _entrapment_events(conditions, clock, 45, STUCK) == [RAISED]
    assert _entrapment_events(conditions, clock, 46, LEVEL_OPEN) == [CLEARED]


def test_a_model_without_status_events_reports_faults_only() -> None:
    driver = modbus_driver("elev-st-b").model_copy(update={"status_events": None})
    conditions = DeviceConditions(driver)
    changes = conditions.update({**STUCK, "service_mode": "inspection"}, 0.0)
    assert [c for c in changes if c.type is EventType.STATUS] == []
