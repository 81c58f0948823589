"""A poller told to stop stops, even when pymodbus's wait swallowed the cancel (asyncio.wait_for on Python 3.11)."""

from __future__ import annotations

import asyncio

import pytest

from collectors.modbus.link import stop_if_cancelled


async def _swallowing_wait() -> bool:
    """What wait_for on 3.11 does when its result and a cancel meet in one loop turn: returns, cancel dropped."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return False
    return True


async def test_a_swallowed_cancel_still_stops_the_task() -> None:
    async def poller() -> None:
        while True:
            await _swallowing_wait()
            stop_if_cancelled()

    task = asyncio.create_task(poller())
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_without_the_guard_the_task_polls_on() -> None:
    """The control: the same loop without the guard does not stop, so the test above can fail."""
    rounds = 0

    async def poller() -> None:
        nonlocal rounds
        while rounds < 3:
            await _swallowing_wait()
            rounds += 1

    task = asyncio.create_task(poller())
    for _ in range(3):
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
    await task
    assert rounds == 3


async def test_a_timeout_that_expired_is_not_taken_for_a_stop() -> None:
    """asyncio.timeout cancels to time out and takes its cancel back: the guard lets the poller carry on."""
    async with asyncio.timeout(0.01):
        await _swallowing_wait()
    stop_if_cancelled()
