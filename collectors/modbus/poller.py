"""Poll one Modbus device on a fixed schedule and turn what it says into Readings and Events.

Each poller is its own task, so a dead device never delays the schedule of another; pollers of units behind the
same host:port share one `ModbusLink` (one request in flight per connection). A poll reads the driver's coalesced
blocks in turn and emits one `Reading`; faults, status events and derived entrapment are reported on their edges
(`DeviceConditions`). Its first answer since start is reported as comm_restored (first contact), a device that
has not answered for `comm_grace_s` once as comm_lost, then once as comm_restored when it answers again. A value
the driver refuses is left out of the reading, counted, and parked as a dead letter with the block's words, once
per point and reason so a stuck bad value cannot flood.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from collectors.modbus.conditions import DeviceConditions
from collectors.modbus.driver import Block, ModbusDriver
from collectors.modbus.link import LinkError, ModbusLink, ModbusLinks
from collectors.modbus.polling import CommWatch, poll_on_schedule
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Emit, Event, ModbusAddress, Reading, Reject, Value

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
        reject: Reject | None = None,
    ) -> None:
        if poll_interval_s <= 0 or timeout_s <= 0:
            raise ValueError("poll_interval_s and timeout_s must be positive")
        self.ref = ref
        self.driver = driver
        self.address = address
        self.poll_interval_s = poll_interval_s
        self.comm_grace_s = comm_grace_s
        self._emit = emit
        self._reject = reject
        self._clock = clock
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._backoff_max_s = backoff_max_s
        # None: the pool of the running event loop, so pollers of one gateway share it without being told.
        self._links = links
        self._log = log.bind(device=ref.device, address=f"{address.host}:{address.port}/{address.unit}")
        self._comm = CommWatch(ref, comm_grace_s=comm_grace_s, emit=emit, clock=clock, log=self._log)
        self._conditions = DeviceConditions(driver)
        # Points whose value is being refused: the reason, and how many polls in a row.
        self._rejecting: dict[str, tuple[str, int]] = {}

    async def run(self) -> None:
        """Poll until cancelled; device and network problems become events and metrics, never exceptions."""
        self._comm.start()
        await poll_on_schedule(
            self.poll,
            self.address,
            interval_s=self.poll_interval_s,
            device=self.ref.device,
            metrics=self._metrics,
            backoff_max_s=self._backoff_max_s,
            links=self._links,
        )

    async def poll(self, link: ModbusLink) -> None:
        """One poll: a Reading and the events it implies, or a failure counted against comm status."""
        self._metrics.inc("modbus_polls", device=self.ref.device)
        read: list[tuple[Block, list[int]]] = []
        try:
            for block in self.driver.blocks:
                registers = await link.read(
                    block.table, block.start, block.count, unit=self.address.unit, timeout_s=self._timeout_s
                )
                read.append((block, registers))
        except LinkError as exc:
            # The remaining blocks are not tried: on a shared link they would only hold up the other units.
            self._metrics.inc("modbus_poll_failures", device=self.ref.device)
            await self._comm.silent(str(exc))
            return
        ts = self._clock.now()
        values: dict[str, Value] = {}
        letters: list[DeadLetter] = []
        for block, registers in read:
            values.update(self._decode(block, registers, ts, letters))
        await self._comm.answered(ts)
        await self._emit(Reading(ref=self.ref, ts=ts, values=values))
        for change in self._conditions.update(values, self._clock.monotonic()):
            self._log.info("device event", type=change.type.value, code=change.code, message=change.message)
            event = Event(
                ref=self.ref, ts=ts, type=change.type, code=change.code, message=change.message, data=change.data
            )
            await self._emit(event)
        if self._reject is not None:
            for letter in letters:
                await self._reject(letter)

    def _decode(self, block: Block, registers: list[int], ts: datetime, letters: list[DeadLetter]) -> dict[str, Value]:
        values, problems = self.driver.decode_block(block, registers)
        for point in block.points:
            if point.name in values:
                if (streak := self._rejecting.pop(point.name, None)) is not None:
                    self._log.info("modbus value accepted again", point=point.name, rejected_polls=streak[1])
                continue
            reason = next((p for p in problems if p.startswith(f"{point.name} (")), f"{point.name}: not decodable")
            self._metrics.inc("modbus_rejected_values", device=self.ref.device, point=point.name)
            # Counted every poll; logged and dead-lettered when it starts or its reason changes, so a stuck bad
            # value does not flood the log or the dead-letter topic.
            previous, count = self._rejecting.get(point.name, ("", 0))
            self._rejecting[point.name] = (reason, count + 1)
            if previous != reason:
                self._log.warning("modbus value rejected", point=point.name, reason=reason)
                words = " ".join(map(str, registers))
                letters.append(
                    DeadLetter(
                        site=self.ref.site,
                        ref=self.ref,
                        ts=ts,
                        source="modbus",
                        reason=reason,
                        payload=f"{block.table} {block.start}+{block.count}: {words}",
                    )
                )
        return values
