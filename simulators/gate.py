"""A simulated gate barrier: an arm, a loop detector and a card reader that publish the vendor's JSON over MQTT.

A granted card sends the arm up (opening -> raised), a vehicle drives onto the loop and off it again, and the arm
comes down (closing -> lowered); now and then the vehicle never comes and the arm closes on its timer. A stuck arm
(`barrier_stuck`) stops midway on its next move, or at once if it is moving, and the controller reports
`limit_timeout` when the arm has not reached its limit LIMIT_TIMEOUT_S after it set off; freed, the arm finishes its
move and the fault clears. Times are simulated seconds, on the device's clock (by default `speed` times faster than
the wall clock).

Optional routine traffic (cards of residents, now and then a stranger's) comes from a seeded stream: the same seed
gives the same cards in the same order.
"""

from __future__ import annotations

import asyncio
import random
from typing import ClassVar, Unpack

from collectors.mqtt.driver import MqttDriver
from facmon.kernel.model import EventType, Value
from simulators.mqtt_device import MqttDeviceSimulator, SimOptions
from simulators.steps import BarrierStuckStep, CardReadStep, Step

# A boom arm's travel between its limits, the controller's limit timer, and its auto-close timer.
TRAVEL_S = 2.5
LIMIT_TIMEOUT_S = 5.0
AUTO_CLOSE_S = 20.0
# A stuck arm still gets this far (fraction of its travel) before it stops.
JAM_AT = 0.4
# The arm moves in slices of this much simulated time.
SLICE_S = 0.1
# A granted vehicle that never drives through (turned back, reversed out).
NO_SHOW_P = 0.05
LIMIT_FAULT = "limit_timeout"


class RoutineTraffic:
    """Residents' cards at a steady average rate; a stranger's card (denied) now and then."""

    def __init__(self, seed: int, per_hour: float, residents: int = 40) -> None:
        if per_hour <= 0:
            raise ValueError("per_hour must be positive")
        self._rng = random.Random(f"{seed}/traffic")
        self.per_hour = per_hour
        self.cards = [f"{self._rng.getrandbits(32):08X}" for _ in range(residents)]

    def next(self) -> tuple[float, CardReadStep]:
        """(simulated seconds until it, the card read)."""
        rng = self._rng
        delay_s = rng.expovariate(self.per_hour / 3600)
        resident = rng.random() >= 0.07
        card = rng.choice(self.cards) if resident else f"{rng.getrandbits(32):08X}"
        step = CardReadStep(action="card_read", card=card, granted=resident, direction=rng.choice(["in", "out"]))
        return delay_s, step


class BarrierSimulator(MqttDeviceSimulator):
    STATE_MESSAGES: ClassVar[tuple[str, ...]] = ("state", "heartbeat")

    def __init__(
        self, driver: MqttDriver, *, routine_reads_per_hour: float = 0.0, **options: Unpack[SimOptions]
    ) -> None:
        super().__init__(driver, **options)
        state = driver.fields_of("state")
        for name in ("position", "loop_occupied", "reason"):
            if name not in state:
                raise ValueError(f"driver {driver.model} cannot drive a barrier simulator: state has no {name!r}")
        self._card_message = next(
            (m for m, s in driver.messages.items() if s.event is not None and s.event.type is EventType.CARD_READ),
            None,
        )
        if self._card_message is None:
            raise ValueError(f"driver {driver.model} has no card_read message")
        driver.condition_payload(LIMIT_FAULT, True)  # KeyError now rather than at the first jam
        self._cycle_rng = random.Random(f"{self.seed}/cycle")
        self._sensors = random.Random(f"{self.seed}/sensors")
        self._values.update(position="lowered", loop_occupied=False, cycles=self._sensors.randint(10_000, 900_000))
        self._values["temperature_c"] = round(self._sensors.uniform(15, 35), 1)
        self.traffic = RoutineTraffic(self.seed, routine_reads_per_hour) if routine_reads_per_hour > 0 else None
        self._stuck = False
        self._cycle: asyncio.Task[None] | None = None

    # -- steps ----------------------------------------------------------------------------------------------------

    def _own_problem(self, step: Step) -> str | None:
        if isinstance(step, CardReadStep | BarrierStuckStep):
            return None
        return super()._own_problem(step)

    async def _own_perform(self, step: Step) -> None:
        match step:
            case CardReadStep():
                await self.card_read(step.card, step.granted, step.direction)
            case BarrierStuckStep():
                self._stuck = step.on
            case _:
                await super()._own_perform(step)

    async def card_read(self, card: str, granted: bool, direction: str) -> None:
        """Report the card; a granted one starts a passage unless the arm is already busy with one."""
        assert self._card_message is not None
        await self.send(self._card_message, {"card": card, "granted": granted, "direction": direction})
        if granted and (self._cycle is None or self._cycle.done()):
            self._cycle = asyncio.create_task(self._passage(), name=f"barrier-cycle {self.device_id}")

    @property
    def position(self) -> Value:
        return self._values["position"]

    @property
    def busy(self) -> bool:
        return self._cycle is not None and not self._cycle.done()

    # -- the arm --------------------------------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        await self.send("state", self.message_values("state"))
        await self.send_heartbeat()

    async def send_heartbeat(self) -> bool:
        temperature = float(self._values["temperature_c"])
        # A cabinet's temperature drifts slowly.
        self._values["temperature_c"] = round(min(60.0, max(-20.0, temperature + self._sensors.uniform(-0.2, 0.2))), 1)
        return await super().send_heartbeat()

    def _background(self, tg: asyncio.TaskGroup) -> None:
        if self.traffic is not None:
            tg.create_task(self._routine(self.traffic))

    async def stop(self) -> None:
        if self._cycle is not None:
            self._cycle.cancel()
            await asyncio.wait({self._cycle})
        await super().stop()

    async def _routine(self, traffic: RoutineTraffic) -> None:
        while True:
            delay_s, step = traffic.next()
            await self._sleep(delay_s)
            await self.card_read(step.card, step.granted, step.direction)

    async def _sleep(self, simulated_s: float) -> None:
        await self.clock.sleep(simulated_s)

    async def _state(self, **values: Value) -> None:
        self._values.update(values)
        await self.send("state", self.message_values("state"))

    async def _passage(self) -> None:
        """One vehicle let through: up, the vehicle over the loop, down again."""
        rng = self._cycle_rng
        await self._move("raised", "card")
        if rng.random() < NO_SHOW_P:
            await self._sleep(AUTO_CLOSE_S)
            await self._move("lowered", "auto_close")
            return
        await self._sleep(rng.uniform(1.0, 4.0))  # the vehicle drives up to the arm
        await self._state(loop_occupied=True)
        await self._sleep(rng.uniform(1.5, 3.5))  # and over the loop
        await self._state(loop_occupied=False)
        await self._sleep(0.5)  # the controller's safety pause after the loop clears
        await self._move("lowered", "loop")

    async def _move(self, target: str, reason: str) -> None:
        moving = "opening" if target == "raised" else "closing"
        await self._state(position=moving, reason=reason)
        progress, elapsed_s, faulted = 0.0, 0.0, False
        while progress < 1.0:
            if self._stuck and progress >= JAM_AT:
                if self.position != "stopped_midway":
                    await self._state(position="stopped_midway")
                if not faulted and elapsed_s >= LIMIT_TIMEOUT_S:
                    faulted = True
                    await self._fault(True)
            else:
                if self.position == "stopped_midway":
                    await self._state(position=moving)
                progress += SLICE_S / TRAVEL_S
            await self._sleep(SLICE_S)
            elapsed_s += SLICE_S
        if target == "raised":
            self._values["cycles"] = int(self._values["cycles"]) + 1
        await self._state(position=target)
        if faulted:
            await self._fault(False)

    async def _fault(self, active: bool) -> None:
        await self.send(*self.driver.condition_payload(LIMIT_FAULT, active))
