"""SLA profiles as data, the deadlines they give a work order, and how each deadline stands at a given moment.

A profile (`facmon/workorders/library/sla.yaml`) is a set of clocks, each waiting for a milestone of the work order
(acknowledged, on_site, resolved) within a time from detection. A rule names the profile its work orders get; the
deadlines are computed once, when the work order opens, and stored with it, so editing the file later does not move
the deadlines of work orders already open.

`compliance(clocks, now)` is pure: met, breached or pending, and the time left, from the stored clock and `now`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from facmon.kernel.datafile import DataFileError, read_entries, validated_entries
from facmon.workorders.tables import Milestone

DEFAULT_SLA_FILE = Path(__file__).parent / "library" / "sla.yaml"

# The longest a clock may run from its start, and the longest its start may wait after detection: together the
# longest a deadline can fall after its work order's detection (facmon.reports.kpi_data looks that far back).
MAX_WITHIN = timedelta(days=60)
MAX_HOLD = timedelta(days=7)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|min|h|d)\s*$")
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    # Written with its unit ("3min", "4h"): a bare number in a file that mixes minutes and hours is a trap.
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 90s, 3min, 4h or 2d")
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"{value!r} is not a duration like 90s, 3min, 4h or 2d (give the unit)")


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClockDef(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    milestone: Milestone
    within: Duration

    @model_validator(mode="after")
    def _positive(self) -> ClockDef:
        if not timedelta(0) < self.within <= MAX_WITHIN:
            raise ValueError(f"within must be more than 0 and at most {MAX_WITHIN.days} days, not {self.within}")
        return self


class SlaProfile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    # The clocks start this long after detection: a condition (comm lost) must last this long before anyone is owed
    # a visit. A hold-time rule that opens the work order only then keeps the same deadlines.
    hold: Duration = timedelta(0)
    # The clock whose deadline is the work order's `due_at` (the main on-site deadline); by default the first
    # on_site clock.
    main: str | None = None
    clocks: tuple[ClockDef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SlaProfile:
        names = [clock.name for clock in self.clocks]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"clock names used twice: {repeated}")
        if self.main is not None and self.main not in names:
            raise ValueError(f"main clock {self.main!r} is not one of the clocks {names}")
        if self.main is None and not any(c.milestone is Milestone.ON_SITE for c in self.clocks):
            raise ValueError("no on_site clock, so name the clock that sets due_at with `main`")
        if self.hold < timedelta(0) or self.hold > MAX_HOLD:
            raise ValueError(f"hold must be between 0 and {MAX_HOLD.days} days")
        return self

    @property
    def main_clock(self) -> str:
        if self.main is not None:
            return self.main
        return next(c.name for c in self.clocks if c.milestone is Milestone.ON_SITE)

    def deadlines(self, detected_at: datetime) -> tuple[ClockDeadline, ...]:
        start = detected_at + self.hold
        return tuple(ClockDeadline(c.name, c.milestone, start + c.within) for c in self.clocks)


@dataclass(frozen=True)
class ClockDeadline:
    name: str
    milestone: Milestone
    due_at: datetime


class SlaFileError(DataFileError):
    """Profiles that cannot be used; `problems` lists each one as 'file: profile <id>: what is wrong'."""


def load_sla_profiles(path: str | Path = DEFAULT_SLA_FILE) -> dict[str, SlaProfile]:
    """Profiles by id; raises SlaFileError listing every problem of the file."""
    path = Path(path)
    _, entries, problems = read_entries(path, "profiles")
    if problems:
        raise SlaFileError(problems)
    profiles: dict[str, SlaProfile] = {}
    for label, profile in validated_entries(path, "profile", entries, SlaProfile):
        if isinstance(profile, list):
            problems.extend(profile)
            continue
        if profile.id in profiles:
            problems.append(f"{path}: {label}: id used twice")
        profiles[profile.id] = profile
    if problems:
        raise SlaFileError(problems)
    return profiles


# --- compliance: how a stored clock stands at `now` ------------------------------------------------------------------


class ClockState(StrEnum):
    MET = "met"
    BREACHED = "breached"
    PENDING = "pending"
    # The work order was cancelled (a false alarm) before the deadline: nobody owed anything, nothing to count.
    CANCELLED = "cancelled"


class StoredClock(Protocol):
    """What compliance needs of a clock (facmon.workorders.tables.WorkOrderClock has it)."""

    @property
    def name(self) -> str: ...
    @property
    def milestone(self) -> str: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def met_at(self) -> datetime | None: ...
    @property
    def cancelled_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ClockCompliance:
    name: str
    milestone: Milestone
    state: ClockState
    due_at: datetime
    met_at: datetime | None
    # Pending: seconds until the deadline. Breached: seconds past it (until met, or until now). Else None.
    time_left_s: float | None
    overdue_s: float | None


def clock_compliance(clock: StoredClock, now: datetime) -> ClockCompliance:
    """How one clock stands at `now`. The deadline itself still counts as in time ("within 20 min")."""
    due, met, cancelled = clock.due_at, clock.met_at, clock.cancelled_at
    left: float | None = None
    overdue: float | None = None
    if met is not None:
        state = ClockState.MET if met <= due else ClockState.BREACHED
        overdue = (met - due).total_seconds() if state is ClockState.BREACHED else None
    elif cancelled is not None and cancelled <= due:
        state = ClockState.CANCELLED
    elif cancelled is not None:
        # Cancelled only after the deadline had passed: the breach happened and stays.
        state, overdue = ClockState.BREACHED, (cancelled - due).total_seconds()
    elif now > due:
        state, overdue = ClockState.BREACHED, (now - due).total_seconds()
    else:
        state, left = ClockState.PENDING, (due - now).total_seconds()
    return ClockCompliance(clock.name, Milestone(clock.milestone), state, due, met, left, overdue)


def compliance(clocks: Iterable[StoredClock], now: datetime) -> tuple[ClockCompliance, ...]:
    return tuple(clock_compliance(clock, now) for clock in clocks)


# Worst first: one breached clock makes the work order breached, one pending clock keeps it pending.
_SEVERITY: Mapping[ClockState, int] = {
    ClockState.BREACHED: 0,
    ClockState.PENDING: 1,
    ClockState.MET: 2,
    ClockState.CANCELLED: 3,
}


def overall(states: Iterable[ClockCompliance]) -> ClockState | None:
    """The work order's SLA in one word; None when it has no clocks (opened before SLA profiles)."""
    worst = min((c.state for c in states), key=_SEVERITY.__getitem__, default=None)
    return worst
