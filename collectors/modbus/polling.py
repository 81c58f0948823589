"""The fixed-rate schedule on a shared link, and comm status, of the Modbus poller (`collectors.modbus.poller`).

The poller supplies one `poll(link)`; `poll_on_schedule` calls it on a fixed-rate schedule over the link of its
host:port (one request in flight per connection, reconnecting with backoff: see `ModbusLink`). `CommWatch` turns
answers and silences into comm events: comm_restored on the first answer since start (marked FIRST_CONTACT), so a
healthy device is known to be there; comm_lost once a device has been silent for `comm_grace_s`; comm_restored when
it answers again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from collectors.modbus.link import ModbusLink, ModbusLinks, shared_links
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import FIRST_CONTACT, DeviceRef, Emit, Event, EventType, ModbusAddress, Value

Poll = Callable[[ModbusLink], Awaitable[None]]

# How late polls start after their slot (`modbus_poll_lateness_seconds`, one histogram for all devices of a gateway):
# an event loop that cannot keep up shows here long before polls are skipped.
LATENESS = "modbus_poll_lateness_seconds"
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


async def poll_on_schedule(
    poll: Poll,
    address: ModbusAddress,
    *,
    interval_s: float,
    device: str,
    metrics: Counters,
    backoff_max_s: float,
    links: ModbusLinks | None = None,
    first_delay_s: float = 0.0,
) -> None:
    """Call `poll` every `interval_s`, the first time after `first_delay_s` (the start of the device's next slot,
    `collectors.modbus.slots`), until cancelled. `links` None: the pool of the running event loop, so the pollers
    of one gateway share it without being told."""
    pool = links if links is not None else shared_links()
    # Reconnecting is tried at least once per poll interval: a controller back on the line (after a power cut, a
    # stall, a cable pulled) is read again within two polls, not after a backoff of up to `backoff_max_s`. A poll
    # of a device that does not answer is one connection attempt per interval, which is the load the interval
    # already allows; the backoff still spaces attempts out for a device polled less often than it.
    link = pool.acquire(address.host, address.port, backoff_max_s=min(backoff_max_s, interval_s))
    loop = asyncio.get_running_loop()
    lateness = metrics.histogram(LATENESS, LATENESS_BUCKETS, "seconds a poll started after its slot")
    try:
        next_at = loop.time() + first_delay_s
        if first_delay_s > 0:
            await asyncio.sleep(first_delay_s)
        while True:
            lateness.observe(max(0.0, loop.time() - next_at))
            await poll(link)
            # A fixed-rate schedule: slow polls do not push later ones back, and a poll that overran its slot skips
            # the missed slots instead of firing a burst to catch up.
            next_at += interval_s
            late = loop.time() - next_at
            if late > 0:
                skipped = math.ceil(late / interval_s)
                next_at += skipped * interval_s
                metrics.inc("modbus_polls_skipped", skipped, device=device)
            await asyncio.sleep(next_at - loop.time())
    finally:
        pool.release(link)


class CommWatch:
    """Whether a device answers: comm_restored on its first answer since start, comm_lost once after `comm_grace_s`
    of silence, comm_restored once it answers again."""

    def __init__(
        self, ref: DeviceRef, *, comm_grace_s: float, emit: Emit, clock: Clock, log: FilteringBoundLogger
    ) -> None:
        self.ref = ref
        self.comm_grace_s = comm_grace_s
        self._emit = emit
        self._clock = clock
        self._log = log
        self._last_answer_s = clock.monotonic()
        self._failing = False
        # Whether the device has answered since start: its first answer is announced, lost before or not.
        self._answered_once = False
        self.lost = False

    def start(self) -> None:
        """The grace runs from now: a device that never answers is reported too. Its next answer is its first."""
        self._last_answer_s = self._clock.monotonic()
        self._answered_once = False

    async def silent(self, reason: str, kind: str = "no_answer") -> None:
        """A poll without an answer; `reason` says why, `kind` labels it (LinkError.kind), both in the comm_lost."""
        if not self._failing:
            self._failing = True
            self._log.warning("device not answering", reason=reason)
        silent_s = self._clock.monotonic() - self._last_answer_s
        if not self.lost and silent_s >= self.comm_grace_s:
            self.lost = True
            self._log.warning("device comm lost", silent_s=round(silent_s, 1))
            await self._emit(
                Event(
                    ref=self.ref,
                    ts=self._clock.now(),
                    type=EventType.COMM_LOST,
                    message=f"no answer for {silent_s:.1f} s: {reason}",
                    data={"reason": kind},
                )
            )

    async def answered(self, ts: datetime) -> None:
        self._last_answer_s = self._clock.monotonic()
        if self._failing:
            self._failing = False
            self._log.info("device answering again")
        first, self._answered_once = not self._answered_once, True
        if not (self.lost or first):
            return
        message = "answering again" if self.lost else "answering"
        self.lost = False
        if first:
            self._log.info("device answering for the first time since start")
        data: dict[str, Value] = {FIRST_CONTACT: True} if first else {}
        await self._emit(Event(ref=self.ref, ts=ts, type=EventType.COMM_RESTORED, message=message, data=data))


# A device is slow when its slowest answer of a poll takes over this share of its timeout, SLOW_POLLS polls in a
# row; it is no longer slow after SLOW_POLLS quick polls in a row (one quick or slow poll alone changes nothing).
SLOW_SHARE = 0.5
SLOW_POLLS = 3
COMM_SLOW = "comm_slow"


class SlowWatch:
    """Whether a device that answers answers in time: a status event `comm_slow` (data `active` true) once its
    answers have taken over `SLOW_SHARE` of its timeout `SLOW_POLLS` polls in a row, before it starts timing out
    and is lost; `active` false once it answers quickly again."""

    def __init__(
        self, ref: DeviceRef, *, timeout_s: float, emit: Emit, clock: Clock, log: FilteringBoundLogger
    ) -> None:
        self.ref = ref
        self.timeout_s = timeout_s
        self._emit = emit
        self._clock = clock
        self._log = log
        self.slow = False
        # Polls in a row on the other side of the threshold from `slow`.
        self._streak = 0

    async def answered(self, slowest_s: float) -> None:
        """One poll answered in full; `slowest_s`: its slowest request, from sending to the answer."""
        over = slowest_s > SLOW_SHARE * self.timeout_s
        self._streak = self._streak + 1 if over != self.slow else 0
        if self._streak < SLOW_POLLS:
            return
        self.slow, self._streak = over, 0
        if over:
            message = f"answers in {slowest_s:.2f} s, over {SLOW_SHARE:.0%} of its {self.timeout_s:g} s timeout"
            self._log.warning("device answering slowly", response_s=round(slowest_s, 3), timeout_s=self.timeout_s)
        else:
            message = f"answers in {slowest_s:.2f} s again"
            self._log.info("device answering in time again", response_s=round(slowest_s, 3))
        data: dict[str, Value] = {"active": over, "response_s": round(slowest_s, 3), "timeout_s": self.timeout_s}
        await self._emit(
            Event(ref=self.ref, ts=self._clock.now(), type=EventType.STATUS, code=COMM_SLOW, message=message, data=data)
        )
