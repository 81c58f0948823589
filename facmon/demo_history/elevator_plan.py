"""What happens to the elevators over the history, decided up front: maintenance visits on the 15-day cycle (with
the seeded misses), main power lost in a building, and each car's faults, entrapments and alarm-button calls with
what the technicians did about them.

The result is, per car, a list of controls for the demo's simulator of it (inject a fault, trap a passenger, switch
to inspection, ...) at given moments; facmon.demo_history.elevators polls the simulator at those moments with the
real collector, which makes the events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from facmon.demo_history.model import Incident, TimedEvent
from facmon.demo_history.profile import (
    FLAT,
    USAGE_BY_HOUR,
    between,
    duration,
    happens,
    moment,
    overlaps,
    stream,
)
from facmon.demo_history.staff import Planning, elevator_arrival, office, pick
from facmon.estate.entries import Building, Device
from facmon.kernel.model import DeviceKind, Discipline
from facmon.reports.common import completed_years

# The collector's entrapment detector needs the car stopped outside the door zone this long (elev drivers: 45 s).
DETECT_AFTER = timedelta(seconds=46)
# GB/T 24476 fault codes and how often each turns up among the faults that are neither entrapments nor the alarm.
FAULT_CODES = {"2": 30, "3": 18, "4": 10, "1": 10, "13": 8, "7": 6, "8": 5, "6": 4, "12": 2, "11": 2, "9": 2, "10": 2}
ALARM_BUTTON = 15
REPAIRS = {
    "1": "safety circuit open at a landing door contact; contact replaced, car tested",
    "2": "door operator belt adjusted and landing door contacts cleaned",
    "3": "door knife and landing door rollers adjusted",
    "4": "levelling sensor cleaned, car re-levelled at every floor",
    "6": "motor run-time limiter tripped: brake checked and released, car tested",
    "7": "position encoder re-taught on a learning run",
    "8": "lock-out cleared after the brake and ropes were checked",
    "9": "top limit switch adjusted",
    "10": "bottom limit switch adjusted",
    "11": "overspeed governor checked and reset, car tested",
    "12": "door contact bridge found and removed, car tested",
    "13": "run timeout: brake released late, brake adjusted",
}
RESCUES = (
    "passengers released at the nearest floor; car checked and returned to service",
    "passenger released after a manual brake release; door lock adjusted",
    "passengers released; power supply to the controller reset and checked",
)


@dataclass(frozen=True)
class Control:
    """Something done to a car's simulator at `at`, then polled: fault, clear, trap, release, mode, power, poll."""

    at: datetime
    action: str
    value: str | int | None = None
    incident: str | None = None


@dataclass
class CarPlan:
    building: Building
    device: Device
    controls: list[Control] = field(default_factory=list)
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def has_flag(self) -> bool:
        """Whether the controller flags entrapments itself (elev-gb-a); else the collector's detector sees them."""
        return self.device.model == "elev-gb-a"


def elevators(ctx: Planning) -> list[CarPlan]:
    return [
        CarPlan(building, device)
        for building in ctx.site.buildings
        for device in building.devices
        if device.kind == DeviceKind.ELEVATOR
    ]


def is_old(ctx: Planning, device: Device) -> bool:
    installed = device.installed_on
    as_of = ctx.period.until.astimezone(ctx.period.tz).date()
    return installed is not None and completed_years(installed, as_of) >= ctx.profile.old_age_years


# --- maintenance visits ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Misses:
    """The seeded misses: one old car skips a cycle's visit, another car is visited three days late once."""

    skipped: tuple[str, int] | None
    delayed: tuple[str, int] | None


def choose_misses(ctx: Planning, cars: list[CarPlan]) -> Misses:
    rng = stream(ctx.seed, "visit-misses")
    cycles = (ctx.period.until - ctx.period.start).days // ctx.profile.visit_every_days
    if cycles < 4 or len(cars) < 2:
        return Misses(None, None)
    old = [c.device.id for c in cars if is_old(ctx, c.device)] or [c.device.id for c in cars]
    skipped = rng.choice(old)
    delayed = rng.choice([c.device.id for c in cars if c.device.id != skipped])
    return Misses(
        (skipped, rng.randint(cycles // 3, 2 * cycles // 3)), (delayed, rng.randint(cycles // 3, cycles // 2))
    )


def plan_visits(ctx: Planning, cars: list[CarPlan]) -> list[TimedEvent]:
    """Visit days per building on the cycle, each car of the building in turn; the technicians' card reads."""
    misses = choose_misses(ctx, cars)
    events: list[TimedEvent] = []
    for building in ctx.site.buildings:
        ours = [c for c in cars if c.building.id == building.id]
        if ours:
            events += _building_visits(ctx, building, ours, misses)
    return events


def _weekday(day: date, *, back: bool = False) -> date:
    """The day itself when it is a weekday; else the Monday after (or the Friday before)."""
    if day.weekday() < 5:
        return day
    return day - timedelta(days=day.weekday() - 4) if back else day + timedelta(days=7 - day.weekday())


def _visit_days(ctx: Planning, rng: random.Random) -> list[date]:
    """A visit day every `visit_every_days` (whole weeks keep the weekday), counted back from a weekday of the last
    week: the last visit is recent when the live system takes over, the first comes within a cycle of the start."""
    first = ctx.period.start.astimezone(ctx.period.tz).date() + timedelta(days=1)
    day = _weekday(ctx.period.until.astimezone(ctx.period.tz).date() - timedelta(days=rng.randint(1, 6)), back=True)
    days = []
    while day >= first:
        days.append(day)
        day -= timedelta(days=ctx.profile.visit_every_days)
    return days[::-1]


def _building_visits(ctx: Planning, building: Building, cars: list[CarPlan], misses: Misses) -> list[TimedEvent]:
    rng = stream(ctx.seed, "visits", building.id)
    technicians = ctx.crew.qualified(Discipline.ELEVATOR)
    events: list[TimedEvent] = []
    for cycle, day in enumerate(_visit_days(ctx, rng)):
        technician = rng.choice(technicians).id if technicians else None
        start = ctx.period.at(day, 9, rng.randint(0, 75))
        today = [c for c in cars if (c.device.id, cycle) not in (misses.skipped, misses.delayed)]
        late = [c for c in cars if (c.device.id, cycle) == misses.delayed]
        events += _visit(ctx, rng, building, technician, today, start)
        if late:
            late_start = ctx.period.at(_weekday(day + timedelta(days=3)), 10, rng.randint(0, 50))
            events += _visit(ctx, rng, building, technician, late, late_start)
    return events


def _visit(
    ctx: Planning,
    rng: random.Random,
    building: Building,
    technician_id: str | None,
    cars: list[CarPlan],
    start: datetime,
) -> list[TimedEvent]:
    """One technician's visit to `cars`, one after the other, in inspection mode; their card read before."""
    technician = ctx.site.technician(technician_id) if technician_id else None
    events: list[TimedEvent] = []
    gate = ctx.crew.gate(building.id, rng)
    if gate is not None and technician is not None and technician.cards:
        read = ctx.crew.card_read(gate, technician, start - between(rng, 5, 25), ctx.ids)
        events.append(TimedEvent(read))
    at = start
    for car in cars:
        ends = at + between(rng, 40, 80)
        car.controls += [Control(at, "mode", "inspection"), Control(ends, "mode", "normal")]
        car.busy.append((at - timedelta(hours=2), ends + timedelta(hours=2)))
        at = ends + between(rng, 5, 15)
    return events


# --- periodic inspections ------------------------------------------------------------------------------------------


def plan_inspections(ctx: Planning, cars: list[CarPlan]) -> None:
    """The statutory periodic inspection on the date the site file gives as the last one, when it falls in the
    period: the car out of service for the inspector's tests in the afternoon (on the next weekday when a visit
    takes the afternoon)."""
    for car in cars:
        inspection = car.device.inspection
        if inspection is None:
            continue
        day = inspection.last
        for _ in range(7):
            begins = ctx.period.at(day, 13, 30)
            ends = begins + timedelta(hours=2, minutes=30)
            if not overlaps(car.busy, begins, ends):
                break
            day = _weekday(day + timedelta(days=1))
        if not ctx.period.contains(begins) or ends > ctx.horizon():
            continue
        car.controls += [Control(begins, "mode", "out_of_service"), Control(ends, "mode", "normal")]
        car.busy.append((begins - timedelta(hours=2), ends + timedelta(hours=2)))


# --- main power lost -------------------------------------------------------------------------------------------------


def plan_power_losses(ctx: Planning, cars: list[CarPlan]) -> list[Incident]:
    incidents: list[Incident] = []
    for building in ctx.site.buildings:
        ours = [c for c in cars if c.building.id == building.id]
        rng = stream(ctx.seed, "power", building.id)
        for day in ctx.period.days():
            if not ours or not happens(rng, ctx.profile.power_losses_per_year / 12):
                continue
            lost = moment(rng, ctx.period, day, FLAT)
            back = lost + between(rng, 4, 25)
            if not ctx.period.contains(lost) or any(overlaps(c.busy, lost, back) for c in ours):
                continue
            incidents.append(_power_loss(ctx, rng, building, ours, lost, back))
    return incidents


def _power_loss(
    ctx: Planning, rng: random.Random, building: Building, cars: list[CarPlan], lost: datetime, back: datetime
) -> Incident:
    key = f"power/{building.id}/{lost:%Y%m%dT%H%M}"
    responder = ctx.crew.responder(DeviceKind.ELEVATOR, lost, rng)
    arrive = lost + between(rng, 12, 30)
    resolve = max(back + between(rng, 5, 20), arrive + timedelta(minutes=5))
    for car in cars:
        car.controls += [Control(lost, "power", "backup", key), Control(back, "power", "main", key)]
        car.busy.append((lost - timedelta(hours=1), resolve + timedelta(hours=1)))
    close_at, _ = office(rng, resolve, ctx.period, ctx.profile)
    return Incident(
        key=key,
        device=cars[0].device.id,
        responder=responder.id if responder else ctx.profile.office_actor,
        ack_at=lost + timedelta(minutes=1) + duration(rng, 4, 0.5, 1, 12),
        arrive_at=arrive,
        resolve_at=resolve,
        resolve_note="grid supply restored; cars checked on main power",
        close_at=close_at,
    )


# --- faults and entrapments ------------------------------------------------------------------------------------------


def plan_faults(ctx: Planning, car: CarPlan) -> list[tuple[Incident, list[TimedEvent]]]:
    """The car's faults over the period, each with what was done about it."""
    rng = stream(ctx.seed, "faults", car.device.id)
    rate = ctx.profile.elevator_faults_old if is_old(ctx, car.device) else ctx.profile.elevator_faults_young
    planned = []
    for number, day in enumerate(ctx.period.days()):
        if not happens(rng, rate):
            continue
        at = moment(rng, ctx.period, day, USAGE_BY_HOUR)
        key = f"elevator/{car.device.id}/{number}"
        roll = rng.random()
        if roll < ctx.profile.alarm_button_share:
            made = _alarm_button(ctx, rng, car, key, at)
        elif roll < ctx.profile.alarm_button_share + ctx.profile.entrapment_share:
            made = _entrapment(ctx, rng, car, key, at)
        else:
            made = _fault(ctx, rng, car, key, at, pick(rng, FAULT_CODES))
        incident, controls, events = made
        ends = incident.resolve_at or incident.cancel_at or at
        if not ctx.period.contains(at) or ends > ctx.horizon() or overlaps(car.busy, at - timedelta(hours=1), ends):
            continue
        car.controls += controls
        car.busy.append((at - timedelta(hours=1), ends + timedelta(hours=1)))
        planned.append((incident, events))
    return planned


Made = tuple[Incident, list[Control], list[TimedEvent]]


def _arrival(
    ctx: Planning, rng: random.Random, car: CarPlan, key: str, detected: datetime
) -> tuple[Incident, list[TimedEvent]]:
    """Who comes and when: acknowledged in minutes, on site mostly within 20, by card read at a gate or by word."""
    technician = ctx.crew.responder(DeviceKind.ELEVATOR, detected, rng)
    arrive = detected + elevator_arrival(rng)
    events: list[TimedEvent] = []
    by_card = technician is not None and ctx.crew.by_card(technician, rng)
    gate = ctx.crew.gate(car.building.id, rng) if by_card else None
    if technician is not None and gate is not None:
        events.append(TimedEvent(ctx.crew.card_read(gate, technician, arrive, ctx.ids), key))
    responder = technician.id if technician else ctx.profile.office_actor
    incident = Incident(
        key=key, device=car.device.id, responder=responder, arrive_at=arrive, arrive_by_card=bool(events)
    )
    return incident, events


def _finish(
    ctx: Planning, rng: random.Random, incident: Incident, ack: datetime, resolve: datetime, note: str
) -> Incident:
    close_at, follow_up = office(rng, resolve, ctx.period, ctx.profile)
    assert incident.arrive_at is not None
    return Incident(
        key=incident.key,
        device=incident.device,
        responder=incident.responder,
        # An arrival proves the acknowledgement too; one that comes first makes the separate step moot.
        ack_at=ack if ack < incident.arrive_at - timedelta(seconds=30) else None,
        arrive_at=incident.arrive_at,
        arrive_by_card=incident.arrive_by_card,
        resolve_at=resolve,
        resolve_note=note,
        close_at=close_at,
        follow_up=follow_up,
    )


def _entrapment(ctx: Planning, rng: random.Random, car: CarPlan, key: str, at: datetime) -> Made:
    detected = at if car.has_flag else at + DETECT_AFTER
    incident, events = _arrival(ctx, rng, car, key, detected)
    assert incident.arrive_at is not None
    rescue = incident.arrive_at + between(rng, 4, 15)
    # A few need parts or a second technician: back in service hours later, past the 4 h repair deadline.
    back = rescue + (between(rng, 250, 420) if rng.random() < 0.03 else duration(rng, 40, 0.6, 10, 180))
    controls = [
        Control(at, "trap", rng.randint(2, 17), key),
        Control(at, "mode", "out_of_service", key),
        Control(rescue, "release", None, key),
        Control(back, "mode", "normal", key),
    ]
    if not car.has_flag:
        controls.append(Control(detected, "poll", None, key))
    ack = detected + duration(rng, 1.5, 0.55, 0.4, 9)
    return _finish(ctx, rng, incident, ack, back + between(rng, 1, 4), rng.choice(RESCUES)), controls, events


def _fault(ctx: Planning, rng: random.Random, car: CarPlan, key: str, at: datetime, code: str) -> Made:
    incident, events = _arrival(ctx, rng, car, key, at)
    assert incident.arrive_at is not None
    # A few wait for parts and miss the 24 h repair deadline.
    fixed = between(rng, 1500, 2200) if rng.random() < 0.04 else duration(rng, 50, 0.8, 10, 600)
    clear = incident.arrive_at + fixed
    controls = [Control(at, "fault", int(code), key), Control(clear, "clear", None, key)]
    ack = at + duration(rng, 4, 0.6, 1, 15)
    return _finish(ctx, rng, incident, ack, clear + between(rng, 1, 5), REPAIRS[code]), controls, events


def _alarm_button(ctx: Planning, rng: random.Random, car: CarPlan, key: str, at: datetime) -> Made:
    """The car alarm button with nobody trapped: acknowledged, the car called, cancelled as a false alarm."""
    technician = ctx.crew.responder(DeviceKind.ELEVATOR, at, rng)
    ack = at + between(rng, 1, 3)
    incident = Incident(
        key=key,
        device=car.device.id,
        responder=technician.id if technician else ctx.profile.office_actor,
        ack_at=ack,
        cancel_at=ack + between(rng, 2, 6),
        cancel_note="false alarm: nobody in the car when called on the intercom",
    )
    controls = [Control(at, "fault", ALARM_BUTTON, key), Control(at + between(rng, 1, 3), "clear", None, key)]
    return incident, controls, []
