"""A simulated elevator controller: a real Modbus TCP server whose registers follow a moving car.

The register layout and encoding come from the same driver file the collector reads with, so the two cannot drift.
A task advances a small model of the car in simulated time: it waits, travels to a random floor with a trapezoidal
speed profile, opens its door, exchanges passengers and closes the door again. Every random choice comes from one
seeded generator and simulated time advances in fixed slices, so a seed always gives the same ride.
"""

from __future__ import annotations

import asyncio
import math
import random
from enum import StrEnum
from types import TracebackType

from collectors.modbus.driver import ModbusDriver, Table
from facmon.model import Value
from simulators.endpoint import ModbusEndpoint
from simulators.steps import (
    ClearStep,
    EntrapmentStep,
    FaultStep,
    LinkDropStep,
    LinkRestoreStep,
    ReleaseStep,
    ResponseDelayStep,
    SetStep,
    Step,
)

# The points the car model drives; a driver for an elevator controller must have them all.
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
    "fault_code",
    "entrapment",
    "trips",
    "run_hours",
    "door_cycles",
)
FLOOR_HEIGHT_M = 3.0
RATED_SPEED_MPS = 1.75
ACCEL_MPS2 = 0.8
# How far from a landing the car may be and still open its door (the unlocking zone).
DOOR_ZONE_M = 0.1
DOOR_TRAVEL_S = 2.5
# Kinematics run in slices of at most this much simulated time, whatever the speed factor.
SLICE_S = 0.1
# Real seconds between model updates.
TICK_S = 0.1


_ACTIONS = (
    FaultStep,
    ClearStep,
    EntrapmentStep,
    ReleaseStep,
    LinkDropStep,
    LinkRestoreStep,
    SetStep,
    ResponseDelayStep,
)


class Phase(StrEnum):
    IDLE = "idle"
    MOVING = "moving"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"


class ElevatorSimulator:
    # The car between updates: position of the car floor above the lowest landing, speed, and the current phase.
    _pos_m: float
    _v: float
    _target_m: float
    _phase: Phase
    _phase_left_s: float
    _run_s: float

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
    ) -> None:
        missing = [name for name in REQUIRED_POINTS if name not in driver.by_name]
        if missing:
            raise ValueError(f"driver {driver.model} cannot drive an elevator simulator: no points {missing}")
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
        self._rng = random.Random(seed)
        self._values: dict[str, Value] = {}
        self._image: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
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
        while True:
            await asyncio.sleep(TICK_S)
            self.step(TICK_S * self.speed)

    # -- scenario steps and runtime commands --------------------------------------------------------------------

    def problem(self, step: Step) -> str | None:
        if not isinstance(step, _ACTIONS):
            return f"an elevator simulator cannot {step.action}"
        if isinstance(step, SetStep):
            try:
                self.driver.to_registers(step.point, step.value)
            except KeyError:
                return f"{self.driver.model} has no point {step.point!r}"
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
                self.set_entrapment(True)
            case ReleaseStep():
                self.set_entrapment(False)
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
        """The controller reports `code` and stops the car where it is until the fault is cleared."""
        if code <= 0:
            raise ValueError(f"a fault code is positive (0 means no fault), got {code}")
        self._publish("fault_code", code)
        self._halt_car()

    def clear_fault(self) -> None:
        self._publish("fault_code", 0)

    def set_entrapment(self, on: bool) -> None:
        """Trap a passenger: car stopped between floors, door shut. Releasing levels the car and opens the door."""
        level = self._nearest_level_m()
        if on:
            if abs(self._pos_m - level) <= DOOR_ZONE_M:
                # Stop well outside the unlocking zone, towards the middle of the shaft.
                self._pos_m = level + (0.4 if level < self._top_m() else -0.4) * FLOOR_HEIGHT_M
            self._halt_car()
            self._publish("passenger", True)
            self._publish("load_pct", max(int(self._values["load_pct"]), 15))
            self._publish("door", "closed")
            self._publish("entrapment", True)
        elif self._values["entrapment"] is True:
            self._pos_m = level
            self._publish("entrapment", False)
            self._enter(Phase.OPENING, DOOR_TRAVEL_S)
        self._publish_position()

    def set_value(self, name: str, value: Value) -> None:
        """Override a point. The car model changes the points it drives again when it next moves them."""
        if name not in self.driver.by_name:
            raise KeyError(f"{self.driver.model} has no point {name!r}; points: {sorted(self.driver.by_name)}")
        if name == "floor":
            self._pos_m = (int(value) - 1) * FLOOR_HEIGHT_M
        elif name == "run_hours":
            self._run_s = float(value) * 3600
        self._publish(name, value)
        if self._halted() and self._values["moving"] is True:
            # Out of normal service (inspection, fire return...): the car stops where it is.
            self._halt_car()

    def value(self, name: str) -> Value:
        if name not in self._values:
            raise KeyError(f"{self.driver.model} has no point {name!r}; points: {sorted(self._values)}")
        return self._values[name]

    def snapshot(self) -> dict[str, Value]:
        return dict(self._values)

    def set_response_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a delay is not negative")
        self._delay_s = seconds

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
        return self._image[table]

    def response_delay_s(self) -> float:
        return self._delay_s

    # -- the car model ------------------------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance the car by `dt_s` of simulated time."""
        remaining = dt_s
        while remaining > 1e-9:
            dt = min(remaining, SLICE_S)
            remaining -= dt
            if not self._halted():
                self._advance(dt)
        self._publish_position()

    def _reset(self) -> None:
        rng = self._rng
        self._pos_m = (rng.randint(1, self.floors) - 1) * FLOOR_HEIGHT_M
        self._v = 0.0
        self._target_m = self._pos_m
        self._phase = Phase.IDLE
        self._phase_left_s = rng.uniform(1.0, 8.0)
        trips = rng.randint(20_000, 400_000)
        # Counters of a controller that has been in service for years.
        self._run_s = trips * rng.uniform(20.0, 40.0)
        initial: dict[str, Value] = {
            "service_mode": "normal",
            "moving": False,
            "direction": "none",
            "door": "closed",
            "passenger": False,
            "load_pct": 0,
            "power_source": "main",
            "fault_code": 0,
            "entrapment": False,
            "trips": trips,
            "door_cycles": trips + rng.randint(0, trips // 20),
            "firmware": 213,
            "floors_served": self.floors,
        }
        for name, value in initial.items():
            if name in self.driver.by_name:
                self._publish(name, value)
        self._publish_position()

    def _halted(self) -> bool:
        return (
            self._values["fault_code"] != 0
            or self._values["entrapment"] is True
            or self._values["service_mode"] != "normal"
        )

    def _halt_car(self) -> None:
        self._v = 0.0
        self._publish("moving", False)
        self._publish("direction", "none")
        self._publish_position()

    def _enter(self, phase: Phase, duration_s: float) -> None:
        self._phase, self._phase_left_s = phase, duration_s
        door = {Phase.OPENING: "opening", Phase.OPEN: "open", Phase.CLOSING: "closing"}.get(phase, "closed")
        self._publish("door", door)

    def _advance(self, dt: float) -> None:
        rng = self._rng
        if self._phase is Phase.MOVING:
            self._move(dt)
            return
        self._phase_left_s -= dt
        if self._phase_left_s > 0:
            return
        if self._phase is Phase.IDLE:
            here = self._floor()
            target = rng.choice([f for f in range(1, self.floors + 1) if f != here])
            self._target_m = (target - 1) * FLOOR_HEIGHT_M
            self._phase = Phase.MOVING
            self._publish("moving", True)
            self._publish("direction", "up" if target > here else "down")
        elif self._phase is Phase.OPENING:
            self._enter(Phase.OPEN, rng.uniform(3.0, 8.0))
            # Riders leave and board while the door is open.
            riding = rng.random() < 0.6
            self._publish("passenger", riding)
            self._publish("load_pct", rng.randint(6, 90) if riding else 0)
        elif self._phase is Phase.OPEN:
            self._enter(Phase.CLOSING, DOOR_TRAVEL_S)
        elif self._phase is Phase.CLOSING:
            self._publish("door_cycles", int(self._values["door_cycles"]) + 1)
            # A car with someone inside leaves soon; an empty one waits for a call.
            self._enter(Phase.IDLE, rng.uniform(0.5, 2.0) if self._values["passenger"] else rng.uniform(2.0, 20.0))

    def _move(self, dt: float) -> None:
        if self._values["moving"] is not True:  # resuming after a fault was cleared
            self._publish("moving", True)
            self._publish("direction", "up" if self._target_m > self._pos_m else "down")
        distance = self._target_m - self._pos_m
        remaining = abs(distance)
        # Accelerate to rated speed, and brake in time to stop at the landing.
        self._v = min(RATED_SPEED_MPS, self._v + ACCEL_MPS2 * dt, math.sqrt(2 * ACCEL_MPS2 * remaining))
        self._pos_m += math.copysign(min(remaining, self._v * dt), distance)
        self._run_s += dt
        if abs(self._target_m - self._pos_m) < 1e-6:
            self._pos_m, self._v = self._target_m, 0.0
            self._publish("moving", False)
            self._publish("direction", "none")
            self._publish("trips", int(self._values["trips"]) + 1)
            self._enter(Phase.OPENING, DOOR_TRAVEL_S)

    def _nearest_level_m(self) -> float:
        return round(self._pos_m / FLOOR_HEIGHT_M) * FLOOR_HEIGHT_M

    def _top_m(self) -> float:
        return (self.floors - 1) * FLOOR_HEIGHT_M

    def _floor(self) -> int:
        return 1 + round(self._pos_m / FLOOR_HEIGHT_M)

    def _publish_position(self) -> None:
        self._publish("floor", self._floor())
        self._publish("door_zone", abs(self._pos_m - self._nearest_level_m()) <= DOOR_ZONE_M)
        self._publish("speed", self._v)
        self._publish("run_hours", self._run_s / 3600)

    def _publish(self, name: str, value: Value) -> None:
        """Set a point's value and its registers (raises ValueError for a value its type cannot hold)."""
        point = self.driver.by_name[name]
        words = self.driver.to_registers(name, value)
        if point.enum is not None and isinstance(value, int) and not isinstance(value, bool):
            value = self.driver.enums[point.enum].get(value, value)
        elif point.scale != 1.0 and not isinstance(value, (bool, str)):
            # Hold what a reader decodes from the registers, not a finer value it can never see.
            value = round(value / point.scale) * point.scale
        self._values[name] = value
        image = self._image[point.table]
        for offset, word in enumerate(words):
            image[point.address + offset] = word
