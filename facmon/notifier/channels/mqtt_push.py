"""MQTT push channel: QoS 1 to facmon/v1/<site>/push/<recipient id>, where the technician's phone app subscribes.

One connection per message: alerts are rare, and a short-lived client cannot be left half-connected between them.
`send` returns once the broker has acknowledged (PUBACK) the message. `tls`: TLS to the broker (CA, client
certificate, hostname check), as the other services reach it.
"""

from __future__ import annotations

import json

import aiomqtt

from facmon.kernel.mqtt import MqttSettings, MqttTls, mqtt_client
from facmon.kernel.topics import ROOT
from facmon.notifier.base import DeliveryError, Notification, Recipient
from facmon.notifier.channels.config import MqttPushConfig
from facmon.notifier.channels.payload import notification_json

__all__ = ["MqttPushChannel", "push_topic"]

_NOT_IN_TOPIC_LEVEL = ("/", "+", "#", "\x00")
# CONNACK: bad user name or password, not authorised. MQTT 3.1.1 says 4 and 5; paho 2 reports them as MQTT 5's 134
# and 135 (a ReasonCode compares equal to its MQTT 5 value), so both are here.
_REFUSED = (4, 5, 134, 135)


def push_topic(site: str, recipient_id: str) -> str:
    for part in (site, recipient_id):
        if not part or any(ch in part for ch in _NOT_IN_TOPIC_LEVEL):
            raise ValueError(f"{part!r} cannot be one MQTT topic level")
    return f"{ROOT}/{site}/push/{recipient_id}"


class MqttPushChannel:
    """A Channel."""

    def __init__(self, config: MqttPushConfig, *, tls: MqttTls | None = None) -> None:
        self.config = config
        self.tls = tls

    @property
    def name(self) -> str:
        return self.config.name

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        c = self.config
        try:
            topic = push_topic(notification.site, recipient.id)
        except ValueError as exc:
            raise DeliveryError(f"{c.name}: {exc}", retryable=False) from exc
        payload = json.dumps(notification_json(notification, recipient), ensure_ascii=False).encode("utf-8")
        try:
            password = c.password.get_secret_value() if c.password is not None else None
            settings = MqttSettings(c.host, c.port, username=c.username, password=password, timeout_s=c.timeout_s)
            settings = settings.with_tls(self.tls)
            async with mqtt_client(settings) as client:
                await client.publish(topic, payload, qos=1, timeout=c.timeout_s)
        except aiomqtt.MqttCodeError as exc:
            # Refused for bad credentials or not authorised: retrying the same thing will not help.
            retryable = exc.rc not in _REFUSED
            raise DeliveryError(f"{c.name}: {exc}", retryable=retryable) from exc
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{c.name}: {type(exc).__name__}: {exc}") from exc
