"""The elevators' history as their collectors saw it: each car's planned controls (facmon.demo_history.elevator_plan)
carried out on the demo's simulator of it and polled by the real collector at every change, which makes the
events (faults raised and cleared, entrapments, status events 40-47) and the readings at those moments.

Between changes a car either runs in normal service (its readings vary: floor, door, load) or stands as the last
change left it (a fault, an entrapment, inspection); facmon.demo_history.readings writes those readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from facmon.demo_history.devices import PolledElevator
from facmon.demo_history.elevator_plan import (
    CarPlan,
    Control,
    elevators,
    plan_faults,
    plan_inspections,
    plan_power_losses,
    plan_visits,
)
from facmon.demo_history.model import CarCounters, CarHistory, CarState, HistoryPlan, TimedEvent
from facmon.demo_history.profile import Ids, stream
from facmon.demo_history.staff import Planning
from facmon.reports.availability import PEAK_WINDOWS
from simulators.elevator import ElevatorSimulator

# Trips a day by role (a residential tower of 18 floors); backups run only now and then.
TRIPS_PER_DAY = {"main": 320.0, "peak": 220.0, "backup": 60.0}


async def elevator_history(ctx: Planning) -> HistoryPlan:
    plan = HistoryPlan()
    cars = elevators(ctx)
    plan.events += plan_visits(ctx, cars)
    plan_inspections(ctx, cars)
    for incident in plan_power_losses(ctx, cars):
        plan.incidents[incident.key] = incident
    for car in cars:
        for incident, events in plan_faults(ctx, car):
            plan.add(incident, events)
    for car in cars:
        history, events = await _poll(ctx, car)
        plan.cars.append(history)
        plan.events += events
        if car.device.role == "peak":
            plan.window_checks += _window_checks(ctx, car)
    return plan


def _counters(ctx: Planning, car: CarPlan, sim: ElevatorSimulator) -> CarCounters:
    """Counters that end where the simulator starts; never below zero however short its counters are."""
    trips = int(sim.value("trips"))
    hours = float(sim.value("run_hours"))
    rng = stream(ctx.seed, "counters", car.device.id)
    days = max(1.0, (ctx.period.until - ctx.period.start) / timedelta(days=1))
    per_day = min(TRIPS_PER_DAY.get(car.device.role or "", 60.0) * rng.uniform(0.85, 1.15), 0.8 * trips / days)
    return CarCounters(
        trips_end=trips,
        run_hours_end=hours,
        door_cycles_end=int(sim.value("door_cycles")),
        trips_per_day=per_day,
        hours_per_trip=hours / max(1, trips),
        doors_per_trip=int(sim.value("door_cycles")) / max(1, trips),
        until=ctx.period.until,
        tz=ctx.period.tz,
    )


@dataclass
class _Condition:
    """What holds the car out of normal service now."""

    mode: str = "normal"
    fault: bool = False
    trapped: bool = False

    @property
    def running(self) -> bool:
        return self.mode == "normal" and not self.fault and not self.trapped


def _apply(sim: ElevatorSimulator, control: Control, condition: _Condition) -> None:
    match control.action:
        case "fault":
            sim.inject_fault(int(control.value or 0))
            condition.fault = True
        case "clear":
            sim.clear_fault()
            condition.fault = False
        case "trap":
            sim.set_value("floor", int(control.value or 1))
            sim.set_entrapment(True)
            condition.trapped = True
        case "release":
            sim.set_entrapment(False)
            condition.trapped = False
        case "mode":
            sim.set_mode(str(control.value))
            condition.mode = str(control.value)
        case "power":
            sim.set_power(backup=control.value == "backup")
        case "poll":
            pass
        case _:
            raise ValueError(f"unknown control {control.action!r}")


async def _poll(ctx: Planning, car: CarPlan) -> tuple[CarHistory, list[TimedEvent]]:
    """Carry out the car's controls in time order, polling after each moment's; the readings and events made."""
    start = ctx.period.start
    polled = PolledElevator(ctx.site, car.building, car.device, start, Ids(ctx.seed, "events", car.device.id))
    counters = _counters(ctx, car, polled.sim)
    history = CarHistory(car.device.id, car.device.model, car.device.role, counters)
    condition = _Condition()
    events: list[TimedEvent] = []
    controls = sorted([Control(start, "poll"), *car.controls], key=lambda c: c.at)
    for at, group in groupby(controls, key=lambda c: c.at):
        moment = list(group)
        for control in moment:
            _apply(polled.sim, control, condition)
        for name, value in counters.at(at).items():
            polled.sim.set_value(name, value)
        readings, made = await polled.poll_at(at)
        incident = next((c.incident for c in moment if c.incident is not None), None)
        events += [TimedEvent(event, incident) for event in made]
        history.readings += readings
        history.states.append(CarState(at, dict(readings[-1].values), condition.running))
    return history, events


def _window_checks(ctx: Planning, car: CarPlan) -> list[datetime]:
    """Peak windows that open while the car is out of normal service: the state rules' timer acts on them then."""
    out: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for control in sorted(car.controls, key=lambda c: c.at):
        if control.action != "mode":
            continue
        if control.value != "normal" and since is None:
            since = control.at
        elif control.value == "normal" and since is not None:
            out.append((since, control.at))
            since = None
    checks = []
    for day in ctx.period.days():
        for window in PEAK_WINDOWS:
            opens = window.starts(day, ctx.period.tz)
            if opens is not None and any(lo < opens < hi for lo, hi in out):
                checks.append(opens + timedelta(seconds=1))
    return checks
