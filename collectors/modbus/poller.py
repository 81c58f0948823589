"""Poll one Modbus device on a fixed schedule and turn what it says into Readings and Events.

Each poller is its own task, so a dead device never delays the schedule of another; pollers of units behind the
same host:port share one `ModbusLink` (one request in flight per connection). A poll reads the driver's coalesced
blocks in turn and emits one `Reading`; faults are reported on their edges, and a device that has not answered for
`comm_grace_s` is reported once as comm_lost, then once as comm_restored when it answers again.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import structlog

from collectors.modbus.driver import Block, ModbusDriver
from collectors.modbus.link import LinkError, ModbusLink, ModbusLinks, shared_links
from facmon.clock import Clock
from facmon.metrics import Counters
from facmon.model import DeviceRef, Emit, Event, EventType, Reading, Value
from facmon.site import ModbusAddress

log = structlog.get_logger(__name__)


class ModbusPoller:
    def __init__(
        self,
        ref: DeviceRef,
        driver: ModbusDriver,
        address: ModbusAddress,
        *,
        poll_interval_s: float,
        comm_grace_s: float,
        emit: Emit,
        clock: Clock,
        metrics: Counters,
        timeout_s: float = 1.0,
        backoff_max_s: float = 30.0,
        links: ModbusLinks | None = None,
    ) -> None:
        if poll_interval_s <= 0 or timeout_s <= 0:
            raise ValueError("poll_interval_s and timeout_s must be positive")
        self.ref = ref
        self.driver = driver
        self.address = address
        self.poll_interval_s = poll_interval_s
        self.comm_grace_s = comm_grace_s
        self._emit = emit
        self._clock = clock
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._backoff_max_s = backoff_max_s
        # None: the pool of the running event loop, so pollers of one gateway share it without being told.
        self._links = links
        self._log = log.bind(device=ref.device, address=f"{address.host}:{address.port}/{address.unit}")
        self._last_answer_s = clock.monotonic()
        self._comm_lost = False
        self._failing = False
        self._fault_code: int | None = None
        self._flags: dict[str, bool] = {}
        self._rejecting: dict[str, str] = {}

    async def run(self) -> None:
        """Poll until cancelled; device and network problems become events and metrics, never exceptions."""
        links = self._links if self._links is not None else shared_links()
        link = links.acquire(self.address.host, self.address.port, backoff_max_s=self._backoff_max_s)
        loop = asyncio.get_running_loop()
        # The grace runs from the start: a device that never answers is reported too.
        self._last_answer_s = self._clock.monotonic()
        try:
            next_at = loop.time()
            while True:
                await self.poll(link)
                # A fixed-rate schedule: slow polls do not push later ones back, and a poll that overran its slot
                # skips the missed slots instead of firing a burst to catch up.
                next_at += self.poll_interval_s
                late = loop.time() - next_at
                if late > 0:
                    skipped = math.ceil(late / self.poll_interval_s)
                    next_at += skipped * self.poll_interval_s
                    self._metrics.inc("modbus_polls_skipped", skipped, device=self.ref.device)
                await asyncio.sleep(next_at - loop.time())
        finally:
            links.release(link)

    async def poll(self, link: ModbusLink) -> None:
        """One poll: a Reading and the events it implies, or a failure counted against comm status."""
        self._metrics.inc("modbus_polls", device=self.ref.device)
        values: dict[str, Value] = {}
        try:
            for block in self.driver.blocks:
                registers = await link.read(
                    block.table, block.start, block.count, unit=self.address.unit, timeout_s=self._timeout_s
                )
                values.update(self._decode(block, registers))
        except LinkError as exc:
            # The remaining blocks are not tried: on a shared link they would only hold up the other units.
            self._metrics.inc("modbus_poll_failures", device=self.ref.device)
            await self._silent(str(exc))
            return
        ts = self._clock.now()
        await self._answered(ts)
        await self._emit(Reading(ref=self.ref, ts=ts, values=values))
        await self._fault_events(values, ts)

    def _decode(self, block: Block, registers: list[int]) -> dict[str, Value]:
        values, problems = self.driver.decode_block(block, registers)
        for point in block.points:
            if point.name in values:
                if self._rejecting.pop(point.name, None) is not None:
                    self._log.info("modbus value accepted again", point=point.name)
                continue
            reason = next((p for p in problems if p.startswith(f"{point.name} (")), "not decodable")
            self._metrics.inc("modbus_rejected_values", device=self.ref.device, point=point.name)
            # Counted every poll, logged when it starts or its reason changes: a stuck bad value must not flood.
            if self._rejecting.get(point.name) != reason:
                self._rejecting[point.name] = reason
                self._log.warning("modbus value rejected", point=point.name, reason=reason)
        return values

    async def _silent(self, reason: str) -> None:
        if not self._failing:
            self._failing = True
            self._log.warning("device not answering", reason=reason)
        silent_s = self._clock.monotonic() - self._last_answer_s
        if not self._comm_lost and silent_s >= self.comm_grace_s:
            self._comm_lost = True
            self._log.warning("device comm lost", silent_s=round(silent_s, 1))
            await self._emit(
                Event(
                    ref=self.ref,
                    ts=self._clock.now(),
                    type=EventType.COMM_LOST,
                    message=f"no answer for {silent_s:.1f} s: {reason}",
                )
            )

    async def _answered(self, ts: datetime) -> None:
        self._last_answer_s = self._clock.monotonic()
        if self._failing:
            self._failing = False
            self._log.info("device answering again")
        if self._comm_lost:
            self._comm_lost = False
            await self._emit(Event(ref=self.ref, ts=ts, type=EventType.COMM_RESTORED, message="answering again"))

    async def _fault_events(self, values: dict[str, Value], ts: datetime) -> None:
        faults = self.driver.faults
        if faults is None:
            return
        code = values.get(faults.code_point)
        # A code that failed its range check is absent: the last known code stands until a legal one is read.
        if isinstance(code, int) and not isinstance(code, bool) and code != self._fault_code:
            previous, self._fault_code = self._fault_code, code
            if previous:
                await self._fault(EventType.FAULT_CLEARED, str(previous), self.driver.fault_text(previous), ts)
            if code:
                await self._fault(EventType.FAULT_RAISED, str(code), self.driver.fault_text(code), ts)
        for point, message in faults.flags.items():
            flag = values.get(point)
            if isinstance(flag, bool) and flag != self._flags.get(point, False):
                self._flags[point] = flag
                await self._fault(EventType.FAULT_RAISED if flag else EventType.FAULT_CLEARED, point, message, ts)

    async def _fault(self, type_: EventType, code: str, message: str, ts: datetime) -> None:
        self._log.info("device fault", type=type_.value, code=code, message=message)
        await self._emit(Event(ref=self.ref, ts=ts, type=type_, code=code, message=message))
