"""aiomqtt 2.x waits for acknowledgements with asyncio.wait_for, which on Python 3.11 drops a cancel that arrives in
the same loop turn as the acknowledgement (fixed in 3.12, where wait_for is built on asyncio.timeout). A task that
publishes in a loop (a simulated device's heartbeat, the gateway's publisher) then never stops, and whatever waits for
it hangs. This replaces `Client._wait_for` with the same logic on asyncio.timeout, which keeps the cancel.

Applied once, when facmon is imported; the aiomqtt version is pinned below 3, whose API differs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

import aiomqtt

T = TypeVar("T")


async def _wait_for(self: aiomqtt.Client, fut: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109 (its API)
    if timeout is None:
        timeout = self.timeout
    # aiomqtt uses math.inf for "no timeout", asyncio uses None.
    try:
        async with asyncio.timeout(None if timeout == math.inf else timeout):
            return await fut
    except TimeoutError:
        raise aiomqtt.MqttError("Operation timed out") from None


def apply() -> None:
    aiomqtt.Client._wait_for = _wait_for  # type: ignore[method-assign]
