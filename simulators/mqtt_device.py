"""What every simulated MQTT device shares: a connection to the broker, heartbeats, and the common scenario steps.

A device is one MQTT client (twenty cameras are twenty clients, as in the field). Payloads are built with the
device's driver file and checked by it before they leave, so a simulator sends something the collector rejects only
when a `garbage` step asks for it. While its link is down or its heartbeat stopped, what the device would have sent
is dropped, as a real controller without a buffer would.

Subclasses say which messages carry the device's state (`STATE_MESSAGES`), what to send on (re)connecting, and take
their own steps (`_own_problem`, `_own_perform`).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from typing import ClassVar, Required, TypedDict

import aiomqtt
import structlog

from collectors.mqtt.codec import check_value, encode
from collectors.mqtt.driver import MqttDriver
from facmon.kernel.backoff import backoff_delays
from facmon.kernel.clock import Clock
from facmon.kernel.model import Value
from facmon.kernel.mqtt import MqttSettings, mqtt_client
from simulators.clock import simulated_clock
from simulators.mqtt_garbage import garbage_payloads
from simulators.steps import (
    GarbageStep,
    GarbageStopStep,
    HeartbeatStartStep,
    HeartbeatStopStep,
    LinkDropStep,
    LinkRestoreStep,
    SetStep,
    Step,
)

log = structlog.get_logger(__name__)

_COMMON = (SetStep, LinkDropStep, LinkRestoreStep, GarbageStep, GarbageStopStep, HeartbeatStopStep, HeartbeatStartStep)


class SimOptions(TypedDict, total=False):
    """The keyword arguments every MQTT device simulator takes (see MqttDeviceSimulator)."""

    broker: Required[MqttSettings | None]  # the broker, the device's login and TLS; None: not simulated
    device_id: Required[str]
    vendor_id: str | None  # the id in the vendor's topics; default: device_id
    seed: int
    speed: float
    topic_prefix: str
    backoff_max_s: float
    clock: Clock | None  # simulated time; default: `speed` times the wall clock


class MqttDeviceSimulator:
    # Messages whose fields are the device's state, in `_values`; `set` may change them.
    STATE_MESSAGES: ClassVar[tuple[str, ...]] = ()
    # Fields the device computes itself (uptime); `set` leaves them alone.
    COMPUTED: ClassVar[frozenset[str]] = frozenset({"uptime_s"})

    def __init__(
        self,
        driver: MqttDriver,
        *,
        broker: MqttSettings | None,
        device_id: str,
        vendor_id: str | None = None,
        seed: int = 0,
        speed: float = 1.0,
        topic_prefix: str = "",
        backoff_max_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        for message in self.STATE_MESSAGES:
            driver.fields_of(message)  # KeyError naming the message when the driver lacks it
        self.driver = driver
        self.broker = broker
        self.device_id = device_id
        self.vendor_id = vendor_id or device_id
        self.speed = speed
        # Heartbeats and the device's own timers wait on it; reconnecting to the broker waits in real time.
        self.clock = clock or simulated_clock(speed)
        self.topic_prefix = topic_prefix
        self.backoff_max_s = backoff_max_s
        self.seed = seed
        # Each purpose its own stream, so when one is drawn from (garbage, traffic) the others do not shift.
        self._garbage_rng = random.Random(f"{seed}/garbage")
        self._values: dict[str, Value] = {}
        self._client: aiomqtt.Client | None = None
        self._link_wanted = asyncio.Event()
        self._link_wanted.set()
        self._drop = asyncio.Event()
        self._silent = False
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self.connected = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    @property
    def answering(self) -> bool:
        return self.connected.is_set()

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        if self.broker is None:
            log.warning("no MQTT broker: device not simulated", device=self.device_id)
            return
        self._started_at = self.clock.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"{self.driver.model}-sim {self.device_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than awaiting the task: a cancellation of stop() itself must still propagate.
            await asyncio.wait({task})

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connection())
            tg.create_task(self._heartbeats())
            self._background(tg)

    def _background(self, tg: asyncio.TaskGroup) -> None:
        """Start the device's own activity (a subclass's traffic), stopped with the device."""

    async def _connection(self) -> None:
        assert self.broker is not None
        # Reconnect jitter is not part of what a seed reproduces; it has its own unseeded stream.
        jitter = random.Random()
        delays = backoff_delays(0.05, self.backoff_max_s, jitter)
        identifier = f"sim-{self.driver.model}-{self.vendor_id}-{uuid.uuid4().hex[:6]}"
        while True:
            await self._link_wanted.wait()
            try:
                async with mqtt_client(replace(self.broker, client_id=identifier)) as client:
                    self._client = client
                    self.connected.set()
                    delays = backoff_delays(0.05, self.backoff_max_s, jitter)
                    await self._on_connect()
                    async with asyncio.TaskGroup() as tg:
                        watcher = tg.create_task(_until_disconnected(client))
                        await self._drop.wait()
                        watcher.cancel()
            except* aiomqtt.MqttError as group:
                log.info("simulated device lost its broker", device=self.device_id, error=str(group.exceptions[0]))
                self._client = None
                self.connected.clear()
                await asyncio.sleep(next(delays))
            finally:
                self._client = None
                self.connected.clear()

    async def _on_connect(self) -> None:
        """What the device says when it (re)connects: a heartbeat, at least."""
        await self.send_heartbeat()

    async def _heartbeats(self) -> None:
        while True:
            await self.clock.sleep(self.driver.heartbeat.interval_s)
            await self.send_heartbeat()

    # -- sending ------------------------------------------------------------------------------------------------

    def uptime_s(self) -> int:
        return int(self.clock.monotonic() - self._started_at)

    def message_values(self, message: str) -> dict[str, Value]:
        """The current payload of a state message."""
        fields = self.driver.fields_of(message)
        values = {name: self._values[name] for name in fields if name in self._values}
        if "uptime_s" in fields:
            values["uptime_s"] = self.uptime_s()
        return values

    async def send_heartbeat(self) -> bool:
        return await self.send(self.driver.heartbeat.message, self.message_values(self.driver.heartbeat.message))

    async def send(self, message: str, values: dict[str, Value]) -> bool:
        """Publish one message built and checked by the driver; False when the device cannot send now."""
        return await self.send_raw(message, encode(self.driver, message, values))

    async def send_raw(self, message: str, payload: bytes) -> bool:
        client = self._client
        if client is None or self._silent:
            self.dropped += 1
            return False
        topic = self.driver.topic_for(self.vendor_id, message, self.topic_prefix)
        try:
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    # -- steps ----------------------------------------------------------------------------------------------------

    def problem(self, step: Step) -> str | None:
        if isinstance(step, SetStep):
            return self._set_problem(step.point, step.value)
        if isinstance(step, _COMMON):
            return None
        return self._own_problem(step)

    def _own_problem(self, step: Step) -> str | None:
        return f"a {self.driver.kind.value} simulator cannot {step.action}"

    def _state_message(self, point: str) -> str | None:
        return next((m for m in self.STATE_MESSAGES if point in self.driver.fields_of(m)), None)

    def _set_problem(self, point: str, value: Value) -> str | None:
        message = self._state_message(point)
        if message is None or point in self.COMPUTED:
            settable = sorted(
                f for m in self.STATE_MESSAGES for f in self.driver.fields_of(m) if f not in self.COMPUTED
            )
            return f"{self.driver.model} has no settable point {point!r}; points: {settable}"
        try:
            check_value(f"{message}.{point}", self.driver.fields_of(message)[point], value)
        except ValueError as exc:
            return str(exc)
        return None

    async def perform(self, step: Step) -> None:
        match step:
            case SetStep():
                await self.set_value(step.point, step.value)
            case LinkDropStep():
                self.link_down()
            case LinkRestoreStep():
                self.link_up()
            case HeartbeatStopStep():
                self._silent = True
            case HeartbeatStartStep():
                if self._silent:
                    self._silent = False
                    await self._on_connect()
            case GarbageStep():
                await self.send_garbage(step.count)
            case GarbageStopStep():
                pass  # garbage is a burst of `count` payloads, over by now
            case _:
                await self._own_perform(step)

    async def _own_perform(self, step: Step) -> None:
        raise ValueError(self._own_problem(step) or f"cannot {step.action}")

    async def set_value(self, point: str, value: Value) -> None:
        """Override a state point and report it at once (the device's own model may change it again later)."""
        problem = self._set_problem(point, value)
        if problem is not None:
            raise ValueError(problem)
        message = self._state_message(point)
        assert message is not None
        self._values[point] = check_value(point, self.driver.fields_of(message)[point], value)
        await self.send(message, self.message_values(message))

    def link_down(self) -> None:
        """Drop off the broker and stay off until link_up."""
        self._link_wanted.clear()
        self._client = None
        self._drop.set()

    def link_up(self) -> None:
        self._drop.clear()
        self._link_wanted.set()

    async def send_garbage(self, count: int) -> int:
        """Publish `count` malformed payloads; returns how many left the device."""
        samples = {m: self.message_values(m) for m in self.STATE_MESSAGES}
        sent = 0
        for message, payload in garbage_payloads(self.driver, samples, count, self._garbage_rng):
            sent += await self.send_raw(message, payload)
        return sent


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Raise MqttError as soon as the connection drops (the message iterator is told; a publish is not)."""
    async for _ in client.messages:
        pass
