"""What a site or settings file holds for each channel, typed and validated where it is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr

__all__ = ["MqttPushConfig", "SmtpConfig", "WebhookConfig", "WebhookTemplate"]

# Body shapes: our own JSON, or the text message of a chat group's incoming-webhook bot.
WebhookTemplate = Literal["generic", "wecom", "dingtalk", "feishu", "slack"]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookConfig(_Config):
    name: str = Field(default="webhook", min_length=1, max_length=64)
    url: AnyHttpUrl
    template: WebhookTemplate = "generic"
    # Signs every request (X-Facmon-Signature); a receiver that checks it knows the message is ours.
    secret: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class SmtpConfig(_Config):
    name: str = Field(default="email", min_length=1, max_length=64)
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(min_length=3, description="the From address")
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class MqttPushConfig(_Config):
    name: str = Field(default="mqtt_push", min_length=1, max_length=64)
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)
