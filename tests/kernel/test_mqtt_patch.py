"""A cancel that meets an acknowledgement in the same loop turn must still cancel (see facmon.kernel.mqtt_patch)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

import facmon  # noqa: F401  (applies the patch)
from facmon.kernel.daemons import Mosquitto


async def test_a_cancel_meeting_an_acknowledgement_is_kept() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)  # never connected: only its waiting is used
    for _ in range(20):
        acknowledged: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(client._wait_for(acknowledged, timeout=5))
        await asyncio.sleep(0)  # waiting for the acknowledgement
        acknowledged.set_result(1)
        waiting.cancel()  # in the same turn: with asyncio.wait_for on 3.11 this cancel was lost
        with pytest.raises(asyncio.CancelledError):
            await waiting


async def test_a_missing_acknowledgement_is_an_mqtt_error() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        await client._wait_for(never, timeout=0.05)


async def test_a_publishing_loop_stops_whenever_it_is_cancelled(mosquitto: Mosquitto, topic_prefix: str) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:

        async def heartbeat() -> None:
            while True:
                await client.publish(f"{topic_prefix}/hb", b"1", qos=1)

        for delay in (0.0, 0.001, 0.003, 0.01, 0.02, 0.05) * 5:
            task = asyncio.create_task(heartbeat())
            await asyncio.sleep(delay)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"the publishing loop ignored a cancel after {delay} s"
