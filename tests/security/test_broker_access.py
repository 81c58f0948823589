"""Who may connect to the generated broker, and what each login may publish and read."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiomqtt
import pytest

from facmon.kernel.mqtt import MqttClient, MqttSettings, mqtt_client
from tests.security.conftest import OBSERVER, SecureBroker
from tests.support import eventually

DEADLINE_S = 10.0
# CONNACK reason codes as paho 2 reports them (MQTT 5 values, also for MQTT 3.1.1's 4 and 5).
BAD_LOGIN, NOT_AUTHORISED = 134, 135


@dataclass(frozen=True)
class Refusal:
    error: type[BaseException]
    text: str
    rc: object  # the CONNACK reason code of a refused login, else None


async def _refused(settings: MqttSettings) -> Refusal:
    """What connecting with `settings` fails with (the test fails if it connects)."""
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError, OSError)) as failure:
        async with mqtt_client(settings):
            pass
    refusal = Refusal(type(failure.value), str(failure.value), getattr(failure.value, "rc", None))
    # The traceback holds the socket paho left open: let it go, so it is reported here, in the test that made it
    # (see _PAHO_HANDSHAKE), not in a later one.
    del failure
    gc.collect()
    return refusal


# paho leaves the TLS socket of a failed handshake (wrong CA, wrong name) to the garbage collector, which closes it
# with a ResourceWarning; the refusal is what these tests are about.
_PAHO_HANDSHAKE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def test_an_anonymous_client_cannot_connect(secure_broker: SecureBroker) -> None:
    anonymous = MqttSettings("localhost", secure_broker.port, tls_ca=str(secure_broker.pki.ca))
    assert (await _refused(anonymous)).rc == NOT_AUTHORISED
    # Nor on the plain loopback listener: the logins are the broker's, not a listener's.
    assert (await _refused(MqttSettings("127.0.0.1", secure_broker.plain_port))).rc == NOT_AUTHORISED


async def test_a_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    refusal = await _refused(replace(secure_broker.login("historian"), password="not-the-password"))
    assert refusal.rc in (BAD_LOGIN, NOT_AUTHORISED), refusal


@_PAHO_HANDSHAKE
async def test_a_client_trusting_another_ca_is_refused(secure_broker: SecureBroker) -> None:
    settings = replace(secure_broker.login("historian"), tls_ca=str(secure_broker.pki.other_ca))
    refusal = await _refused(settings)
    assert "certificate verify failed" in refusal.text.lower(), refusal


@_PAHO_HANDSHAKE
async def test_the_hostname_is_checked_unless_explicitly_not(secure_broker: SecureBroker) -> None:
    # The broker's certificate names localhost; 127.0.0.1 is the same broker under a name it does not carry.
    by_address = secure_broker.login("historian", host="127.0.0.1")
    refusal = await _refused(by_address)
    assert "mismatch" in refusal.text, refusal
    async with mqtt_client(replace(by_address, tls_insecure=True)):
        pass  # the opt-out skips the name, not the chain (the test above)
    async with mqtt_client(secure_broker.login("historian")):
        pass


@contextlib.asynccontextmanager
async def _observing(broker: SecureBroker, topic: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """(topic, payload) of what arrives on `topic` (the observer reads everything), while the block runs."""
    seen: list[tuple[str, bytes]] = []
    async with mqtt_client(broker.login(OBSERVER)) as client:
        await client.subscribe(topic, qos=1)

        async def read() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seen.append((message.topic.value, message.payload))

        task = asyncio.create_task(read())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _arrived(seen: list[tuple[str, bytes]], sent: tuple[str, bytes]) -> None:
    await eventually(lambda: sent in seen, DEADLINE_S, f"{sent} at the observer")


async def _publish(client: MqttClient, topic: str, payload: bytes = b"{}") -> None:
    await client.publish(topic, payload, qos=1)  # the PUBACK: the broker has taken (or dropped) it


async def test_each_login_publishes_only_its_own_topics(secure_broker: SecureBroker, topic_prefix: str) -> None:
    a, b = f"{topic_prefix}-a", f"{topic_prefix}-b"
    allowed = [
        (f"gateway-{a}", f"facmon/v1/{a}/elevator/e1/event"),
        (f"gateway-{a}", f"facmon/v1/_dead/{a}/e1"),
        (f"devices-{a}", f"vendor/barrier/{a}-g1/card"),
        ("notifier", f"facmon/v1/{a}/push/tech-a"),
        ("rules", f"facmon/v1/_dead/{a}/ghost"),
    ]
    refused = [
        (f"gateway-{a}", f"facmon/v1/{b}/elevator/e1/event"),
        (f"gateway-{a}", f"facmon/v1/_dead/{b}/e1"),
        (f"gateway-{a}", f"facmon/v1/{a}/push/tech-a"),
        (f"gateway-{a}", f"vendor/barrier/{a}-g1/card"),
        (f"devices-{a}", f"vendor/barrier/{b}-g1/card"),
        (f"devices-{a}", f"facmon/v1/{a}/gate/g1/event"),
        ("historian", f"facmon/v1/{a}/elevator/e1/event"),
        ("rules", f"facmon/v1/{a}/elevator/e1/event"),
        ("notifier", f"facmon/v1/{a}/elevator/e1/event"),
    ]
    async with _observing(secure_broker, "#") as seen:
        # Each message says who sent it, so one topic can be refused to one login and allowed to another.
        for user, topic in refused:
            async with mqtt_client(secure_broker.login(user)) as client:
                await _publish(client, topic, user.encode())
        # Everything refused was taken and dropped before these are sent; they arrive after it would have.
        for user, topic in allowed:
            async with mqtt_client(secure_broker.login(user)) as client:
                await _publish(client, topic, user.encode())
        for user, topic in allowed:
            await _arrived(seen, (topic, user.encode()))
    assert not set(seen) & {(topic, user.encode()) for user, topic in refused}


async def test_a_gateway_reads_only_its_own_estates_vendor_topics(
    secure_broker: SecureBroker, topic_prefix: str
) -> None:
    a, b = f"{topic_prefix}-a", f"{topic_prefix}-b"
    async with mqtt_client(secure_broker.login(f"gateway-{a}")) as gateway:
        await gateway.subscribe("vendor/#", qos=1)
        async with mqtt_client(secure_broker.login(f"devices-{b}")) as devices_b:
            await _publish(devices_b, f"vendor/barrier/{b}-g1/card")
        async with mqtt_client(secure_broker.login(f"devices-{a}")) as devices_a:
            await _publish(devices_a, f"vendor/barrier/{a}-g1/card")
        async with asyncio.timeout(DEADLINE_S):
            message = await anext(aiter(gateway.messages))
    assert message.topic.value == f"vendor/barrier/{a}-g1/card", "estate B's card read reached A's gateway"


async def test_a_persistent_session_keeps_more_than_mosquittos_default_queue_while_its_client_is_away(
    secure_broker: SecureBroker, topic_prefix: str
) -> None:
    """A historian away for a few seconds at an estate's full rate misses more than Mosquitto's default 1,000
    queued messages: the generated configuration keeps them all."""
    a = f"{topic_prefix}-a"
    topic, sent = f"facmon/v1/{a}/elevator/e1/state", 2500
    historian = replace(secure_broker.login("historian"), client_id=f"historian-{a}", clean=False)
    async with mqtt_client(historian) as client:
        await client.subscribe(f"facmon/v1/{a}/+/+/state", qos=1)
    async with mqtt_client(secure_broker.login(f"gateway-{a}")) as gateway:
        for n in range(sent):
            await gateway.publish(topic, str(n).encode(), qos=1)
    received: set[bytes] = set()
    async with mqtt_client(historian) as client:
        async with asyncio.timeout(DEADLINE_S):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.add(message.payload)
                if len(received) == sent:
                    break
    assert received == {str(n).encode() for n in range(sent)}
