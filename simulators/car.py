"""The moving car behind a simulated elevator controller, in simulated time.

It waits, travels to a random floor with a trapezoidal speed profile, opens its door, exchanges passengers and
closes the door again, and shows all of it through the points of a `RegisterImage` (floor, door, door zone,
moving, direction, speed, passenger, load, counters). Every random choice comes from the generator it is given and
time advances in fixed slices, so a seed always gives the same ride whatever the speed factor.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum

from simulators.register_image import RegisterImage

FLOOR_HEIGHT_M = 3.0
RATED_SPEED_MPS = 1.75
ACCEL_MPS2 = 0.8
# How far from a landing the car may be and still open its door (the unlocking zone).
DOOR_ZONE_M = 0.1
DOOR_TRAVEL_S = 2.5
# Kinematics run in slices of at most this much simulated time, whatever the speed factor.
SLICE_S = 0.1


class Phase(StrEnum):
    IDLE = "idle"
    MOVING = "moving"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"


class Car:
    def __init__(self, image: RegisterImage, rng: random.Random, floors: int) -> None:
        self._image = image
        self._rng = rng
        self.floors = floors
        # Position of the car floor above the lowest landing, speed, and what it is doing until when.
        self.pos_m = (rng.randint(1, floors) - 1) * FLOOR_HEIGHT_M
        self.v = 0.0
        self.target_m = self.pos_m
        self.phase = Phase.IDLE
        self.phase_left_s = rng.uniform(1.0, 8.0)
        self.run_s = 0.0

    def step(self, dt_s: float, *, halted: bool) -> None:
        """Advance by `dt_s` of simulated time; a halted car (fault, entrapment, out of normal service) holds."""
        remaining = dt_s
        while remaining > 1e-9:
            dt = min(remaining, SLICE_S)
            remaining -= dt
            if not halted:
                self._advance(dt)
        self.publish_position()

    def halt(self) -> None:
        """Stop where it is."""
        self.v = 0.0
        self._image.publish("moving", False)
        self._image.publish("direction", "none")
        self.publish_position()

    def stop_between_floors(self) -> None:
        """Stop well outside the unlocking zone, towards the middle of the shaft (where people get trapped)."""
        level = self.level_m()
        if abs(self.pos_m - level) <= DOOR_ZONE_M:
            self.pos_m = level + (0.4 if level < self.top_m() else -0.4) * FLOOR_HEIGHT_M
        self.halt()

    def open_at_landing(self) -> None:
        """Level with the nearest landing and open the door (a rescue, a recall, a car parked out of service)."""
        self.pos_m = self.level_m()
        self.halt()
        self._enter(Phase.OPEN, self._rng.uniform(3.0, 8.0))

    def go_to_floor(self, floor: int) -> None:
        self.pos_m = (floor - 1) * FLOOR_HEIGHT_M

    def level_m(self) -> float:
        return round(self.pos_m / FLOOR_HEIGHT_M) * FLOOR_HEIGHT_M

    def top_m(self) -> float:
        return (self.floors - 1) * FLOOR_HEIGHT_M

    def floor(self) -> int:
        return 1 + round(self.pos_m / FLOOR_HEIGHT_M)

    def publish_position(self) -> None:
        image = self._image
        image.publish("floor", self.floor())
        image.publish("door_zone", abs(self.pos_m - self.level_m()) <= DOOR_ZONE_M)
        image.publish("speed", self.v)
        image.publish("run_hours", self.run_s / 3600)

    def _enter(self, phase: Phase, duration_s: float) -> None:
        self.phase, self.phase_left_s = phase, duration_s
        door = {Phase.OPENING: "opening", Phase.OPEN: "open", Phase.CLOSING: "closing"}.get(phase, "closed")
        self._image.publish("door", door)

    def _advance(self, dt: float) -> None:
        rng, image = self._rng, self._image
        if self.phase is Phase.MOVING:
            self._move(dt)
            return
        self.phase_left_s -= dt
        if self.phase_left_s > 0:
            return
        if self.phase is Phase.IDLE:
            here = self.floor()
            target = rng.choice([f for f in range(1, self.floors + 1) if f != here])
            self.target_m = (target - 1) * FLOOR_HEIGHT_M
            self.phase = Phase.MOVING
            image.publish("moving", True)
            image.publish("direction", "up" if target > here else "down")
        elif self.phase is Phase.OPENING:
            self._enter(Phase.OPEN, rng.uniform(3.0, 8.0))
            # Riders leave and board while the door is open.
            riding = rng.random() < 0.6
            image.publish("passenger", riding)
            image.publish("load_pct", rng.randint(6, 90) if riding else 0)
        elif self.phase is Phase.OPEN:
            self._enter(Phase.CLOSING, DOOR_TRAVEL_S)
        elif self.phase is Phase.CLOSING:
            image.publish("door_cycles", int(image.value("door_cycles")) + 1)
            # A car with someone inside leaves soon; an empty one waits for a call.
            busy = image.value("passenger") is True
            self._enter(Phase.IDLE, rng.uniform(0.5, 2.0) if busy else rng.uniform(2.0, 20.0))

    def _move(self, dt: float) -> None:
        image = self._image
        if image.value("moving") is not True:  # resuming after a fault was cleared
            image.publish("moving", True)
            image.publish("direction", "up" if self.target_m > self.pos_m else "down")
        distance = self.target_m - self.pos_m
        remaining = abs(distance)
        # Accelerate to rated speed, and brake in time to stop at the landing.
        self.v = min(RATED_SPEED_MPS, self.v + ACCEL_MPS2 * dt, math.sqrt(2 * ACCEL_MPS2 * remaining))
        self.pos_m += math.copysign(min(remaining, self.v * dt), distance)
        self.run_s += dt
        if abs(self.target_m - self.pos_m) < 1e-6:
            self.pos_m, self.v = self.target_m, 0.0
            image.publish("moving", False)
            image.publish("direction", "none")
            image.publish("trips", int(image.value("trips")) + 1)
            self._enter(Phase.OPENING, DOOR_TRAVEL_S)
