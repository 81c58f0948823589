"""The one place that reads the wall clock, and the one that waits on it.

Rules, SLA clocks, escalation, schedules and periodic loops take a `Clock`; tests hand them a `FakeClock` and
advance it instead of sleeping. Everything is UTC and timezone-aware.

Waiting: `await clock.sleep(seconds)` and `await clock.sleep_until(monotonic_deadline)`, both in the clock's own
seconds. A periodic loop that must not drift (nor miss a move of a fake clock while it was busy) keeps its next
deadline: `next_at = clock.monotonic() + interval` before the work, `await clock.sleep_until(next_at)` after it.
A deadline already reached returns at once, after letting other tasks run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# Turns of the event loop `FakeClock.settle` always lets pass.
_SETTLE_TURNS = 5


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and timeouts)."""
        ...

    async def sleep_until(self, monotonic_deadline: float) -> None:
        """Return once `monotonic()` has reached `monotonic_deadline`."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (`sleep_until(monotonic() + seconds)`)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, monotonic_deadline: float) -> None:
        await asyncio.sleep(max(0.0, monotonic_deadline - time.monotonic()))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to.

    Tasks sleeping on it wait until `advance` moves time to their deadline or past it; one `advance` wakes every
    sleeper it passes, earliest deadline first, once (time jumps: a loop ticking every second wakes once for an
    `advance(60)`, and sees the new time). `advance` only makes the woken tasks ready to run; a test that wants
    them to have done their work awaits `settle()` (or calls `advance_and_settle`), which returns once every task
    that ever slept on this clock has finished or sleeps again until a deadline still ahead.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._mono = 0.0
        self._wakeups: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        # Every task that slept on this clock, and the deadline of those sleeping now.
        self._sleepers: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._asleep: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

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
        while self._wakeups and self._wakeups[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._wakeups)
            if not future.done():
                future.set_result(None)

    async def sleep_until(self, monotonic_deadline: float) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sleepers.add(task)
        if monotonic_deadline <= self._mono:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakeups, (monotonic_deadline, next(self._order), future))
        if task is not None:
            self._asleep[task] = monotonic_deadline
        try:
            await future
        finally:
            if task is not None:
                self._asleep.pop(task, None)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._mono + seconds)

    @property
    def sleeping(self) -> list[float]:
        """The deadlines of the tasks sleeping on this clock now, earliest first."""
        return sorted(self._asleep.values())

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Return once every other task that slept on this clock has ended or sleeps until after `monotonic()`.

        Only tasks that have slept on this clock at least once are known to it; a few turns of the event loop
        always pass first, so a task just created gets to its first sleep. Work a woken task hands to a thread or
        the network takes real time, so this waits in real time too, up to `timeout_s` (then TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        # A few turns of the loop first: tasks just created or just woken get to run up to their next wait.
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
        while not self._idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"tasks on the fake clock still busy after {timeout_s} s")
            # Threads and sockets need real time.
            await asyncio.sleep(0.002)

    async def advance_and_settle(self, delta: timedelta | float, timeout_s: float = 10.0) -> None:
        """`advance(delta)`, then `settle()`: the loops woken have done their work at the new time."""
        self.advance(delta)
        await self.settle(timeout_s)

    def _idle(self) -> bool:
        me = asyncio.current_task()
        for task in list(self._sleepers):
            if task is me or task.done():
                continue
            deadline = self._asleep.get(task)
            if deadline is None or deadline <= self._mono:
                return False
        return True


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

    async def sleep_until(self, monotonic_deadline: float) -> None:
        await asyncio.sleep(max(0.0, monotonic_deadline - self.monotonic()) / self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


def utc(dt: datetime) -> datetime:
    """Refuse naive datetimes and normalise aware ones to UTC."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} (facmon stores UTC with a zone)")
    return dt.astimezone(UTC)


# How far ahead of a receiver's clock a sender's stamp may be before the receiver takes it as now: clocks a little
# apart are normal, a gateway a day ahead is not, and its stamps must not outrank everything after them.
CLOCK_SKEW = timedelta(minutes=5)


def not_ahead(ts: datetime, now: datetime) -> datetime:
    """`ts`, or `now` when `ts` is more than CLOCK_SKEW ahead of it."""
    return now if ts > now + CLOCK_SKEW else ts
