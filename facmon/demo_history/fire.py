"""The fire systems' history: points in fault or disabled (屏蔽) until repaired, the panels' own faults, fire alarms
(mostly false, each given its outcome by the control room), and the monthly single-item checks (GB 25201) with the
seeded misses.

Each panel is the demo's simulator of it (the same 2 x 128 addresses and point types), polled by the real collector
at every change, which makes the panel and point readings and the events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from facmon.demo_history.devices import PolledPanel
from facmon.demo_history.model import AlarmOutcome, CheckPlan, HistoryPlan, Incident, PanelHistory, TimedEvent
from facmon.demo_history.profile import (
    FLAT,
    USAGE_BY_HOUR,
    WORKING_HOURS,
    Ids,
    between,
    duration,
    happens,
    moment,
    stream,
)
from facmon.demo_history.staff import Planning, office
from facmon.estate.entries import Building, Device
from facmon.kernel.model import DeviceKind, Discipline, Event, EventType
from rules.tables import FireAlarmOutcome, FireCheckResult
from simulators.steps import PointState

# What a panel point goes through: the state it is put in, and the note its repair gets.
POINT_REPAIRS = {
    "fault": ("detector head replaced and tested", "loop wiring at the base re-terminated", "module replaced"),
    "disabled": ("disabled after repeated false alarms; cleaned, tested and enabled again",),
}
PANEL_FAULTS = {"battery_fault": "standby batteries replaced", "main_power_fault": "mains supply fuse replaced"}
FALSE_ALARMS = ("cooking smoke", "steam from a bathroom", "dust from renovation work", "insect in the detector")
ALARM_TYPES = ("smoke_detector", "heat_detector", "manual_call_point")
CHECK_ITEMS = (
    "smoke detector function test",
    "manual call point test",
    "sounder and strobe test",
    "fire pump start-up test",
    "smoke exhaust fan start-up test",
    "water-flow indicator and alarm valve test",
    "hydrant button test",
    "emergency power changeover test",
)
# Days between checks: inside the 30-day period, except the missed one.
CHECK_EVERY = (26, 29)


@dataclass(frozen=True)
class Verdict:
    at: datetime
    outcome: FireAlarmOutcome
    actor: str
    note: str


class _Panel:
    def __init__(self, ctx: Planning, building: Building, device: Device) -> None:
        self.building = building
        self.device = device
        self.polled = PolledPanel(ctx.site, building, device, ctx.period.start, Ids(ctx.seed, "events", device.id))
        # (at, point or panel condition, new state, incident): applied to the simulator and polled in time order.
        self.changes: list[tuple[datetime, str, str, str | None]] = []
        self.busy: dict[str, list[tuple[datetime, datetime]]] = {}
        # Fire alarms planned, by (point, raised at): the verdict, given to the alarm its event raises.
        self.verdicts: dict[tuple[str, datetime], Verdict] = {}

    def free(self, point: str, lo: datetime, hi: datetime) -> bool:
        return all(b <= lo or hi <= a for a, b in self.busy.get(point, []))

    def hold(self, point: str, lo: datetime, hi: datetime) -> None:
        self.busy.setdefault(point, []).append((lo - timedelta(hours=1), hi + timedelta(hours=1)))


async def fire_history(ctx: Planning) -> HistoryPlan:
    plan = HistoryPlan()
    panels = [_Panel(ctx, b, d) for b in ctx.site.buildings for d in b.devices if d.kind == DeviceKind.FIRE_PANEL]
    if not panels:
        return plan
    rng = stream(ctx.seed, "fire")
    for number, day in enumerate(ctx.period.days()):
        if happens(rng, ctx.profile.fire_point_faults):
            _point_incident(ctx, rng, plan, rng.choice(panels), "fault", moment(rng, ctx.period, day, FLAT), number)
        if happens(rng, ctx.profile.fire_points_disabled):
            at = moment(rng, ctx.period, day, WORKING_HOURS)
            _point_incident(ctx, rng, plan, rng.choice(panels), "disabled", at, number)
        if happens(rng, ctx.profile.panel_faults_per_year * len(panels) / 12):
            _panel_fault(ctx, rng, plan, rng.choice(panels), moment(rng, ctx.period, day, FLAT), number)
        if happens(rng, ctx.profile.fire_alarms):
            _fire_alarm(ctx, rng, plan, rng.choice(panels), moment(rng, ctx.period, day, USAGE_BY_HOUR))
    plan.checks += plan_checks(ctx, [p.device.id for p in panels])
    for panel in panels:
        await _poll(ctx, plan, panel)
    return plan


def _responder(ctx: Planning, rng: random.Random, at: datetime) -> str:
    technician = ctx.crew.responder(DeviceKind.FIRE_PANEL, at, rng)
    return technician.id if technician else ctx.profile.office_actor


def _visit(
    ctx: Planning, rng: random.Random, panel: _Panel, key: str, at: datetime, within_h: float
) -> tuple[Incident, list[TimedEvent]]:
    """The fire technician on call acknowledges, comes (mostly in time for `within_h` hours) and is let in."""
    responder = _responder(ctx, rng, at)
    if rng.random() < 0.05:  # a few late: the deadline is `within_h` hours
        arrive = at + between(rng, within_h * 60 + 10, within_h * 75)
    else:
        arrive = at + duration(rng, within_h * 20, 0.5, 15, within_h * 55)
    events = []
    technician = ctx.site.technician(responder) if responder != ctx.profile.office_actor else None
    gate = ctx.crew.gate(panel.building.id, rng) if technician and ctx.crew.by_card(technician, rng) else None
    if technician is not None and gate is not None:
        events.append(TimedEvent(ctx.crew.card_read(gate, technician, arrive, ctx.ids), key))
    ack = at + duration(rng, 12, 0.6, 2, 60)
    incident = Incident(
        key=key,
        device=panel.device.id,
        responder=responder,
        ack_at=ack if ack < arrive - timedelta(minutes=1) else None,
        arrive_at=arrive,
        arrive_by_card=bool(events),
    )
    return incident, events


def _done(ctx: Planning, rng: random.Random, incident: Incident, resolve: datetime, note: str) -> Incident:
    close_at, follow_up = office(rng, resolve, ctx.period, ctx.profile)
    return replace(incident, resolve_at=resolve, resolve_note=note, close_at=close_at, follow_up=follow_up)


def _point_incident(
    ctx: Planning, rng: random.Random, plan: HistoryPlan, panel: _Panel, state: str, at: datetime, number: int
) -> None:
    point = rng.choice(panel.polled.sim.points())
    key = f"fire/{panel.device.id}/{state}/{number}"
    incident, events = _visit(ctx, rng, panel, key, at, within_h=4)
    assert incident.arrive_at is not None
    # The repair deadline is 24 h; a few wait for a part past it.
    fixed = incident.arrive_at + (between(rng, 1500, 1900) if rng.random() < 0.05 else duration(rng, 60, 0.9, 10, 900))
    if not ctx.period.contains(at) or fixed > ctx.horizon() or not panel.free(point, at, fixed):
        return
    panel.hold(point, at, fixed)
    panel.changes += [(at, point, state, key), (fixed, point, "normal", key)]
    plan.add(_done(ctx, rng, incident, fixed + between(rng, 2, 10), rng.choice(POINT_REPAIRS[state])), events)


def _panel_fault(
    ctx: Planning, rng: random.Random, plan: HistoryPlan, panel: _Panel, at: datetime, number: int
) -> None:
    condition = rng.choice(list(PANEL_FAULTS))
    key = f"fire/{panel.device.id}/{condition}/{number}"
    incident, events = _visit(ctx, rng, panel, key, at, within_h=2)
    assert incident.arrive_at is not None
    fixed = incident.arrive_at + duration(rng, 90, 0.6, 20, 600)
    if not ctx.period.contains(at) or fixed > ctx.horizon() or not panel.free(condition, at, fixed):
        return
    panel.hold(condition, at, fixed)
    panel.changes += [(at, condition, "on", key), (fixed, condition, "off", key)]
    plan.add(_done(ctx, rng, incident, fixed + between(rng, 2, 10), PANEL_FAULTS[condition]), events)


def _fire_alarm(ctx: Planning, rng: random.Random, plan: HistoryPlan, panel: _Panel, at: datetime) -> None:
    """A detector or call point in fire alarm, reset at the panel minutes later; the control room's verdict."""
    points = [p for kind in ALARM_TYPES for p in panel.polled.sim.points(kind)]
    point = rng.choice(points)
    reset = at + between(rng, 3, 12)
    if not ctx.period.contains(at) or not panel.free(point, at, reset):
        return
    panel.hold(point, at, reset)
    panel.changes += [(at, point, "fire", None), (reset, point, "normal", None)]
    if rng.random() < ctx.profile.confirmed_fire_share:
        outcome, note = FireAlarmOutcome.CONFIRMED, "burnt pan on a stove, put out by the resident; no damage"
    else:
        outcome, note = FireAlarmOutcome.FALSE_ALARM, rng.choice(FALSE_ALARMS)
    # The raising event's id is known once the panel is polled; the verdict is matched to it then.
    panel.verdicts[(point, at)] = Verdict(reset + between(rng, 2, 15), outcome, _responder(ctx, rng, at), note)


def plan_checks(ctx: Planning, panels: list[str]) -> list[CheckPlan]:
    """A check of every panel about every four weeks, counted back from the last days of the period (so the last is
    recent when the live system takes over); one month missed on up to two panels, the check then done late."""
    rng = stream(ctx.seed, "fire-checks")
    checks: list[CheckPlan] = []
    missed = set(rng.sample(panels, min(2, len(panels))))
    technicians = [t.id for t in ctx.crew.qualified(Discipline.FIRE)] or [ctx.profile.office_actor]
    first = ctx.period.start.astimezone(ctx.period.tz).date() + timedelta(days=1)
    for panel in panels:
        # The check this many before the last follows a missed month: it comes 8 to 11 days after it was overdue.
        late_at = rng.randint(3, 8) if panel in missed else -1
        day = ctx.period.until.astimezone(ctx.period.tz).date() - timedelta(days=rng.randint(3, 12))
        planned: list[tuple[date, bool]] = []
        while day >= first:
            late = len(planned) == late_at
            planned.append((day, late))
            day -= timedelta(days=30 + rng.randint(8, 11) if late else rng.randint(*CHECK_EVERY))
        for number, (day, late) in enumerate(reversed(planned)):
            at = ctx.period.at(day, 9, rng.randint(0, 480))
            failed = rng.random() < 0.05
            result = FireCheckResult.FAILED if failed else FireCheckResult.PASSED
            note = "one sounder silent; replacement ordered" if failed else None
            item = CHECK_ITEMS[number % len(CHECK_ITEMS)]
            checks.append(CheckPlan(panel, item, at, rng.choice(technicians), result, note, late))
    return checks


async def _poll(ctx: Planning, plan: HistoryPlan, panel: _Panel) -> None:
    """Apply the panel's changes in time order and poll after each moment's."""
    history = PanelHistory(panel.device.id)
    sim = panel.polled.sim
    changes = sorted([(ctx.period.start, "", "poll", None), *panel.changes], key=lambda c: c[0])
    index = 0
    while index < len(changes):
        at = changes[index][0]
        incident = None
        while index < len(changes) and changes[index][0] == at:
            _, what, state, key = changes[index]
            incident = incident or key
            if state in ("on", "off"):
                sim.set_panel(what, state == "on")
            elif state != "poll":
                new: PointState = state  # type: ignore[assignment]
                sim.set_point(what, new)
            index += 1
        readings, events = await panel.polled.poll_at(at)
        history.readings += readings
        for event in events:
            plan.events.append(TimedEvent(event, incident))
            verdict = _verdict(panel, event)
            if verdict is not None:
                plan.outcomes.append(AlarmOutcome(event.id, verdict.at, verdict.outcome, verdict.actor, verdict.note))
    plan.panels.append(history)


def _verdict(panel: _Panel, event: Event) -> Verdict | None:
    if event.code != "fire" or event.type is not EventType.FAULT_RAISED or event.point is None:
        return None
    return panel.verdicts.get((event.point, event.ts))
