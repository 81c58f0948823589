"""Helpers for tests of MQTT devices against a real Mosquitto: a collector that records what it emits and rejects,
run as a task that cannot leak, and a vendor-side client to publish as a device would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiomqtt

from collectors.mqtt.collector import BrokerSettings, MqttCollector, MqttDevice
from collectors.registry import mqtt_driver
from facmon.kernel.clock import Clock, SystemClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Event, EventType, Reading

SITE = "s1"


def mqtt_device(device: str, model: str, vendor_id: str, grace_s: float = 60.0) -> MqttDevice:
    driver = mqtt_driver(model)
    ref = DeviceRef(site=SITE, building="b1", device=device, kind=driver.kind, model=model)
    return MqttDevice(ref, driver, vendor_id, grace_s)


@dataclass
class Recorder:
    """An Emit and a Reject that keep everything, in arrival order."""

    out: list[Reading | Event | DeadLetter] = field(default_factory=list)

    async def emit(self, message: Reading | Event) -> None:
        self.out.append(message)

    async def reject(self, letter: DeadLetter) -> None:
        self.out.append(letter)

    def readings(self, device: str) -> list[Reading]:
        return [m for m in self.out if isinstance(m, Reading) and m.ref.device == device]

    def events(self, device: str, *types: EventType) -> list[Event]:
        return [
            m for m in self.out if isinstance(m, Event) and m.ref.device == device and (not types or m.type in types)
        ]

    def rejected(self) -> list[DeadLetter]:
        return [m for m in self.out if isinstance(m, DeadLetter)]


def make_collector(
    port: int,
    prefix: str,
    devices: Sequence[MqttDevice],
    recorder: Recorder,
    *,
    clock: Clock | None = None,
    metrics: Counters | None = None,
) -> MqttCollector:
    return MqttCollector(
        SITE,
        devices,
        BrokerSettings("127.0.0.1", port, topic_prefix=prefix, backoff_max_s=0.2),
        emit=recorder.emit,
        reject=recorder.reject,
        clock=clock or SystemClock(),
        metrics=metrics or Counters(),
        # A persistent session each: one test's subscriptions and queued messages never reach another's.
        client_id=f"facmon-vendor-{SITE}-{prefix}",
    )


@contextlib.asynccontextmanager
async def collecting(collector: MqttCollector) -> AsyncIterator[MqttCollector]:
    """Run the collector for the block, subscribed before the block starts; cancelled and awaited at its end."""
    task = asyncio.create_task(collector.run(), name="mqtt-collector")
    try:
        await wait_for_event(collector.connected, task, "the collector to subscribe")
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_event(event: asyncio.Event, task: asyncio.Task[object], what: str, timeout_s: float = 10) -> None:
    waiter = asyncio.create_task(event.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()  # surfaces the task's error
        raise AssertionError(f"the task ended while waiting for {what}")
    if waiter not in done:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextlib.asynccontextmanager
async def vendor_client(port: int) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        yield client


def kinds(out: Sequence[Reading | Event | DeadLetter]) -> list[str]:
    """A compact view of outputs for assertion messages."""
    return [
        "rejected" if isinstance(m, DeadLetter) else "reading" if isinstance(m, Reading) else m.type.value for m in out
    ]
