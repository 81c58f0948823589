"""A Modbus unit whose registers a test sets word by word, served by a real pymodbus server on a free port, and a
poller that the test drives one poll at a time (no timers, a FakeClock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.link import ModbusLink
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.modbus.registers import Table
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Event, ModbusAddress, Reading
from simulators.endpoint import ModbusEndpoint


class FrameSource:
    """A `RegisterSource` with nothing behind it: the words are what the test last put there (0 until then)."""

    def __init__(self, driver: ModbusDriver, unit: int = 1) -> None:
        self.driver = driver
        self.unit = unit
        self.words: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
        # Every register the driver reads starts at 0, so a frame that gives only some of them is well defined.
        for block in driver.blocks:
            self.words[block.table].update(dict.fromkeys(range(block.start, block.start + block.count), 0))

    def set(self, table: Table, words: Mapping[int, int]) -> None:
        for address, word in words.items():
            if address not in self.words[table]:
                raise KeyError(f"{self.driver.model}: {table} {address} is not read by the collector")
            if not 0 <= word <= 0xFFFF:
                raise ValueError(f"{table} {address}: {word} is not a 16-bit word")
            self.words[table][address] = word

    def registers(self, table: Table) -> dict[int, int]:
        return self.words[table]

    def response_delay_s(self) -> float:
        return 0.0

    def attach(self, endpoint: ModbusEndpoint) -> None:
        pass


@dataclass
class Polled:
    """A poller under test and everything it has emitted and rejected so far."""

    poller: ModbusPoller
    link: ModbusLink
    source: FrameSource
    clock: FakeClock
    metrics: Counters
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)

    async def poll(self) -> None:
        await self.poller.poll(self.link)


@asynccontextmanager
async def polled_frames(driver: ModbusDriver, *, device: str = "d1") -> AsyncIterator[Polled]:
    """A FrameSource served on a free port and a poller for it (with dead letters), closed afterwards."""
    source = FrameSource(driver)
    port = free_port()
    endpoint = ModbusEndpoint("127.0.0.1", port, [source])
    await endpoint.start()
    link = ModbusLink("127.0.0.1", port)
    clock, metrics = FakeClock(), Counters()
    ref = DeviceRef(site="s", building="b", device=device, kind=driver.kind, model=driver.model)

    async def emit(message: Reading | Event) -> None:
        if isinstance(message, Reading):
            polled.readings.append(message)
        else:
            polled.events.append(message)

    async def reject(letter: DeadLetter) -> None:
        polled.letters.append(letter)

    poller = ModbusPoller(
        ref,
        ElevatorInterpreter(driver),
        ModbusAddress(host="127.0.0.1", port=port),
        PollTiming(1.0, 3.0),
        emit=emit,
        reject=reject,
        clock=clock,
        metrics=metrics,
    )
    polled = Polled(poller, link, source, clock, metrics)
    try:
        yield polled
    finally:
        link.close()
        await endpoint.stop()
