"""Is each pushed device still talking? comm_lost once after `grace_s` of silence, comm_restored on its next word.

A polled device fails a request; a pushed one just goes quiet, so silence is all we can go by. Any message the
device sends counts as a sign of life, not only its heartbeat: a barrier busy with traffic is plainly alive. Its
first message since the collector started is announced too, as comm_restored marked FIRST_CONTACT, so a device that
talks from the start is known to be there without ever having been lost. The clock is injected and `run` waits
on it, so tests advance a FakeClock instead of waiting (or call the public `check`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import structlog

from facmon.kernel.clock import Clock
from facmon.kernel.model import FIRST_CONTACT, DeviceRef, Emit, Event, EventType, Value

log = structlog.get_logger(__name__)


@dataclass
class _Watch:
    ref: DeviceRef
    grace_s: float
    last_heard_s: float
    lost: bool = False
    # Heard since the collector started: its first message is announced, lost before or not.
    heard: bool = False


class HeartbeatWatchdog:
    def __init__(self, devices: Sequence[tuple[DeviceRef, float]], *, emit: Emit, clock: Clock) -> None:
        if any(grace_s <= 0 for _, grace_s in devices):
            raise ValueError("every grace period must be positive")
        self._emit = emit
        self._clock = clock
        now = clock.monotonic()
        self._watches = {ref.device: _Watch(ref, grace_s, now) for ref, grace_s in devices}
        # While another gateway of the site holds the vendor session, its devices' silence here says nothing.
        self.standing_by = False

    def restart(self) -> None:
        """Start every grace period afresh (a collector starting): a device that never speaks is reported too, and
        the next message of each device is its first."""
        now = self._clock.monotonic()
        for watch in self._watches.values():
            watch.last_heard_s = now
            watch.heard = False

    def stand_by(self) -> None:
        """Stop judging silence: this gateway no longer hears the devices (another one holds the session)."""
        self.standing_by = True

    def resume(self) -> None:
        """Judge silence again, every grace period from now; what is known of each device is kept."""
        now = self._clock.monotonic()
        for watch in self._watches.values():
            watch.last_heard_s = now
        self.standing_by = False

    def lost(self, device: str) -> bool:
        return self._watches[device].lost

    def heard_again(self, device: str) -> bool:
        """Note that `device`, heard before and not lost, sent something just now; False (nothing noted) when it
        is its first message or it was lost: then `heard` must be awaited, which announces it."""
        watch = self._watches[device]
        if watch.lost or not watch.heard:
            return False
        watch.last_heard_s = self._clock.monotonic()
        return True

    async def heard(self, device: str) -> None:
        """`device` sent something just now."""
        watch = self._watches[device]
        watch.last_heard_s = self._clock.monotonic()
        first, watch.heard = not watch.heard, True
        if not (watch.lost or first):
            return
        message = "talking again" if watch.lost else "talking"
        watch.lost = False
        log.info(f"device {message}", device=device, first_contact=first)
        data: dict[str, Value] = {FIRST_CONTACT: True} if first else {}
        event = Event(ref=watch.ref, ts=self._clock.now(), type=EventType.COMM_RESTORED, message=message, data=data)
        await self._emit(event)

    async def check(self) -> None:
        """Report every device silent for its grace period, once until it is heard again (not while standing by)."""
        if self.standing_by:
            return
        now = self._clock.monotonic()
        for watch in self._watches.values():
            silent_s = now - watch.last_heard_s
            if watch.lost or silent_s < watch.grace_s:
                continue
            watch.lost = True
            log.warning("device silent", device=watch.ref.device, silent_s=round(silent_s, 1))
            await self._emit(
                Event(
                    ref=watch.ref,
                    ts=self._clock.now(),
                    type=EventType.COMM_LOST,
                    message=f"no message for {silent_s:.1f} s (grace {watch.grace_s:g} s)",
                )
            )

    def tick_s(self) -> float:
        """How often `run` checks: often enough to report within a tenth of the shortest grace, at most 1 s."""
        shortest = min((w.grace_s for w in self._watches.values()), default=1.0)
        return min(1.0, max(0.01, shortest / 10))

    async def run(self) -> NoReturn:
        tick_s = self.tick_s()
        while True:
            await self._clock.sleep(tick_s)
            await self.check()
