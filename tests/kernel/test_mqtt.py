"""facmon's MQTT client: a cancel that meets an acknowledgement in the same loop turn must still cancel, and with
manual acknowledgement a message is acknowledged to the broker only when the client says so."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from facmon.kernel.daemons import Mosquitto
from facmon.kernel.mqtt import MqttClient, MqttSettings, mqtt_client


async def test_a_cancel_meeting_an_acknowledgement_is_kept() -> None:
    client = mqtt_client(MqttSettings("127.0.0.1", 1))  # never connected: only its waiting is used
    for _ in range(20):
        acknowledged: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(client._wait_for(acknowledged, timeout=5))
        await asyncio.sleep(0)  # waiting for the acknowledgement
        acknowledged.set_result(1)
        waiting.cancel()  # in the same turn: with asyncio.wait_for on 3.11 this cancel was lost
        with pytest.raises(asyncio.CancelledError):
            await waiting


async def test_a_missing_acknowledgement_is_an_mqtt_error() -> None:
    client = mqtt_client(MqttSettings("127.0.0.1", 1))
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        await client._wait_for(never, timeout=0.05)


async def test_a_publishing_loop_stops_whenever_it_is_cancelled(mosquitto: Mosquitto, topic_prefix: str) -> None:
    async with mqtt_client(MqttSettings("127.0.0.1", mosquitto.port)) as client:

        async def heartbeat() -> None:
            while True:
                await client.publish(f"{topic_prefix}/hb", b"1", qos=1)

        for delay in (0.0, 0.001, 0.003, 0.01, 0.02, 0.05) * 5:
            task = asyncio.create_task(heartbeat())
            await asyncio.sleep(delay)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"the publishing loop ignored a cancel after {delay} s"


async def _next(client: MqttClient) -> aiomqtt.Message:
    async with asyncio.timeout(5):
        return await anext(aiter(client.messages))


async def _broker_has_read_all_sent(client: MqttClient, topic: str) -> None:
    """Return once the broker has read every packet `client` sent so far (a PUBACK it owes the broker included).

    A QoS 1 publish of the client's own: its packets leave in order on one connection and the broker reads them in
    order, so when this publish's PUBACK comes back, everything queued before it has been read."""
    async with asyncio.timeout(5):
        await client.publish(topic, b"", qos=1)


@pytest.mark.parametrize("protocol", [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5])
async def test_only_an_unacknowledged_message_is_delivered_again(
    mosquitto: Mosquitto, topic_prefix: str, protocol: aiomqtt.ProtocolVersion
) -> None:
    topic = f"{topic_prefix}/events"
    settings = MqttSettings(
        "127.0.0.1", mosquitto.port, client_id=f"{topic_prefix}-{uuid.uuid4().hex[:6]}", clean=False, protocol=protocol
    )
    consumer = mqtt_client(settings, manual_ack=True)
    async with consumer:
        await consumer.subscribe(topic, qos=1)
        async with mqtt_client(MqttSettings("127.0.0.1", mosquitto.port)) as publisher:
            await publisher.publish(topic, b"acked", qos=1)
            await publisher.publish(topic, b"not acked", qos=1)
        first = await _next(consumer)
        assert first.payload == b"acked"
        consumer.ack(first)
        assert (await _next(consumer)).payload == b"not acked"
        await _broker_has_read_all_sent(consumer, f"{topic_prefix}/barrier")  # the PUBACK of the first
    # The same persistent session again: the broker still owes the message that was never acknowledged.
    again = mqtt_client(settings, manual_ack=True)
    async with again:
        redelivered = await _next(again)
        assert redelivered.payload == b"not acked"
        again.ack(redelivered)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await anext(aiter(again.messages))


async def test_without_manual_ack_paho_acknowledges_on_receipt(mosquitto: Mosquitto, topic_prefix: str) -> None:
    topic = f"{topic_prefix}/events"
    settings = MqttSettings("127.0.0.1", mosquitto.port, client_id=f"{topic_prefix}-auto", clean=False)
    async with mqtt_client(settings) as consumer:
        await consumer.subscribe(topic, qos=1)
        async with mqtt_client(MqttSettings("127.0.0.1", mosquitto.port)) as publisher:
            await publisher.publish(topic, b"once", qos=1)
        message = await _next(consumer)
        consumer.ack(message)  # nothing to do: already acknowledged
        await _broker_has_read_all_sent(consumer, f"{topic_prefix}/barrier")  # the PUBACK paho sent on receipt
    async with mqtt_client(settings) as again:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await anext(aiter(again.messages))


@pytest.mark.parametrize("protocol", [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5])
async def test_a_burst_read_ahead_arrives_whole_in_order_and_only_its_unacknowledged_part_again(
    mosquitto: Mosquitto, topic_prefix: str, protocol: aiomqtt.ProtocolVersion
) -> None:
    """Packets cut across reads of the socket (300 messages of up to 2 KB, several reads of READ_AHEAD), QoS 0 and 1,
    some with MQTT 5 properties (decoded by paho), arrive whole and in order; `ack_many` acknowledges exactly the
    messages it is given, in one write."""
    topic = f"{topic_prefix}/burst"
    settings = MqttSettings(
        "127.0.0.1", mosquitto.port, client_id=f"{topic_prefix}-{uuid.uuid4().hex[:6]}", clean=False, protocol=protocol
    )
    sent = [(b"%05d" % i) + b"x" * (i * 37 % 2000) for i in range(300)]
    qos = [0 if i % 10 == 3 and i < 200 else 1 for i in range(300)]
    consumer = mqtt_client(settings, manual_ack=True)
    async with consumer:
        await consumer.subscribe(topic, qos=1)
        publisher = mqtt_client(MqttSettings("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5))
        async with publisher:
            for i, payload in enumerate(sent):
                properties = None
                if i % 50 == 7:
                    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    properties.UserProperty = ("n", str(i))
                await publisher.publish(topic, payload, qos=qos[i], properties=properties)
        # The broker sends only so many unacknowledged messages at once: acknowledge ten at a time.
        got: list[aiomqtt.Message] = []
        while len(got) < 200:
            chunk = [await _next(consumer) for _ in range(10)]
            consumer.ack_many(chunk)
            got += chunk
        unacked = [await _next(consumer) for _ in range(10)]
        # The broker may pass a QoS 0 message ahead of QoS 1 messages held for its window; each QoS keeps its order.
        for level in (0, 1):
            assert [m.payload for m in got + unacked if m.qos == level] == [
                p for p, q in zip(sent[:210], qos, strict=False) if q == level
            ]
        if protocol == aiomqtt.ProtocolVersion.V5:
            with_properties = {m.payload[:5]: m.properties for m in got if m.properties is not None}
            assert {k: p.UserProperty for k, p in with_properties.items()} == {
                b"%05d" % i: [("n", str(i))] for i in range(200) if i % 50 == 7
            }
        await _broker_has_read_all_sent(consumer, f"{topic_prefix}/barrier")
    again = mqtt_client(settings, manual_ack=True)
    async with again:
        redelivered: list[aiomqtt.Message] = []
        while len(redelivered) < 100:
            chunk = [await _next(again) for _ in range(10)]
            again.ack_many(chunk)
            redelivered += chunk
        assert [m.payload for m in redelivered] == sent[200:]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await anext(aiter(again.messages))


@pytest.mark.parametrize("protocol", [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5])
async def test_bursts_take_what_arrived_in_order_and_end_when_the_broker_goes(
    mosquitto_factory: Callable[[], Mosquitto], topic_prefix: str, protocol: aiomqtt.ProtocolVersion
) -> None:
    """`burst` hands over what arrived, oldest first, at most its limit, plain publishes (taken from the bytes read)
    and those with MQTT 5 properties (decoded by paho) in the order sent; it waits when nothing has arrived, and
    raises MqttError, as the iterator does, when the connection ends while it waits."""
    broker = mosquitto_factory()
    topic = f"{topic_prefix}/bursts"
    consumer = mqtt_client(MqttSettings("127.0.0.1", broker.port, protocol=protocol), manual_ack=True)
    sent = [b"%04d" % i for i in range(400)]
    async with consumer:
        await consumer.subscribe(topic, qos=1)
        async with mqtt_client(
            MqttSettings("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5)
        ) as publisher:
            for i, payload in enumerate(sent):
                properties = None
                if i % 37 == 5:
                    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    properties.UserProperty = ("n", str(i))
                await publisher.publish(topic, payload, qos=i % 2, properties=properties)
        got: list[aiomqtt.Message] = []
        sizes = []
        while len(got) < len(sent):
            async with asyncio.timeout(5):
                burst = await consumer.burst(25)
            sizes.append(len(burst))
            consumer.ack_many(burst)
            got += burst
        assert max(sizes) <= 25
        # The broker may pass a QoS 0 message ahead of QoS 1 messages held for its window; each QoS keeps its order.
        for level in (0, 1):
            assert [m.payload for m in got if m.qos == level] == sent[level::2]
        assert all(m.topic.value == topic for m in got)
        if protocol == aiomqtt.ProtocolVersion.V5:
            with_properties = sorted(m.payload for m in got if m.properties is not None)
            assert with_properties == [p for i, p in enumerate(sent) if i % 37 == 5]
        waiting = asyncio.create_task(consumer.burst(25))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(10):
                await waiting
