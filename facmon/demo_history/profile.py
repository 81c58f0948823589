"""How often things happen on the history's estate, and the seeded random streams that decide when.

Rates are per device and month unless named otherwise. They are chosen to look like a residential estate under a
maintenance contract: a few faults per elevator a month, more on the old cars; most reported elevator faults are
entrapments; fire points that fail now and then; cameras and barriers that fail less often.

Every random choice comes from a stream named after what it decides (`stream(seed, "elevator", "b1-e1")`), so adding
a device or changing one rate does not reshuffle everything else, and one seed always gives the same history.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class HistoryProfile:
    # Elevator faults per car and month: cars of at least `old_age_years` fail more.
    elevator_faults_old: float = 2.0
    elevator_faults_young: float = 0.8
    old_age_years: int = 10
    # Of the elevator faults: entrapments (most of what residents report), and the car alarm button pressed with
    # nobody trapped (cancelled as a false alarm after a call to the car).
    entrapment_share: float = 0.65
    alarm_button_share: float = 0.07
    # Main power lost for a building's cars, per building and year.
    power_losses_per_year: float = 1.0
    # Fire panel points in fault and points disabled (屏蔽), per site and month; the panels' own faults per panel
    # and year; fire alarms per site and month (mostly false: cooking smoke, steam, dust).
    fire_point_faults: float = 3.0
    fire_points_disabled: float = 0.8
    panel_faults_per_year: float = 1.5
    fire_alarms: float = 1.2
    confirmed_fire_share: float = 0.05
    # Cameras and barriers, per site and month: faults, and cameras silent for long enough to owe a visit.
    camera_faults: float = 2.5
    gate_faults: float = 1.2
    camera_outages: float = 0.3
    # Share of resolved repair work orders that get a follow-up call (回访), and who makes them and closes orders.
    follow_up_share: float = 0.35
    office_actor: str = "engineer"
    # Maintenance visits: one visit day per building every `visit_every_days`; misses seeded on purpose.
    visit_every_days: int = 14
    # Readings: every car in full at this interval; in its scheduled hours a reading at least every minute, which is
    # what the availability figure counts as covered (facmon.reports.availability: a reading holds for at most 60 s).
    full_reading_every: timedelta = timedelta(minutes=15)
    covered_reading_every: timedelta = timedelta(minutes=1)
    panel_reading_every: timedelta = timedelta(minutes=30)
    # The site's fire intact figure: the period's rate lets one hold for at most five minutes (docs/kpis.md).
    intact_every: timedelta = timedelta(minutes=5)
    # Every device is heard at least this often, except while the plan has it silent (docs/kpis.md counts a
    # work-order figure's coverage in 5-minute slots): cars and panels between their full readings by a reading of
    # the values the KPIs read, cameras and barriers by their heartbeats. Times are whole multiples of it since the
    # epoch, so a period that starts at a whole 5 minutes (a month start in any time zone in use: their offsets are
    # whole quarter hours) has one in every slot.
    heard_every: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.panel_reading_every % self.heard_every:
            raise ValueError("panel_reading_every must be a whole multiple of heard_every")


DEFAULT_PROFILE = HistoryProfile()


def stream(seed: int, *names: str) -> random.Random:
    """A random stream of its own for one purpose; string seeds are hashed by SHA-512, the same in every run."""
    return random.Random("/".join((str(seed), *names)))


class Ids:
    """Event ids as the collectors make them (32 hex digits), from a seeded stream."""

    def __init__(self, seed: int, *names: str) -> None:
        self._rng = stream(seed, "ids", *names)

    def next(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"


@dataclass(frozen=True)
class Period:
    start: datetime
    until: datetime
    tz: ZoneInfo
    # Nothing new starts this close to `until`: what began is finished when the live system takes over.
    quiet: timedelta = timedelta(days=2)

    @property
    def last_start(self) -> datetime:
        return self.until - self.quiet

    def days(self) -> Iterator[date]:
        """The site's local dates from the start's to the last start's."""
        day, last = self.start.astimezone(self.tz).date(), self.last_start.astimezone(self.tz).date()
        while day <= last:
            yield day
            day += timedelta(days=1)

    def at(self, day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
        """A wall-clock time of the site on `day` (minutes may run past 59), in UTC."""
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        return (midnight + timedelta(hours=hour, minutes=minute, seconds=second)).astimezone(UTC)

    def contains(self, at: datetime) -> bool:
        return self.start <= at <= self.last_start


# When an estate's lifts are used (and so fail, and trap people): hardly at night, busy in the morning and evening.
USAGE_BY_HOUR: Sequence[float] = (
    *(0.3, 0.2, 0.1, 0.1, 0.1, 0.3, 1.0, 2.2, 2.0, 1.2, 1.0, 1.1),
    *(1.4, 1.2, 1.0, 1.0, 1.3, 2.0, 2.4, 2.0, 1.7, 1.3, 0.9, 0.5),
)
# Working hours: planned work and most repairs of things that can wait.
WORKING_HOURS: Sequence[float] = (*(0.0,) * 8, *(1.0,) * 10, *(0.0,) * 6)
FLAT: Sequence[float] = (1.0,) * 24


def moment(rng: random.Random, period: Period, day: date, weights: Sequence[float]) -> datetime:
    """A time on the local `day` with the hour drawn by `weights`, to the second."""
    hour = rng.choices(range(24), weights=weights)[0]
    return period.at(day, hour, rng.randrange(60), rng.randrange(60))


def happens(rng: random.Random, per_month: float) -> bool:
    """Whether something at a rate of `per_month` happens on a given day."""
    return rng.random() < per_month / 30.44


def duration(rng: random.Random, median_min: float, sigma: float, low_min: float, high_min: float) -> timedelta:
    """A log-normal duration around `median_min` minutes, kept within [low_min, high_min], to the second."""
    minutes = min(high_min, max(low_min, median_min * math.exp(rng.gauss(0.0, sigma))))
    return timedelta(seconds=round(minutes * 60))


def between(rng: random.Random, low_min: float, high_min: float) -> timedelta:
    return timedelta(seconds=round(rng.uniform(low_min, high_min) * 60))


def overlaps(busy: Sequence[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> bool:
    return any(a < hi and lo < b for a, b in busy)
