"""Settings from the environment (FACMON_*). Built in main() or a lifespan, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from notifier.channels.config import SmtpConfig, WebhookConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACMON_", extra="ignore")

    # An external broker; when unset, `facmon up` starts a local Mosquitto.
    mqtt_host: str | None = None
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None

    # An external InfluxDB (v1 HTTP API: 1.x natively, 2.x via DBRP, 3.x via its v1 endpoints); when unset,
    # `facmon up` starts a local influxd.
    influx_url: str | None = None
    influx_db: str = "facmon"
    influx_username: str | None = None
    influx_password: SecretStr | None = None

    # Work orders; default: SQLite in the state folder.
    db_url: str | None = None

    state_dir: Path = Path(".facmon")

    # Signs one-tap acknowledge links (>= 32 characters, not a sample value); unset: a key generated once into
    # the state folder (notifier.tokens.load_or_create_secret).
    secret_key: SecretStr | None = None
    # Where phones reach the API, for the links in alerts (e.g. https://facmon.example.com); unset: the address the
    # API listens on, which only works on the same network.
    public_url: str | None = None
    # Alert channels besides the MQTT push to technicians' phones, as JSON: FACMON_WEBHOOKS='[{"url": "https://...",
    # "template": "wecom", "secret": "..."}]' (templates: generic, wecom, dingtalk, feishu, slack), and
    # FACMON_SMTP='{"host": "smtp.example.com", "port": 587, "sender": "facmon@example.com", "starttls": true}'.
    webhooks: list[WebhookConfig] = []
    smtp: SmtpConfig | None = None

    def influx_password_text(self) -> str | None:
        return self.influx_password.get_secret_value() if self.influx_password else None

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.state_dir / 'facmon.db').resolve()}"
