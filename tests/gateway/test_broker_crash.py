"""Mosquitto killed with SIGKILL under a steady flow and started again on the same port and folder: every message
the gateway published reaches a subscriber with a persistent session, because the outbox keeps what the broker
acknowledged for its replay window and sends it again after reconnecting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from tests.gateway.conftest import eventually, reading, running
from tests.support import unbatched

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def _subscribe_once(port: int, topic: str, client_id: str) -> None:
    """Make a persistent session at QoS 1, then go away: the broker queues what it misses."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, clean_session=False) as client:
        await client.subscribe(topic, qos=1)


async def _collect(port: int, client_id: str, want: int) -> set[int]:
    """What the session's queue holds, until `want` distinct numbers came or nothing more comes for 3 s."""
    seen: set[int] = set()
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, clean_session=False) as client:
        while len(seen) < want:
            try:
                async with asyncio.timeout(3):
                    message = await anext(client.messages)
            except TimeoutError:
                break
            assert isinstance(message.payload, bytes)
            for _, payload in unbatched(message.topic.value, message.payload):
                seen.add(json.loads(payload)["values"]["seq"])
    return seen


def _kill_9(broker: Mosquitto) -> None:
    assert broker.proc is not None
    broker.proc.kill()
    broker.proc.wait()


async def test_a_broker_killed_under_a_steady_flow_loses_nothing_the_gateway_published(
    restartable_mosquitto: Callable[[], Mosquitto], topic_prefix: str, tmp_path: Path
) -> None:
    broker = restartable_mosquitto()
    topic = f"facmon/v1/{topic_prefix}/#"
    await _subscribe_once(broker.port, topic, f"away-{topic_prefix}")
    # A clean stop saves the session, so only what happens after it depends on the autosave.
    await asyncio.to_thread(broker.stop)
    await asyncio.to_thread(broker.start)
    metrics = Counters()
    total = 0
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters(), replay_window_s=60.0) as outbox:
        publisher = Publisher(
            outbox, mqtt=MqttSettings("127.0.0.1", broker.port), client_id="gw", metrics=metrics, backoff_max_s=0.2
        )

        def flow(n: int) -> None:
            nonlocal total
            outbox.put_many(
                [reading(topic_prefix, f"e{s % 5}", ts=T0 + timedelta(milliseconds=s), seq=s) for s in range(total, n)]
            )
            total = n

        async with running(publisher.run(), "publisher"):
            await eventually(publisher.connected.is_set, what="the publisher connected")
            for step in range(10):
                flow(total + 100)
                await eventually(lambda: outbox.size() == 0, what=f"batch {step} acknowledged")
            # Killed right after its PUBACKs, before its next autosave: what it took is in its memory only.
            await asyncio.to_thread(_kill_9, broker)
            flow(total + 100)  # the flow goes on while the broker is down
            await asyncio.to_thread(broker.start)
            flow(total + 100)
            await eventually(lambda: metrics.get("gateway_connects") >= 2, what="the publisher back")
            await eventually(lambda: outbox.size() == 0, what="everything acknowledged")
            await eventually(publisher.idle.is_set, what="the replay done")
    seen = await _collect(broker.port, f"away-{topic_prefix}", total)
    assert sorted(set(range(total)) - seen) == []
    assert metrics.get("gateway_replayed") >= 1000
