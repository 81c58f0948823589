"""The channels an alert can go out on. Each implements facmon.notifier.base.Channel and is configured by a typed
model."""

from facmon.notifier.channels.config import MqttPushConfig, SmtpConfig, WebhookConfig, WebhookTemplate
from facmon.notifier.channels.log import LogChannel
from facmon.notifier.channels.mqtt_push import MqttPushChannel, push_topic
from facmon.notifier.channels.smtp import SmtpChannel
from facmon.notifier.channels.webhook import WebhookChannel, sign, verify_signature

__all__ = [
    "LogChannel",
    "MqttPushChannel",
    "MqttPushConfig",
    "SmtpChannel",
    "SmtpConfig",
    "WebhookChannel",
    "WebhookConfig",
    "WebhookTemplate",
    "push_topic",
    "sign",
    "verify_signature",
]
