"""Settings from the environment (FACMON_*). Built in main() or a lifespan, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facmon.kernel.mqtt import MqttSettings
from facmon.notifier.channels.config import SmtpConfig, WebhookConfig


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACMON_", extra="ignore")

    # An external broker; when unset, `facmon up` starts a local Mosquitto.
    mqtt_host: str | None = None
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # TLS to the broker: on when a CA file is named (the CA that signed the broker's certificate), with the client's
    # own certificate and key when the broker asks for one. The broker's certificate must name FACMON_MQTT_HOST
    # unless FACMON_MQTT_TLS_INSECURE=1 (an explicit opt-out; the chain is checked all the same).
    mqtt_tls_ca: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    mqtt_tls_insecure: bool = False

    # An external InfluxDB (v1 HTTP API: 1.x natively, 2.x via DBRP, 3.x via its v1 endpoints); when unset,
    # `facmon up` starts a local influxd.
    influx_url: str | None = None
    influx_db: str = "facmon"
    influx_username: str | None = None
    influx_password: SecretStr | None = None

    # Work orders; default: SQLite in the state folder.
    db_url: str | None = None

    # Relative to where facmon is started; made absolute at once, because child services (Mosquitto, influxd) run
    # in folders of their own and would read a relative path from there.
    state_dir: Path = Path(".facmon")
    # Names this process's MQTT sessions (client ids `facmon-historian-<instance>`, ...): the broker keeps what a
    # service misses while away under that name, so it must stay the same across restarts and differ between two
    # processes of one service. Default: none, for one of each.
    instance: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    # Several rules workers side by side: the MQTT 5 shared subscription group they all name (each event goes to one
    # of them, `$share/<group>/facmon/v1/...`), each worker with an instance of its own. Default: none, one worker on
    # a plain subscription. A group of the rules workers' own: a group the historians also named would split the
    # events between the two services.
    rules_share_group: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    # The gateway keeps what the broker acknowledged this long more and sends it again after a reconnect: a broker
    # that crashed may have lost it before delivering or saving it (gateway/outbox.py). 0 turns it off.
    outbox_replay_window_s: float = Field(default=60.0, ge=0.0, le=3600.0)
    # Several historians side by side: the MQTT 5 shared subscription group they all name (each message goes to one
    # of them, `$share/<group>/facmon/v1/...`), each historian with an instance of its own. Default: none, one
    # historian on a plain subscription. A group of the historians' own: a group the rules workers also named would
    # split the messages between the two services.
    historian_share_group: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    # The rules worker keeps technicians' card reads and elevators' inspections this long, for work orders that open
    # after them for faults detected before them (rules/evidence.py): a week covers a gateway cut off over the longest
    # holiday. Between an hour and 90 days.
    arrival_evidence_window_s: float = Field(default=7 * 86400.0, ge=3600.0, le=90 * 86400.0)

    # Demo mode: documented demo accounts are created and printed, and a missing secret key is generated into the
    # state folder. Outside it, facmon refuses to start without a good secret key and an admin, or while a demo
    # account still has its published password.
    demo: bool = False
    # Signs one-tap acknowledge links (>= 32 random characters, not a sample value). Or FACMON_SECRET_KEY_FILE: a
    # file holding it (e.g. a Docker or systemd secret), which wins when both are set.
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    # Where phones reach the API, for the links in alerts (e.g. https://facmon.example.com); unset: the address the
    # API listens on, which only works on the same network.
    public_url: str | None = None
    # Alert channels besides the MQTT push to technicians' phones, as JSON: FACMON_WEBHOOKS='[{"url": "https://...",
    # "template": "wecom", "secret": "..."}]' (templates: generic, wecom, dingtalk, feishu, slack), and
    # FACMON_SMTP='{"host": "smtp.example.com", "port": 587, "sender": "facmon@example.com", "starttls": true}'.
    webhooks: list[WebhookConfig] = []
    smtp: SmtpConfig | None = None
    # Browser origins allowed to call the API from another site (CORS), as JSON: FACMON_CORS_ORIGINS=
    # '["https://ops.example.com"]'; default none: only pages served by the API itself.
    cors_origins: list[str] = []
    # Request bodies larger than this are refused with 413 (default 1 MiB).
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    # How many of the busiest reads (work-order list, device list, device detail) one API process runs at once;
    # others wait their turn (api.deps.DatabaseWork). One was fastest on SQLite and on PostgreSQL (bench_api.py).
    api_database_concurrency: int = Field(default=1, ge=1, le=64)

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().absolute()

    @field_validator("mqtt_tls_ca", "mqtt_tls_cert", "mqtt_tls_key")
    @classmethod
    def _readable(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        # Named at start, not at the first connection: a typo would otherwise show as a broker that never answers.
        if path is None:
            return None
        path = path.expanduser().absolute()
        if not path.is_file():
            raise ValueError(f"FACMON_{str(info.field_name).upper()}: no such file {path}")
        return path

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.mqtt_tls_cert is None) != (self.mqtt_tls_key is None):
            raise ValueError("FACMON_MQTT_TLS_CERT and FACMON_MQTT_TLS_KEY go together (a certificate and its key)")
        if self.mqtt_tls_cert is not None and self.mqtt_tls_ca is None:
            raise ValueError("FACMON_MQTT_TLS_CERT needs FACMON_MQTT_TLS_CA (the CA of the broker's certificate)")
        return self

    def mqtt(self) -> MqttSettings:
        """The backbone broker as these settings name it (host 127.0.0.1 when unset), with credentials and TLS."""
        return MqttSettings(
            self.mqtt_host or "127.0.0.1",
            self.mqtt_port,
            username=self.mqtt_username,
            password=self.mqtt_password.get_secret_value() if self.mqtt_password else None,
            tls_ca=_text(self.mqtt_tls_ca),
            tls_cert=_text(self.mqtt_tls_cert),
            tls_key=_text(self.mqtt_tls_key),
            tls_insecure=self.mqtt_tls_insecure,
        )

    def secret_key_text(self) -> str | None:
        """The secret key from FACMON_SECRET_KEY_FILE or FACMON_SECRET_KEY; None when neither is set."""
        if self.secret_key_file is not None:
            try:
                return self.secret_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"FACMON_SECRET_KEY_FILE {self.secret_key_file}: {exc.strerror}") from exc
        return self.secret_key.get_secret_value() if self.secret_key else None

    def influx_password_text(self) -> str | None:
        return self.influx_password.get_secret_value() if self.influx_password else None

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.state_dir / 'facmon.db').resolve()}"
