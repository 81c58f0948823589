"""Time windows in a site's local time: `{days: [mon..fri], from: "06:00", to: "08:00"}`.

A window holds from `from` (included) to `to` (excluded) on each of its days, read on the site's wall clock: 06:00
in Berlin is 05:00 UTC in winter and 04:00 UTC in summer. Everything here is pure: the caller passes the time and
the zone. A window does not run past midnight; write two windows for a night shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(value: object) -> object:
    # "mon..fri" inside the list stands for the days from one to the other.
    if not isinstance(value, list):
        return value
    days: list[object] = []
    for item in value:
        if isinstance(item, str) and ".." in item:
            first, _, last = item.partition("..")
            if first not in DAYS or last not in DAYS or DAYS.index(first) > DAYS.index(last):
                raise ValueError(f"{item!r} is not a day range like mon..fri")
            days.extend(DAYS[DAYS.index(first) : DAYS.index(last) + 1])
        elif item in DAYS:
            days.append(item)
        else:
            raise ValueError(f"{item!r} is not a day ({', '.join(DAYS)})")
    return frozenset(days)


def _clock_time(value: object) -> object:
    if isinstance(value, str):
        try:
            hours, minutes = value.split(":")
            if len(hours) != 2 or len(minutes) != 2:
                raise ValueError
            return time(int(hours), int(minutes))
        except ValueError:
            raise ValueError(f"{value!r} is not a time like 06:00") from None
    # YAML 1.1 reads an unquoted 06:00 as a number of minutes (sexagesimal): make the author quote it.
    raise ValueError(f'{value!r} is not a time like "06:00" (quote it)')


Days = Annotated[frozenset[str], BeforeValidator(_days)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: Days = frozenset(DAYS)
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if not self.days:
            raise ValueError("a window needs at least one day")
        if self.start >= self.end:
            raise ValueError(f"from {self.start:%H:%M} must be before to {self.end:%H:%M} (no window past midnight)")
        return self

    def contains(self, local: datetime) -> bool:
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end

    def starts(self, day: date, tz: ZoneInfo) -> datetime | None:
        """When the window opens on local `day` (aware, in `tz`), or None if it is not one of its days."""
        if DAYS[day.weekday()] not in self.days:
            return None
        return datetime.combine(day, self.start, tzinfo=tz)


def in_windows(windows: Iterable[Window], now: datetime, tz: ZoneInfo) -> bool:
    """Whether `now` (aware, any zone) falls in one of `windows` on the site's wall clock; no windows: always."""
    windows = tuple(windows)
    if not windows:
        return True
    local = now.astimezone(tz)
    return any(window.contains(local) for window in windows)


def _days_between(after: datetime, until: datetime, tz: ZoneInfo) -> Iterator[date]:
    day = after.astimezone(tz).date()
    last = until.astimezone(tz).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def window_opened(windows: Iterable[Window], after: datetime, until: datetime, tz: ZoneInfo) -> bool:
    """Whether one of `windows` opened in (after, until] and is still open at `until`: the moment to check a
    condition that was already true when the window began."""
    for window in windows:
        for day in _days_between(after, until, tz):
            start = window.starts(day, tz)
            if start is not None and after < start <= until and window.contains(until.astimezone(tz)):
                return True
    return False
