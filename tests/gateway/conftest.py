"""Helpers for tests that wait on real I/O: poll with a deadline, run a service as a task that cannot leak, and a
real MQTT subscriber that records what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiomqtt
import pytest

from facmon.kernel.daemons import Mosquitto
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value
from tests.support import unbatched

T = TypeVar("T")


@pytest.fixture
def restartable_mosquitto(mosquitto_factory: Callable[[], Mosquitto]) -> Callable[[], Mosquitto]:
    """`mosquitto_factory`: brokers whose persistent sessions survive a restart.

    facmon.kernel.daemons.Mosquitto keeps the user it was started by (it does not switch to `mosquitto` when started as
    root), so it can always write its persistence file under pytest's temporary folders.
    """
    return mosquitto_factory


async def eventually(check: Callable[[], T | Awaitable[T]], *, what: str, timeout_s: float = 10.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        result = check()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, object], name: str) -> AsyncIterator[asyncio.Task[object]]:
    """Run `coro` as a task for the block; cancelled and awaited at its end, so errors surface and nothing leaks."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def reading(site: str, device: str = "e1", *, ts: datetime | None = None, **values: Value) -> Reading:
    ref = DeviceRef(site=site, building="b1", device=device, kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    return Reading(ref=ref, ts=ts or datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=1), values=values)


class Subscriber:
    """A real MQTT client with a persistent session (so it misses nothing across a broker restart) and reconnects; a
    batch of readings is recorded as each of its readings on its device's topic."""

    def __init__(self, port: int, topic: str, client_id: str) -> None:
        self.port = port
        self.topic = topic
        self.client_id = client_id
        self.received: list[tuple[str, bytes]] = []
        self.publishes: list[str] = []  # the topic of each message as it came (a batch once)
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        client = aiomqtt.Client("127.0.0.1", self.port, identifier=self.client_id, clean_session=False)
        while True:
            try:
                async with client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.publishes.append(message.topic.value)
                        self.received += unbatched(message.topic.value, message.payload)
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)
