"""A simulated elevator controller: a real Modbus TCP server whose registers follow a moving car.

The register layout and encoding come from the same driver file the collector reads with, so the two cannot drift,
and one simulator serves every elevator model: one value per holding register (elev-gb-a) or packed status bits
in input registers (elev-st-b), GB fault codes or vendor E-codes and fault bit words, with or without an
entrapment flag. A task advances the car (`simulators.car`) in simulated time, on the simulator's clock (default:
`speed` times the wall clock, standing still at speed 0; tests hand it a FakeClock); scenario steps and runtime
commands (`simulators.steps`) inject faults, entrapments, power loss, service modes and garbage.
"""

from __future__ import annotations

import asyncio
import random
from types import TracebackType

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.registers import Table
from facmon.kernel.clock import Clock
from facmon.kernel.model import Value
from simulators.car import Car
from simulators.clock import simulated_clock
from simulators.endpoint import ModbusEndpoint
from simulators.register_image import RegisterImage
from simulators.steps import (
    ClearStep,
    EntrapmentStep,
    FaultStep,
    GarbageStep,
    GarbageStopStep,
    LinkDropStep,
    LinkRestoreStep,
    ModeStep,
    PowerLossStep,
    PowerRestoreStep,
    ReleaseStep,
    ResponseDelayStep,
    SetStep,
    Step,
)

# The points the car model drives; a driver for an elevator controller must have them all. Faults may be a code
# register, fault bit words or both (the driver's `faults` section); the entrapment flag and the power source are
# optional, and so are the steps that need them.
REQUIRED_POINTS = (
    "service_mode",
    "moving",
    "direction",
    "floor",
    "door",
    "door_zone",
    "passenger",
    "load_pct",
    "speed",
    "trips",
    "run_hours",
    "door_cycles",
)
ENTRAPMENT_FLAG = "entrapment"
# Wall-clock seconds between model updates at the default clock: TICK_S * speed seconds of simulated time.
TICK_S = 0.1

# GB/T 24476 door close fault and door open fault: they happen at a landing, with the door not shut.
DOOR_FAULTS = frozenset({2, 3})

_ACTIONS = (
    FaultStep,
    ClearStep,
    EntrapmentStep,
    ReleaseStep,
    PowerLossStep,
    PowerRestoreStep,
    ModeStep,
    GarbageStep,
    GarbageStopStep,
    LinkDropStep,
    LinkRestoreStep,
    SetStep,
    ResponseDelayStep,
)


class ElevatorSimulator:
    def __init__(
        self,
        driver: ModbusDriver,
        *,
        host: str = "127.0.0.1",
        port: int,
        unit: int = 1,
        floors: int = 18,
        seed: int = 0,
        speed: float = 1.0,
        device_id: str = "",
        clock: Clock | None = None,
    ) -> None:
        missing = [name for name in REQUIRED_POINTS if name not in driver.by_name]
        if missing:
            raise ValueError(f"driver {driver.model} cannot drive an elevator simulator: no points {missing}")
        if driver.faults is None or (driver.faults.code_point is None and not driver.faults.bits):
            raise ValueError(f"driver {driver.model} cannot drive an elevator simulator: no fault register")
        if not 2 <= floors <= 99:
            raise ValueError(f"floors must be 2..99, got {floors}")
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0 freezes the car), got {speed}")
        self.driver = driver
        self.device_id = device_id or f"{host}:{port}/{unit}"
        self.host = host
        self.port = port
        self.unit = unit
        self.floors = floors
        self.speed = speed
        self.clock = clock or simulated_clock(speed)
        self._faults = driver.faults
        self._flag = ENTRAPMENT_FLAG if ENTRAPMENT_FLAG in self._faults.flags else None
        self._rng = random.Random(seed)
        self._image = RegisterImage(driver)
        self._car = Car(self._image, self._rng, floors)
        self._trapped = False
        self._delay_s = 0.0
        self._endpoint: ModbusEndpoint | None = None
        self._owns_endpoint = False
        self._task: asyncio.Task[None] | None = None
        self._reset()

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def attach(self, endpoint: ModbusEndpoint) -> None:
        """Answer through a listener shared with other units (a gateway with several controllers behind it)."""
        if self._task is not None:
            raise RuntimeError("attach before start")
        self._endpoint, self._owns_endpoint = endpoint, False

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._endpoint is None:
            self._endpoint, self._owns_endpoint = ModbusEndpoint(self.host, self.port, [self]), True
        await self._endpoint.start()
        self._task = asyncio.create_task(self._run(), name=f"elevator-sim {self.host}:{self.port}/{self.unit}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than awaiting the task: a cancellation of stop() itself must still propagate.
            await asyncio.wait({task})
        if self._owns_endpoint and self._endpoint is not None:
            await self._endpoint.stop()

    async def __aenter__(self) -> ElevatorSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        # The car moves by the clock's time since the last update (one wake-up for a fake clock's long advance).
        interval, last = TICK_S * (self.speed or 1.0), self.clock.monotonic()
        while True:
            await self.clock.sleep_until(last + interval)
            now = self.clock.monotonic()
            self.step(now - last)
            last = now

    # -- scenario steps and runtime commands --------------------------------------------------------------------

    def problem(self, step: Step) -> str | None:
        if not isinstance(step, _ACTIONS):
            return f"an elevator simulator cannot {step.action}"
        try:
            match step:
                case SetStep():
                    if step.point not in self.driver.by_name:
                        return f"{self.driver.model} has no point {step.point!r}"
                    self.driver.to_registers(step.point, step.value)
                case FaultStep():
                    self._fault_values(step.code)
                case PowerLossStep() | PowerRestoreStep() if "power_source" not in self.driver.by_name:
                    return f"{self.driver.model} does not report its power source"
                case ModeStep():
                    self.driver.to_registers("service_mode", step.mode)
                case GarbageStep() if not self._image.garbage_points():
                    return f"every value {self.driver.model} can send is legal"
        except ValueError as exc:
            return str(exc)
        return None

    async def perform(self, step: Step) -> None:
        match step:
            case FaultStep():
                self.inject_fault(step.code)
            case ClearStep():
                self.clear_fault()
            case EntrapmentStep():
                self.set_entrapment(True, flag=step.flag)
            case ReleaseStep():
                self.set_entrapment(False)
            case PowerLossStep():
                self.set_power(backup=True)
            case PowerRestoreStep():
                self.set_power(backup=False)
            case ModeStep():
                self.set_mode(step.mode)
            case GarbageStep():
                self.garbage(step.count)
            case GarbageStopStep():
                self._image.ungarble()
            case LinkDropStep():
                await self.link_down()
            case LinkRestoreStep():
                await self.link_up()
            case SetStep():
                self.set_value(step.point, step.value)
            case ResponseDelayStep():
                self.set_response_delay(step.delay_s)
            case _:
                raise ValueError(self.problem(step) or f"cannot {step.action}")

    # -- controls -----------------------------------------------------------------------------------------------

    def inject_fault(self, code: int) -> None:
        """The controller reports GB fault `code` its own way and holds the car until it is cleared: a door fault
        at its landing with the door open (the door would not close, or was opening), any other where it is."""
        if code <= 0:
            raise ValueError(f"a fault code is positive (0 means no fault), got {code}")
        for name, value in self._fault_values(code).items():
            self._image.publish(name, value)
        if code in DOOR_FAULTS:
            self._car.open_at_landing()
        else:
            self._car.halt()

    def clear_fault(self) -> None:
        for name, value in self._fault_values(0).items():
            self._image.publish(name, value)

    def set_entrapment(self, on: bool, *, flag: bool = True) -> None:
        """Trap a passenger: car stopped between floors, door shut, and the controller's flag raised if it has one
        and `flag`. Releasing (a rescue) levels the car and opens the door."""
        if on:
            self._trapped = True
            self._car.stop_between_floors()
            self._image.publish("passenger", True)
            self._image.publish("load_pct", max(int(self._image.value("load_pct")), 15))
            self._image.publish("door", "closed")
            if self._flag is not None and flag:
                self._image.publish(self._flag, True)
        elif self._trapped or (self._flag is not None and self._image.value(self._flag) is True):
            self._trapped = False
            if self._flag is not None:
                self._image.publish(self._flag, False)
            self._car.open_at_landing()

    def set_power(self, *, backup: bool) -> None:
        """Main power lost (the controller runs on its backup supply) or back."""
        self._image.publish("power_source", "backup" if backup else "main")

    def set_mode(self, mode: str) -> None:
        """Service mode by label. Inspection stops the car where it is (a technician moves it by hand); the other
        modes out of normal service bring it to a landing and open the door (recall, parking)."""
        self._image.publish("service_mode", mode)
        if mode == "inspection":
            self._car.halt()
        elif mode != "normal" and not self._trapped:
            self._car.open_at_landing()
            self._image.publish("passenger", False)
            self._image.publish("load_pct", 0)

    def garbage(self, count: int) -> None:
        """Send impossible values in up to `count` points (chosen by the seeded generator) until garbage_stop."""
        candidates = self._image.garbage_points()
        self._image.garble(self._rng.sample(candidates, min(count, len(candidates))))

    def set_value(self, name: str, value: Value) -> None:
        """Override a point. The car model changes the points it drives again when it next moves them."""
        if name not in self.driver.by_name:
            raise KeyError(f"{self.driver.model} has no point {name!r}; points: {sorted(self.driver.by_name)}")
        if name == "floor":
            self._car.go_to_floor(int(value))
        elif name == "run_hours":
            self._car.run_s = float(value) * 3600
        self._image.publish(name, value)
        if self._halted() and self._image.value("moving") is True:
            # Out of normal service (inspection, fire return...): the car stops where it is.
            self._car.halt()

    def value(self, name: str) -> Value:
        return self._image.value(name)

    def snapshot(self) -> dict[str, Value]:
        return self._image.snapshot()

    def set_response_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a delay is not negative")
        self._delay_s = seconds

    @property
    def trapped(self) -> bool:
        return self._trapped

    @property
    def endpoint(self) -> ModbusEndpoint | None:
        """The listener this unit answers through (None before start or attach)."""
        return self._endpoint

    @property
    def answering(self) -> bool:
        """Started, and its link is up."""
        return self._endpoint is not None and self._endpoint.answering(self.unit)

    async def link_down(self) -> None:
        """Stop answering: the port closes (or, behind a shared listener, this unit's requests fail)."""
        await self._require_endpoint().set_answering(self.unit, False)

    async def link_up(self) -> None:
        await self._require_endpoint().set_answering(self.unit, True)

    def _require_endpoint(self) -> ModbusEndpoint:
        if self._endpoint is None:
            raise RuntimeError("the simulator is not started")
        return self._endpoint

    # -- what the endpoint asks ---------------------------------------------------------------------------------

    def registers(self, table: Table) -> dict[int, int]:
        return self._image.registers(table)

    def response_delay_s(self) -> float:
        return self._delay_s

    # -- the car ------------------------------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance the car by `dt_s` of simulated time."""
        self._car.step(dt_s, halted=self._halted())

    def _reset(self) -> None:
        rng = self._rng
        trips = rng.randint(20_000, 400_000)
        # Counters of a controller that has been in service for years.
        self._car.run_s = trips * rng.uniform(20.0, 40.0)
        initial: dict[str, Value] = {
            "service_mode": "normal",
            "moving": False,
            "direction": "none",
            "door": "closed",
            "passenger": False,
            "load_pct": 0,
            "power_source": "main",
            "trips": trips,
            "door_cycles": trips + rng.randint(0, trips // 20),
            "firmware": 213,
            "floors_served": self.floors,
            **self._fault_values(0),
            **({self._flag: False} if self._flag is not None else {}),
        }
        for name, value in initial.items():
            if name in self.driver.by_name:
                self._image.publish(name, value)
        self._car.publish_position()

    def _fault_values(self, code: int) -> dict[str, Value]:
        """What the fault registers hold while GB fault `code` is the current one (0: none); ValueError when this
        model has no way to report it."""
        faults = self._faults
        values: dict[str, Value] = {}
        reported = code == 0
        if faults.code_point is not None:
            if faults.code_map is None:
                values[faults.code_point], reported = code, True
            else:
                vendor = [v for v, gb in sorted(faults.code_map.items()) if gb == code]
                values[faults.code_point] = vendor[0] if vendor and code else 0
                reported = reported or bool(vendor)
        for word in faults.bits:
            bits = sum(1 << bit for bit, gb in word.codes.items() if gb == code and code)
            values[word.point] = bits
            reported = reported or bits != 0
        if not reported:
            raise ValueError(f"{self.driver.model} has no way to report fault code {code}")
        return values

    def _halted(self) -> bool:
        """Stopped by a fault, an entrapment or a service mode other than normal."""
        if self._trapped or self._image.value("service_mode") != "normal":
            return True
        return any(self._image.get(name) not in (0, False, None) for name in self._faults.points())
