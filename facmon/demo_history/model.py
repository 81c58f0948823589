"""What a history plan holds: the devices' events in time order, and what people did about them and when.

The plan is decided up front from the seed (facmon.demo_history.elevators, .fire, .security), without a database;
the replay (facmon.demo_history.replay) then carries it out through the rules worker's own functions, on a clock
that moves from one planned moment to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from facmon.demo_history.profile import USAGE_BY_HOUR
from facmon.kernel.model import Event, Reading, Value
from facmon.workorders.tables import FollowUpOutcome
from rules.tables import FireAlarmOutcome, FireCheckResult

# The rules worker handles an event this long after the device saw it.
LATENCY = timedelta(seconds=1)


@dataclass(frozen=True)
class TimedEvent:
    """An event as a collector emits it; `incident` names the incident whose work orders it may open."""

    event: Event
    incident: str | None = None


@dataclass(frozen=True)
class FollowUpPlan:
    visited_at: datetime
    outcome: FollowUpOutcome
    note: str | None


@dataclass(frozen=True)
class Incident:
    """What the people on the estate did about one fault: who took it, and when each step happened.

    The steps apply to every work order the incident's events open (a fault's own, and any a state rule opens
    because of it, such as a peak car out of service in a peak window). `arrive_by_card`: the arrival is proved by
    the responder's card read at a gate (a planned event), else the responder says so through the API.
    """

    key: str
    device: str
    responder: str
    ack_at: datetime | None = None
    arrive_at: datetime | None = None
    arrive_by_card: bool = False
    resolve_at: datetime | None = None
    resolve_note: str | None = None
    cancel_at: datetime | None = None
    cancel_note: str | None = None
    close_at: datetime | None = None
    follow_up: FollowUpPlan | None = None


@dataclass(frozen=True)
class CheckPlan:
    """A GB 25201 single-item check of a fire panel; `late` settles the panel's overdue work order."""

    panel: str
    item: str
    at: datetime
    actor: str
    result: FireCheckResult
    note: str | None = None
    late: bool = False


@dataclass(frozen=True)
class AlarmOutcome:
    """The control room's verdict on a fire alarm (raised by the event `event_id`)."""

    event_id: str
    at: datetime
    outcome: FireAlarmOutcome
    actor: str
    note: str


@dataclass(frozen=True)
class CarState:
    """A car's values from one moment on (the collector's reading then), and whether it runs in normal service."""

    at: datetime
    values: dict[str, Value]
    running: bool


def _usage_clock() -> list[float]:
    total = sum(USAGE_BY_HOUR)
    cumulative = [0.0]
    for weight in USAGE_BY_HOUR:
        cumulative.append(cumulative[-1] + weight / total)
    return cumulative


_USAGE_CLOCK = _usage_clock()


@dataclass(frozen=True)
class CarCounters:
    """A car's trip, run-time and door counters over the history: rising with the estate's daily rhythm, and
    ending at the values the demo's simulator starts with, so the live readings carry on from the history's."""

    trips_end: int
    run_hours_end: float
    door_cycles_end: int
    trips_per_day: float
    hours_per_trip: float
    doors_per_trip: float
    until: datetime
    tz: ZoneInfo

    def _usage(self, at: datetime) -> float:
        """Days of use up to `at`, a day of use being one day's weight of USAGE_BY_HOUR (monotonic)."""
        local = at.astimezone(self.tz)
        hour, into = local.hour, (local.minute * 60 + local.second) / 3600
        return local.toordinal() + _USAGE_CLOCK[hour] + (_USAGE_CLOCK[hour + 1] - _USAGE_CLOCK[hour]) * into

    @cached_property
    def _end(self) -> float:
        return self._usage(self.until)

    def at(self, at: datetime) -> dict[str, Value]:
        to_come = round((self._end - self._usage(at)) * self.trips_per_day)
        return {
            "trips": self.trips_end - to_come,
            "run_hours": self.run_hours_end - to_come * self.hours_per_trip,
            "door_cycles": self.door_cycles_end - round(to_come * self.doors_per_trip),
        }


@dataclass
class CarHistory:
    """One elevator: the readings its collector made at each change, its state from each change on, its counters."""

    device: str
    model: str
    role: str | None
    counters: CarCounters
    readings: list[Reading] = field(default_factory=list)
    states: list[CarState] = field(default_factory=list)


@dataclass
class PanelHistory:
    """One fire panel: its collector's readings at each change (panel and points)."""

    device: str
    readings: list[Reading] = field(default_factory=list)


@dataclass
class HistoryPlan:
    events: list[TimedEvent] = field(default_factory=list)
    incidents: dict[str, Incident] = field(default_factory=dict)
    checks: list[CheckPlan] = field(default_factory=list)
    outcomes: list[AlarmOutcome] = field(default_factory=list)
    cars: list[CarHistory] = field(default_factory=list)
    panels: list[PanelHistory] = field(default_factory=list)
    # Peak windows that open while a peak car is out of normal service: the state rules' timer looks then.
    window_checks: list[datetime] = field(default_factory=list)
    # Devices not heard from: (last heard, heard again) by device; nothing of theirs is written in between.
    silences: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def add(self, incident: Incident, events: list[TimedEvent]) -> None:
        self.incidents[incident.key] = incident
        self.events.extend(events)

    def extend(self, other: HistoryPlan) -> None:
        self.events.extend(other.events)
        self.incidents.update(other.incidents)
        self.checks.extend(other.checks)
        self.outcomes.extend(other.outcomes)
        self.cars.extend(other.cars)
        self.panels.extend(other.panels)
        self.window_checks.extend(other.window_checks)
        for device, silent in other.silences.items():
            self.silences.setdefault(device, []).extend(silent)
