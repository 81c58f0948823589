"""The channels an alert can go out on. Each implements notifier.base.Channel and is configured by a typed model."""

from notifier.channels.config import MqttPushConfig, SmtpConfig, WebhookConfig, WebhookTemplate
from notifier.channels.mqtt_push import MqttPushChannel, push_topic
from notifier.channels.smtp import SmtpChannel
from notifier.channels.webhook import WebhookChannel, sign, verify_signature

__all__ = [
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
