"""The people of the history: who takes a work order, how fast they answer and arrive, how they prove it, and
what the office does afterwards (closing, the follow-up call).

The responder is whoever the site file's rota has on call for the discipline at that moment (facmon.estate.on_call), or,
before the rota begins, one of the qualified technicians. Arrivals are mostly proved by the technician's card read
at a gate (rules.arrival), the rest are the technician's own word through the API.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from collectors.mqtt.codec import interpret
from collectors.registry import mqtt_driver
from facmon.demo_history.model import FollowUpPlan
from facmon.demo_history.profile import HistoryProfile, Ids, Period, between
from facmon.estate.entries import DISCIPLINE_OF_KIND, Device, Technician
from facmon.estate.on_call import on_call
from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind, Discipline, Event, EventType
from facmon.workorders.tables import FollowUpOutcome

# Share of arrivals proved by a card read at a gate; the rest are reported through the API.
CARD_READ_SHARE = 0.75
# Elevator arrivals: most within the 20-minute deadline, some late; the mean comes to about 16 minutes.
LATE_ARRIVAL_SHARE = 0.12
OFFICE_WORDS = {
    FollowUpOutcome.SATISFIED: ("resident satisfied", "works fine since the repair", "thanked the technician"),
    FollowUpOutcome.UNREACHABLE: ("no answer, two calls", "phone switched off"),
    FollowUpOutcome.DISSATISFIED: ("resident says it took too long", "fault came back once, asked for a check"),
}
OUTCOME_WEIGHTS = {
    FollowUpOutcome.SATISFIED: 0.85,
    FollowUpOutcome.UNREACHABLE: 0.11,
    FollowUpOutcome.DISSATISFIED: 0.04,
}


class Crew:
    """The site's technicians and gates, as the history needs them."""

    def __init__(self, site: Site, seed: int) -> None:
        self.site = site
        self.seed = seed
        self.gates: dict[str, list[Device]] = {
            building.id: [d for d in building.devices if d.kind == DeviceKind.GATE] for building in site.buildings
        }
        self.all_gates = [gate for gates in self.gates.values() for gate in gates]

    def qualified(self, discipline: Discipline) -> list[Technician]:
        return [t for t in self.site.technicians if discipline in t.disciplines]

    def responder(self, kind: DeviceKind, at: datetime, rng: random.Random) -> Technician | None:
        """Who is on call for a work order on a device of `kind` at `at`."""
        discipline = DISCIPLINE_OF_KIND[kind]
        found = on_call(self.site, discipline, at)
        if found is not None:
            return found.technician
        qualified = self.qualified(discipline)
        return rng.choice(qualified) if qualified else None

    def gate(self, building: str, rng: random.Random) -> Device | None:
        """A gate a technician comes in by: one of the building's, else any of the site's."""
        gates = self.gates.get(building) or self.all_gates
        return rng.choice(gates) if gates else None

    def card_read(self, gate: Device, technician: Technician, at: datetime, ids: Ids) -> Event:
        """The event the barrier's collector makes of a granted read of the technician's card."""
        driver = mqtt_driver(gate.model)
        message = next(
            name
            for name, spec in driver.messages.items()
            if spec.event is not None and spec.event.type == EventType.CARD_READ
        )
        meaning = interpret(driver, message, {"card": technician.cards[0], "granted": True, "direction": "in"})
        assert meaning.event is not None
        type_, code, text, data = meaning.event
        return Event(ref=self.site.ref(gate.id), ts=at, type=type_, code=code, message=text, data=data, id=ids.next())

    def by_card(self, technician: Technician, rng: random.Random) -> bool:
        return bool(technician.cards) and bool(self.all_gates) and rng.random() < CARD_READ_SHARE


def elevator_arrival(rng: random.Random) -> timedelta:
    """Minutes from the fault to the technician on site: 7-20 mostly, 21-34 for the late ones."""
    if rng.random() < LATE_ARRIVAL_SHARE:
        return between(rng, 21.0, 34.0)
    return timedelta(seconds=round(rng.triangular(7.0, 20.0, 17.0) * 60))


def office(
    rng: random.Random, resolved_at: datetime, period: Period, profile: HistoryProfile
) -> tuple[datetime | None, FollowUpPlan | None]:
    """When the office closes a resolved work order, and the follow-up call it makes (on some of them)."""
    horizon = period.until - timedelta(hours=1)
    close_at: datetime | None = resolved_at + between(rng, 10 * 60, 72 * 60)
    if close_at is not None and close_at > horizon:
        close_at = None
    follow_up = None
    if rng.random() < profile.follow_up_share:
        visited_at = resolved_at + between(rng, 20 * 60, 120 * 60)
        if visited_at < horizon:
            outcome = rng.choices(list(OUTCOME_WEIGHTS), weights=list(OUTCOME_WEIGHTS.values()))[0]
            follow_up = FollowUpPlan(visited_at, outcome, rng.choice(OFFICE_WORDS[outcome]))
    return close_at, follow_up


def pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class Planning:
    """What every planner needs: the site, the period, the seed and rates, the crew, and ids for the events the
    planners make themselves (card reads, comm events)."""

    def __init__(self, site: Site, period: Period, seed: int, profile: HistoryProfile) -> None:
        self.site = site
        self.period = period
        self.seed = seed
        self.profile = profile
        self.crew = Crew(site, seed)
        self.ids = Ids(seed, "planned")

    def horizon(self) -> datetime:
        """Everything planned is over by then: the live system takes over at `until`."""
        return self.period.until - timedelta(hours=1)
