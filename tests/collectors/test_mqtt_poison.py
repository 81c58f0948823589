"""Poison from a vendor device, through a real Mosquitto into the gateway's MQTT path: the collector, the durable
outbox and the publisher to the backbone, as the gateway wires them.

Each payload is written to stop a parser (lone surrogate escapes, bytes that are not UTF-8, nesting 20,000 deep,
1e400 and numbers of thousands of digits, NaN, duplicate keys, 5 MB, random bytes: `tests.kernel.poison`). Each must
reach the backbone as a dead letter that parses, with a bounded reason free of surrogates, and the device's next good
message must reach the backbone after it: the gateway is still up. A retained poison is met again on every restart,
and every restart gets past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from hypothesis import given

from collectors.mqtt.collector import BrokerSettings, MqttCollector, MqttDevice
from collectors.registry import mqtt_driver
from facmon.kernel.batches import decode_state
from facmon.kernel.clock import SystemClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import MAX_REASON_CHARS, DeadLetter, DeviceRef, Reading
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import DEAD_LETTER, ROOT
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from tests.collectors.mqtt_support import wait_for_event
from tests.kernel.poison import live, poison
from tests.simulators.support import wait_until

HEARTBEAT = {"uptime_s": 1, "cycles": 1, "temperature_c": 20.0}
EXAMPLES = 40


def _gate(site: str) -> MqttDevice:
    driver = mqtt_driver("barrier-a")
    return MqttDevice(
        DeviceRef(site=site, building="b1", device="g1", kind=driver.kind, model="barrier-a"), driver, "G01", 60
    )


@dataclass
class Backbone:
    """What the gateway published for one site: dead letters and readings, in arrival order."""

    letters: list[DeadLetter] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)

    def cycles(self) -> list[object]:
        return [r.values.get("cycles") for r in self.readings]


@contextlib.asynccontextmanager
async def gateway(port: int, site: str, prefix: str, state: Path) -> AsyncIterator[tuple[Backbone, MqttCollector]]:
    """The collector of one barrier feeding an outbox and a publisher, and a backbone listener, for the block."""
    backbone, metrics = Backbone(), Counters()
    with Outbox(state / f"outbox-{uuid.uuid4().hex[:6]}.sqlite", metrics=metrics) as outbox:
        publisher = Publisher(
            outbox, mqtt=MqttSettings("127.0.0.1", port), client_id=f"gw-{uuid.uuid4().hex[:8]}", metrics=metrics
        )
        collector = MqttCollector(
            site,
            [_gate(site)],
            BrokerSettings("127.0.0.1", port, topic_prefix=prefix, backoff_max_s=0.2),
            emit=publisher.emit,
            reject=publisher.reject,
            clock=SystemClock(),
            metrics=metrics,
            store=publisher.store,
        )
        async with aiomqtt.Client("127.0.0.1", port) as listener:
            await listener.subscribe([(f"{DEAD_LETTER}/{site}/#", 1), (f"{ROOT}/{site}/+/+/state", 1)])
            tasks = [
                asyncio.create_task(_listen(listener, backbone)),
                asyncio.create_task(publisher.run()),
                collector_task := asyncio.create_task(collector.run()),
            ]
            try:
                await wait_for_event(collector.connected, collector_task, "the collector to subscribe")
                yield backbone, collector
                assert not any(t.done() for t in tasks), "a part of the gateway stopped"
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


async def _listen(client: aiomqtt.Client, backbone: Backbone) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        if message.topic.value.startswith(DEAD_LETTER):
            backbone.letters.append(DeadLetter.model_validate_json(message.payload))
        else:
            backbone.readings += decode_state(message.topic.value, message.payload).readings


def _check_letter(letter: DeadLetter, topic: str) -> None:
    assert letter.topic == topic
    assert letter.reason.startswith("g1: heartbeat: ") or letter.reason.startswith("g1: heartbeat."), letter.reason
    assert len(letter.reason) <= MAX_REASON_CHARS
    letter.reason.encode("utf-8")  # no lone surrogate: it can be logged and stored anywhere
    assert (letter.payload is None) != (letter.payload_base64 is None)


async def _poison_then_good(port: int, site: str, prefix: str, state: Path, payload: bytes, retain: bool) -> None:
    topic = f"{prefix}/vendor/barrier/G01/heartbeat"
    async with gateway(port, site, prefix, state) as (backbone, _), aiomqtt.Client("127.0.0.1", port) as vendor:
        await vendor.publish(topic, payload, qos=1, retain=retain)
        await vendor.publish(topic, json.dumps({**HEARTBEAT, "cycles": 7}), qos=1)
        await wait_until(lambda: backbone.cycles() == [7] and len(backbone.letters) >= 1, what="poison, then good")
        [letter] = backbone.letters
        _check_letter(letter, topic)
        if retain:
            await vendor.publish(topic, b"", qos=1, retain=True)


def test_poison_is_dead_lettered_and_the_next_message_still_arrives(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    kinds: set[str] = set()
    runs = itertools.count()

    @live(EXAMPLES)
    @given(case=poison(HEARTBEAT))
    def check(case: tuple[str, bytes]) -> None:
        kind, payload = case
        n = next(runs)
        asyncio.run(
            _poison_then_good(mosquitto.port, f"{topic_prefix}-{n}", f"{topic_prefix}/{n}", tmp_path, payload, False)
        )
        kinds.add(kind)

    check()
    assert len(kinds) >= 8, kinds


async def test_a_retained_poison_is_met_on_every_restart_and_passed(
    mosquitto: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    # The 54-byte card of the attack: a lone surrogate escape, retained, so every new subscription gets it again.
    topic = f"{topic_prefix}/vendor/barrier/G01/heartbeat"
    poison_payload = b'{"uptime_s": 1, "cycles": 1, "temperature_c": "\\ud800"}'
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as vendor:
        await vendor.publish(topic, poison_payload, qos=1, retain=True)
        try:
            for restart in range(3):
                async with gateway(mosquitto.port, topic_prefix, topic_prefix, tmp_path) as (backbone, _):
                    await wait_until(lambda: len(backbone.letters) == 1, what=f"the retained poison, start {restart}")
                    await vendor.publish(topic, json.dumps({**HEARTBEAT, "cycles": restart}), qos=1)
                    await wait_until(lambda: backbone.cycles() == [restart], what="the good message after it")  # noqa: B023
                [letter] = backbone.letters
                _check_letter(letter, topic)
                assert letter.payload == poison_payload.decode()
                assert "lone surrogate" in letter.reason
        finally:
            await vendor.publish(topic, b"", qos=1, retain=True)
