"""Waiting on a clock: the system clock sleeps for real, the scaled one faster, the fake one until it is advanced."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from facmon.kernel.clock import FakeClock, ScaledClock, SystemClock

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_system_clock_sleeps_in_real_seconds() -> None:
    clock = SystemClock()
    started = time.monotonic()
    await clock.sleep(0.05)
    await clock.sleep_until(clock.monotonic() + 0.05)
    await clock.sleep(-1)  # nothing to wait for
    await clock.sleep_until(0.0)
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_scaled_clock_sleeps_its_own_seconds_faster() -> None:
    clock = ScaledClock(T0, speed=100)
    started = time.monotonic()
    await clock.sleep(5)  # 50 ms of real time
    assert clock.monotonic() >= 5
    await clock.sleep_until(clock.monotonic() + 5)
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_a_fake_sleeper_wakes_only_when_time_reaches_its_deadline() -> None:
    clock = FakeClock(T0)
    woke: list[datetime] = []

    async def sleeper() -> None:
        await clock.sleep(10)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await clock.settle()
    assert clock.sleeping == [10.0]
    clock.advance(9.999)
    await clock.settle()
    assert woke == []
    assert not task.done()
    await clock.advance_and_settle(timedelta(milliseconds=1))
    assert woke == [T0 + timedelta(seconds=10)]
    assert task.done()
    assert clock.sleeping == []


async def test_sleepers_wake_in_deadline_order_once_for_a_jump() -> None:
    clock = FakeClock(T0)
    order: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        order.append(name)

    tasks = [asyncio.create_task(sleeper(name, s)) for name, s in (("late", 30), ("early", 5), ("middle", 20))]
    await clock.settle()
    clock.advance(60)  # synchronous, as before: the woken tasks run when the test next yields
    assert order == []
    await clock.settle()
    assert order == ["early", "middle", "late"]
    await asyncio.gather(*tasks)


async def test_a_deadline_already_reached_does_not_wait() -> None:
    clock = FakeClock(T0)
    clock.advance(100)
    await clock.sleep_until(50)
    await clock.sleep(0)
    await clock.sleep(-5)
    assert clock.sleeping == []


async def test_a_periodic_loop_ticks_once_per_advance_at_the_new_time() -> None:
    clock = FakeClock(T0)
    seen: list[float] = []

    async def every_second() -> None:
        while True:
            next_at = clock.monotonic() + 1
            seen.append(clock.monotonic())
            await clock.sleep_until(next_at)

    task = asyncio.create_task(every_second())
    try:
        await clock.settle()
        for step in (0.5, 0.5, 3.0, 1.0):
            await clock.advance_and_settle(step)
        assert seen == [0.0, 1.0, 4.0, 5.0]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert clock.sleeping == []


async def test_settle_waits_for_work_in_threads() -> None:
    clock = FakeClock(T0)
    done: list[float] = []

    async def loop() -> None:
        while True:
            await clock.sleep(1)
            await asyncio.to_thread(time.sleep, 0.05)
            done.append(clock.monotonic())

    task = asyncio.create_task(loop())
    try:
        await clock.settle()
        await clock.advance_and_settle(1)
        assert done == [1.0]
    finally:
        task.cancel()


async def test_settle_gives_up_on_a_task_that_never_sleeps_again() -> None:
    clock = FakeClock(T0)
    stuck = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(1)
        await stuck.wait()

    task = asyncio.create_task(sleeper())
    try:
        await clock.settle()
        with pytest.raises(TimeoutError):
            await clock.advance_and_settle(1, timeout_s=0.1)
    finally:
        task.cancel()


def test_advance_needs_no_event_loop_and_never_goes_back() -> None:
    clock = FakeClock(T0)
    clock.advance(timedelta(minutes=1))
    assert (clock.now(), clock.monotonic()) == (T0 + timedelta(minutes=1), 60.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
