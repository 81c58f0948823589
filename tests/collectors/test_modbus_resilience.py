"""Modbus devices that go away, answer slowly or answer wrongly, against real pymodbus servers on free ports.

- A controller back on the line is read again within two polls, however long it was away (the reconnect backoff
  is capped at the poll interval).
- A controller answering in over half its timeout, a few polls in a row, is reported slow (status `comm_slow`)
  while it still answers, and no longer slow once it answers quickly again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.registry import modbus_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceKind, DeviceRef, Event, EventType, ModbusAddress, Reading
from simulators.endpoint import ModbusEndpoint
from tests.collectors.support import FrameSource
from tests.simulators.support import wait_until

DRIVER = modbus_driver("elev-gb-a")


class DelayedSource(FrameSource):
    """A unit whose every answer waits `delay_s` (the test changes it)."""

    delay_s = 0.0

    def response_delay_s(self) -> float:
        return self.delay_s


@dataclass
class Watched:
    """A poller running as a task, with what it emitted and how many polls it had started at each emission."""

    device: str
    metrics: Counters
    clock: FakeClock
    readings: list[tuple[int, Reading]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)

    def polls(self) -> int:
        return self.metrics.get("modbus_polls", device=self.device)

    async def emit(self, message: Reading | Event) -> None:
        if isinstance(message, Reading):
            self.readings.append((self.polls(), message))
        else:
            self.events.append(message)

    async def reject(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def of(self, type_: EventType, code: str | None = None) -> list[Event]:
        return [e for e in self.events if e.type is type_ and (code is None or e.code == code)]


@contextlib.asynccontextmanager
async def watching(device: str, port: int, timing: PollTiming, links: ModbusLinks) -> AsyncIterator[Watched]:
    watched = Watched(device, Counters(), FakeClock())
    ref = DeviceRef(site="s", building="b", device=device, kind=DeviceKind.ELEVATOR, model=DRIVER.model)
    poller = ModbusPoller(
        ref,
        ElevatorInterpreter(DRIVER),
        ModbusAddress(host="127.0.0.1", port=port),
        timing,
        emit=watched.emit,
        reject=watched.reject,
        clock=watched.clock,
        metrics=watched.metrics,
        links=links,
    )
    task = asyncio.create_task(poller.run())
    try:
        yield watched
        assert not task.done(), "the poller stopped"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_controller_back_on_the_line_is_read_within_two_polls() -> None:
    port = free_port()
    endpoint = ModbusEndpoint("127.0.0.1", port, [FrameSource(DRIVER)])
    await endpoint.start()
    # The default backoff cap (30 s) stands: the poll interval caps it.
    timing = PollTiming(interval_s=0.1, comm_grace_s=3.0, timeout_s=0.5)
    try:
        async with watching("e1", port, timing, ModbusLinks()) as watched:
            await wait_until(lambda: len(watched.readings) == 1, what="a first reading")
            for away in (1, 2, 3):
                await endpoint.stop()
                failures = watched.metrics.get("modbus_poll_failures", device="e1")
                # Away for a few seconds: long enough for a backoff doubling from 0.5 s to reach seconds.
                await wait_until(
                    lambda: watched.metrics.get("modbus_poll_failures", device="e1") >= failures + 10 * away,  # noqa: B023
                    what="failed polls",
                    timeout_s=10,
                )
                count = len(watched.readings)
                await endpoint.start()
                started = watched.polls()
                await wait_until(lambda: len(watched.readings) > count, what=f"a reading after outage {away}")  # noqa: B023
                polls, _ = watched.readings[count]
                assert polls - started <= 2, f"read {polls - started} polls after the controller came back"
    finally:
        await endpoint.stop()


async def test_a_slow_controller_is_reported_slow_before_it_is_lost_and_in_time_again() -> None:
    port = free_port()
    source = DelayedSource(DRIVER)
    endpoint = ModbusEndpoint("127.0.0.1", port, [source])
    await endpoint.start()
    # Answers in 0.3 s against a 0.5 s timeout: in time, but over half of it.
    timing = PollTiming(interval_s=0.05, comm_grace_s=3.0, timeout_s=0.5)
    try:
        async with watching("e1", port, timing, ModbusLinks()) as watched:
            await wait_until(lambda: len(watched.readings) >= 3, what="quick readings")
            assert not watched.of(EventType.STATUS, "comm_slow")
            source.delay_s = 0.3
            await wait_until(lambda: bool(watched.of(EventType.STATUS, "comm_slow")), what="comm_slow", timeout_s=10)
            [slow] = watched.of(EventType.STATUS, "comm_slow")
            assert slow.data["active"] is True
            assert 0.25 < float(slow.data["response_s"]) < 0.5
            assert slow.data["timeout_s"] == 0.5
            # Slow, not lost: every poll still reads.
            count = len(watched.readings)
            await wait_until(lambda: len(watched.readings) >= count + 2, what="slow readings", timeout_s=10)
            source.delay_s = 0.0
            await wait_until(lambda: len(watched.of(EventType.STATUS, "comm_slow")) == 2, what="in time again")
            assert watched.of(EventType.STATUS, "comm_slow")[1].data["active"] is False
            assert not watched.of(EventType.COMM_LOST)
            assert watched.metrics.get("modbus_poll_failures") == 0
    finally:
        await endpoint.stop()


async def test_answers_within_half_the_timeout_are_not_slow() -> None:
    port = free_port()
    source = DelayedSource(DRIVER)
    source.delay_s = 0.05
    endpoint = ModbusEndpoint("127.0.0.1", port, [source])
    await endpoint.start()
    try:
        async with watching("e1", port, PollTiming(0.05, 3.0, timeout_s=1.0), ModbusLinks()) as watched:
            await wait_until(lambda: len(watched.readings) >= 10, what="ten readings")
            assert not watched.of(EventType.STATUS, "comm_slow")
    finally:
        await endpoint.stop()
