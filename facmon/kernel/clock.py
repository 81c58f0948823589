"""The one place that reads the wall clock.

Rules, SLA clocks, escalation and schedules take a `Clock`; tests hand them a `FakeClock` and advance it
instead of sleeping. Everything is UTC and timezone-aware.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and timeouts)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class ScaledClock:
    """Time that starts at `start` and runs `speed` times faster than the wall clock.

    For end-to-end runs of rules that span minutes or hours (a 45 s entrapment threshold, a 3 min SLA clock, a
    peak window starting at 06:00 site time) through the real services, without waiting for them.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._start = utc(start)
        self._t0 = time.monotonic()
        self.speed = speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed


def utc(dt: datetime) -> datetime:
    """Refuse naive datetimes and normalise aware ones to UTC."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} (facmon stores UTC with a zone)")
    return dt.astimezone(UTC)
