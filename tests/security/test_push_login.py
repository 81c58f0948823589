"""The notifier's MQTT push over TLS: with its login it is delivered; a refused login is final, not retried."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from facmon.kernel.mqtt import mqtt_client
from facmon.notifier.base import DeliveryError
from facmon.notifier.channels import MqttPushChannel, MqttPushConfig
from tests.notifier.support import LI, notification
from tests.security.conftest import OBSERVER, SecureBroker


def _channel(broker: SecureBroker, password: str | None = None) -> MqttPushChannel:
    login = broker.login("notifier")
    secret = SecretStr(password or login.password or "")
    config = MqttPushConfig(host=login.host, port=login.port, username=login.username, password=secret, timeout_s=5)
    return MqttPushChannel(config, tls=login.tls_settings)


async def test_a_push_over_tls_reaches_the_phone_topic(secure_broker: SecureBroker, topic_prefix: str) -> None:
    site = f"{topic_prefix}-a"
    async with mqtt_client(secure_broker.login(OBSERVER)) as phone:
        await phone.subscribe(f"facmon/v1/{site}/push/{LI.id}", qos=1)
        await _channel(secure_broker).send(notification(site=site), LI)
        async with asyncio.timeout(10):
            message = await anext(aiter(phone.messages))
    assert message.topic.value == f"facmon/v1/{site}/push/{LI.id}"


async def test_a_refused_login_is_not_retried(secure_broker: SecureBroker, topic_prefix: str) -> None:
    with pytest.raises(DeliveryError) as refused:
        await _channel(secure_broker, password="not-the-notifiers").send(notification(site=f"{topic_prefix}-a"), LI)
    assert refused.value.retryable is False, refused.value
