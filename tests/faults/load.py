"""The load of a fault case: numbered vendor messages at a steady rate, and elevator faults raised and cleared.

Every message is a barrier-a heartbeat whose `cycles` is its sequence number (1, 2, ...), spread over the estate's
barriers. The gateway turns each into a `gate` reading with that number as a field, so InfluxDB can be asked which
numbers it holds. A message counts as sent once the broker acknowledged it (QoS 1 PUBACK); while the broker is away
the generator reconnects and publishes the same number again, as a device's MQTT client does.

Elevator faults are the car alarm (code 15, an emergency: its alert goes out at once, never grouped or delayed),
raised on the simulated controllers through the simulator's command topic and cleared once the load is over.
"""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from simulators.site import command_topic
from tests.faults.estate import BARRIERS, ELEVATORS

CAR_ALARM = "15"


class Load:
    def __init__(self, port: int, site: str, *, rate: float = 150.0, total: int = 600) -> None:
        self.port = port
        self.site = site
        self.rate = rate
        self.total = total
        # The sequence numbers the broker acknowledged.
        self.sent: set[int] = set()
        self.reconnects = 0
        self._progress = asyncio.Condition()
        # Cleared by `hold`: the devices fall silent until `resume` (a case that needs the load paused).
        self._running = asyncio.Event()
        self._running.set()

    def hold(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def elevators(self) -> list[str]:
        return [f"e{n}" for n in range(1, ELEVATORS + 1)]

    async def reached(self, n: int) -> None:
        """Until `n` messages were sent (a point in the load to inject a fault at, without a timer)."""
        async with self._progress:
            await self._progress.wait_for(lambda: len(self.sent) >= min(n, self.total))

    async def run(self, first: int = 1, last: int | None = None) -> None:
        """Publish numbers `first`..`last` (default: to `total`) at `rate` per second."""
        loop = asyncio.get_running_loop()
        numbers = iter(range(first, (last or self.total) + 1))
        number = next(numbers, None)
        start = loop.time()
        while number is not None:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, timeout=5) as client:
                    while number is not None:
                        if not self._running.is_set():
                            await self._running.wait()
                            start = loop.time() - (number - first) / self.rate
                        # Steady rate: number n leaves at start + (n - first) / rate, late ones at once.
                        await asyncio.sleep(max(0.0, start + (number - first) / self.rate - loop.time()))
                        barrier = f"g{number % BARRIERS + 1}"
                        payload = {"uptime_s": number, "cycles": number, "temperature_c": 21.5}
                        await client.publish(f"vendor/barrier/{barrier}/heartbeat", json.dumps(payload), qos=1)
                        async with self._progress:
                            self.sent.add(number)
                            self._progress.notify_all()
                        number = next(numbers, None)
            except aiomqtt.MqttError:
                # The broker went away: connect again (polling a real process) and send the same number again.
                self.reconnects += 1
                await asyncio.sleep(0.2)

    async def warm_up(self) -> None:
        """One heartbeat numbered 0 (not counted) from every barrier, to learn that the gateway listens."""
        async with aiomqtt.Client("127.0.0.1", self.port, timeout=5) as client:
            for n in range(1, BARRIERS + 1):
                payload = {"uptime_s": 0, "cycles": 0, "temperature_c": 21.5}
                await client.publish(f"vendor/barrier/g{n}/heartbeat", json.dumps(payload), qos=1)

    async def car_alarms(self, at: list[int]) -> None:
        """Raise the car alarm on elevator i when the load reaches `at[i]` messages."""
        for elevator, n in zip(self.elevators, at, strict=True):
            await self.reached(n)
            await self.command(elevator, {"action": "fault", "code": int(CAR_ALARM)})

    async def clear_all(self) -> None:
        for elevator in self.elevators:
            await self.command(elevator, {"action": "clear"})

    async def command(self, device: str, command: dict[str, object]) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, timeout=5) as control:
                    await control.publish(command_topic(self.site, device), json.dumps(command), qos=1)
                    return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)
