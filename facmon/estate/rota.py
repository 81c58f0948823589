"""The site file's on-call section: who answers for each discipline, and who stands behind them.

```yaml
supervisor: zhao-lei                     # a technician id, or a contact: {name, phone, email}
manager: {name: Chen Jing, phone: "+86 138 0000 0009"}
on_call:
  elevator: {technicians: [li-ming, wang-fang], every: 1w, handoff: "08:30", start: 2026-01-05}
  overrides:
    - {discipline: elevator, technician: wang-fang, from: "2026-02-16 08:30", to: "2026-02-18 08:30"}
```

A rota hands over on the site's wall clock: at `handoff` on `start`, and every `every` (whole days) after it, the
next technician in the list takes over, so a handoff stays at 08:30 local across a DST change. Overrides (holidays,
swaps) are local times too and win over the rota. The models here check what they can see on their own; the site
checks that every id names one of its technicians, qualified for the discipline (`check_on_call`), and that no two
overrides for a discipline overlap (`overlapping`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, time, timedelta
from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NaiveDatetime,
    Tag,
    ValidationInfo,
    model_validator,
)

from facmon.kernel.datafile import Problem, checks_deferred, raise_problems
from facmon.kernel.model import Discipline, Identifier
from facmon.kernel.yaml_lines import Loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{2,31}$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Contact(_Strict):
    """Someone to call who is not (necessarily) one of the site's technicians, e.g. the property manager."""

    name: str = Field(min_length=1, max_length=128)
    phone: Phone
    email: Email | None = None


def _contact_kind(value: Any) -> str:
    return "technician" if isinstance(value, str) else "contact"


# A supervisor or manager: a technician's id, or a contact entry.
ContactRef = Annotated[
    Annotated[Identifier, Tag("technician")] | Annotated[Contact, Tag("contact")], Discriminator(_contact_kind)
]

_PERIOD = re.compile(r"^([1-9][0-9]{0,2})([dw])$")
_NAMED_PERIODS = {"daily": 1, "weekly": 7}


def _period(value: object) -> object:
    # Whole days only: a handoff is a time of day on the site's wall clock, so a rota moves in days, not hours.
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        if value in _NAMED_PERIODS:
            return timedelta(days=_NAMED_PERIODS[value])
        match = _PERIOD.match(value)
        if match:
            return timedelta(days=int(match[1]) * (7 if match[2] == "w" else 1))
    raise ValueError(f"{value!r} is not a rotation period like daily, weekly, 2d or 1w")


def _clock_time(value: object) -> object:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{2}:[0-9]{2}", value):
        hours, minutes = int(value[:2]), int(value[3:])
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    # YAML 1.1 reads an unquoted 08:30 as a number of minutes (sexagesimal): make the author quote it.
    raise ValueError(f'{value!r} is not a time of day like "08:30" (quote it)')


Period = Annotated[timedelta, BeforeValidator(_period)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


class Rotation(_Strict):
    """One discipline's rota: `technicians` take turns, in order, each for `every`, from `handoff` on `start`."""

    technicians: list[Identifier] = Field(min_length=1)
    every: Period
    handoff: ClockTime
    start: date


class Override(_Strict):
    """A holiday or a swap: `technician` is on call for `discipline` from `from` to `to` (site-local times)."""

    discipline: Discipline
    technician: Identifier
    start: NaiveDatetime = Field(alias="from")
    end: NaiveDatetime = Field(alias="to")
    reason: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.start >= self.end:
            raise ValueError(f"from {self.start:%Y-%m-%d %H:%M} must be before to {self.end:%Y-%m-%d %H:%M}")
        return self


class OnCallPlan(_Strict):
    elevator: Rotation | None = None
    fire: Rotation | None = None
    security: Rotation | None = None
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_overlaps(self, info: ValidationInfo) -> OnCallPlan:
        if not checks_deferred(info):
            raise_problems(overlapping(self.located_overrides()))
        return self

    def located_rotations(self) -> list[tuple[Loc, Discipline, Rotation]]:
        """Each rota with its place in the plan."""
        return [((d.value,), d, r) for d in Discipline if (r := self.rotation(d)) is not None]

    def located_overrides(self) -> list[tuple[Loc, Override]]:
        return [(("overrides", i), override) for i, override in enumerate(self.overrides)]

    def rotation(self, discipline: Discipline) -> Rotation | None:
        rotation: Rotation | None = getattr(self, discipline.value)
        return rotation

    def overrides_for(self, discipline: Discipline) -> list[Override]:
        return sorted((o for o in self.overrides if o.discipline is discipline), key=lambda o: o.start)


def overlapping(overrides: Iterable[tuple[Loc, Override]]) -> list[Problem]:
    """Overrides at the same time for one discipline: who is on call would be left to the order of the file."""
    overrides, problems = list(overrides), list[Problem]()
    for discipline in Discipline:
        mine = sorted((pair for pair in overrides if pair[1].discipline is discipline), key=lambda p: p[1].start)
        for (_, earlier), (loc, later) in pairwise(mine):
            if later.start < earlier.end:
                problems.append(
                    (
                        loc,
                        f"overrides for {discipline.value} overlap: {earlier.technician} until "
                        f"{earlier.end:%Y-%m-%d %H:%M} and {later.technician} from {later.start:%Y-%m-%d %H:%M}",
                    )
                )
    return problems


def check_on_call(
    rotations: Iterable[tuple[Loc, Discipline, Rotation]],
    overrides: Iterable[tuple[Loc, Override]],
    disciplines_of: Mapping[str, Iterable[Discipline] | None],
) -> list[Problem]:
    """Where the rotas and overrides name a technician who is not in `disciplines_of` (id -> disciplines) or who
    is not qualified. An id that maps to None is an entry wrong itself and reported on its own: not checked here."""
    problems: list[Problem] = []

    def check(loc: Loc, technician: str, discipline: Discipline) -> None:
        if technician not in disciplines_of:
            problems.append((loc, f"{technician!r} is not one of the site's technicians"))
            return
        qualified = disciplines_of[technician]
        if qualified is not None and discipline not in set(qualified):
            problems.append((loc, f"technician {technician} does not have the {discipline.value} discipline"))

    for loc, discipline, rotation in rotations:
        for i, technician in enumerate(rotation.technicians):
            check((*loc, "technicians", i), technician, discipline)
    for loc, override in overrides:
        check((*loc, "technician"), override.technician, override.discipline)
    return problems
