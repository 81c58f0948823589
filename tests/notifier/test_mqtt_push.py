"""The MQTT push channel through the real Mosquitto: QoS 1 on facmon/v1/<site>/push/<recipient>."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from facmon.kernel.daemons import Mosquitto, free_port
from facmon.notifier.base import DeliveryError
from facmon.notifier.channels import MqttPushChannel, MqttPushConfig, push_topic
from facmon.notifier.message import render_text
from tests.notifier.support import LI, notification


async def test_push_reaches_the_phone_topic(mosquitto: Mosquitto, topic_prefix: str) -> None:
    n = notification(site=topic_prefix)
    topic = f"facmon/v1/{topic_prefix}/push/li-ming"
    assert push_topic(topic_prefix, "li-ming") == topic
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as phone:
        await phone.subscribe(topic, qos=1)
        await MqttPushChannel(MqttPushConfig(host="127.0.0.1", port=mosquitto.port)).send(n, LI)
        async with asyncio.timeout(5):
            message = await anext(phone.messages)
    assert (str(message.topic), message.qos) == (topic, 1)
    assert isinstance(message.payload, bytes)
    payload = json.loads(message.payload)
    assert (payload["work_order_id"], payload["site"], payload["recipient"]["id"]) == (7, topic_prefix, "li-ming")
    assert payload["text"] == render_text(n)


async def test_no_broker_is_retryable() -> None:
    channel = MqttPushChannel(MqttPushConfig(host="127.0.0.1", port=free_port(), timeout_s=2))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(notification(), LI)
    assert caught.value.retryable


@pytest.mark.parametrize("recipient_id", ["a/b", "a+", "#"])
async def test_recipient_id_that_is_not_one_topic_level(recipient_id: str, mosquitto: Mosquitto) -> None:
    channel = MqttPushChannel(MqttPushConfig(host="127.0.0.1", port=mosquitto.port))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(notification(), type(LI)(id=recipient_id, name="x"))
    assert not caught.value.retryable


def test_a_contact_from_the_site_file_has_an_id_a_push_topic_takes() -> None:
    """The manager of the demo site is a contact with a phone number ("+86 ..."); "+" is a wildcard in MQTT topics,
    so the contact's id must not carry it, or every push to the manager fails."""
    from datetime import UTC, datetime
    from pathlib import Path

    from facmon.estate.site import load_site
    from facmon.notifier.policy import Role
    from facmon.notifier.recipients import SiteResolver

    site = load_site(Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml")
    targets = SiteResolver([site])(site.id, "elevator", datetime(2026, 3, 2, 8, 15, tzinfo=UTC))
    manager = next(t.recipient for t in targets if t.role is Role.MANAGER)
    assert manager.id == "contact:8613800000009"
    assert push_topic(site.id, manager.id) == "facmon/v1/sunrise-garden/push/contact:8613800000009"
