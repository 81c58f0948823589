"""The site's Modbus devices as their collectors see them, for the history: the demo's own simulator of each device
(simulators.builders.BUILDERS, default seed, so counters and fire points are those the demo starts with), read by the
real poller (collectors.modbus) through a link that reads the simulator's registers in this process.

Polling only at the moments something changes keeps a year cheap; the poller's readings and events at those moments
are exactly what the collector would have made. Event ids come from a seeded stream, so a history is repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.fire_interpreter import FirePanelInterpreter
from collectors.modbus.interpreter import Interpreter
from collectors.modbus.link import ModbusLink
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.modbus.registers import Table
from collectors.registry import fire_panel_driver, modbus_driver
from facmon.demo_history.profile import Ids
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, Reading
from simulators.builders import BUILDERS, BuildContext
from simulators.elevator import ElevatorSimulator
from simulators.fire_panel import FirePanelSimulator

# The seed `facmon up` gives the simulators unless told otherwise.
DEMO_SIMULATOR_SEED = 0

S = TypeVar("S")
Registers = Callable[[Table], dict[int, int]]


class ImageLink(ModbusLink):
    """A Modbus link to a simulator in this process: reads its registers as they are now, no socket."""

    def __init__(self, registers: Registers) -> None:
        super().__init__("in-process", 0)
        self._registers = registers

    async def read(self, table: Table, start: int, count: int, *, unit: int, timeout_s: float) -> list[int]:
        words = self._registers(table)
        return [words.get(address, 0) for address in range(start, start + count)]


class Recorder:
    """What a poller emits, in order; events get ids from the seeded stream."""

    def __init__(self, ids: Ids) -> None:
        self._ids = ids
        self.readings: list[Reading] = []
        self.events: list[Event] = []

    async def __call__(self, message: Reading | Event) -> None:
        if isinstance(message, Event):
            self.events.append(message.model_copy(update={"id": self._ids.next()}))
        else:
            self.readings.append(message)

    def take(self) -> tuple[list[Reading], list[Event]]:
        readings, events = self.readings, self.events
        self.readings, self.events = [], []
        return readings, events


def simulator(site: Site, building: Building, device: Device, kind: type[S]) -> S:
    """The demo's simulator of `device`."""
    context = BuildContext(site, building, DEMO_SIMULATOR_SEED, 1.0, None)
    sim = BUILDERS[device.kind](device, context)
    if not isinstance(sim, kind):
        raise TypeError(f"{device.id}: the simulator is a {type(sim).__name__}, not a {kind.__name__}")
    return sim


class _Polled:
    """A Modbus device of the demo: its simulator's registers, read by its collector's poller on a clock of its own."""

    def __init__(
        self, site: Site, device: Device, registers: Registers, interpreter: Interpreter, start: datetime, ids: Ids
    ) -> None:
        assert device.address is not None  # the site file requires one for Modbus kinds
        self.clock = FakeClock(start)
        self.recorder = Recorder(ids)
        self._link = ImageLink(registers)
        self._poller = ModbusPoller(
            site.ref(device.id),
            interpreter,
            device.address,
            # Polled at the moments something changes, stamped with those moments.
            PollTiming(device.poll_interval_s, device.comm_grace_s, slotted=False),
            emit=self.recorder,
            clock=self.clock,
            metrics=Counters(),
        )

    async def poll_at(self, at: datetime) -> tuple[list[Reading], list[Event]]:
        self.clock.advance(at - self.clock.now())
        await self._poller.poll(self._link)
        return self.recorder.take()


class PolledElevator(_Polled):
    def __init__(self, site: Site, building: Building, device: Device, start: datetime, ids: Ids) -> None:
        self.sim = simulator(site, building, device, ElevatorSimulator)
        interpreter = ElevatorInterpreter(modbus_driver(device.model))
        super().__init__(site, device, self.sim.registers, interpreter, start, ids)


class PolledPanel(_Polled):
    def __init__(self, site: Site, building: Building, device: Device, start: datetime, ids: Ids) -> None:
        self.sim = simulator(site, building, device, FirePanelSimulator)
        interpreter = FirePanelInterpreter(fire_panel_driver(device.model))
        super().__init__(site, device, self.sim.registers, interpreter, start, ids)
