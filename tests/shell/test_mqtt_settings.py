"""TLS and logins as the settings, the site file and `facmon broker-config` give them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from collectors.mqtt.collector import MqttCollector
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings, MqttTls
from facmon.shell.cli import app
from facmon.shell.compose import Endpoints
from facmon.shell.settings import Settings
from gateway.site_gateway import SiteGateway


def _file(folder: Path, name: str, text: str = "x") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_tls_settings_reach_every_service(tmp_path: Path) -> None:
    ca = _file(tmp_path, "ca.crt")
    settings = Settings(
        mqtt_host="broker.example", mqtt_port=8883, mqtt_username="u", mqtt_password="p", mqtt_tls_ca=ca,
        mqtt_tls_insecure=True, state_dir=tmp_path,
    )  # fmt: skip
    endpoints = Endpoints.from_settings(settings)
    assert endpoints.mqtt.tls_settings == MqttTls(str(ca), None, None, insecure=True)
    assert (endpoints.mqtt.host, endpoints.mqtt.port, endpoints.mqtt.username) == ("broker.example", 8883, "u")
    assert endpoints.mqtt_for("historian") == endpoints.mqtt
    own = MqttSettings("broker.example", 8883, username="historian")
    assert (
        Endpoints(endpoints.mqtt, None, "facmon", "sqlite://", service_mqtt={"historian": own}).mqtt_for("historian")
        is own
    )
    assert Settings(state_dir=tmp_path).mqtt().tls_settings is None, "no TLS unless asked"
    assert not Settings(mqtt_tls_ca=ca, state_dir=tmp_path).mqtt().tls_insecure, "the hostname is checked by default"


def test_settings_name_a_missing_ca_file_and_an_unpaired_certificate(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"FACMON_MQTT_TLS_CA: no such file .*missing\.crt"):
        Settings(mqtt_tls_ca=tmp_path / "missing.crt")
    cert = _file(tmp_path, "client.crt")
    with pytest.raises(ValidationError, match="FACMON_MQTT_TLS_CERT and FACMON_MQTT_TLS_KEY go together"):
        Settings(mqtt_tls_ca=cert, mqtt_tls_cert=cert)


def test_the_site_files_vendor_broker_login_reaches_the_gateways_collector(tmp_path: Path) -> None:
    ca, password = _file(tmp_path, "vendor-ca.crt"), _file(tmp_path, "vendor.pw", "s3cret\n")
    site = Site.model_validate(
        {
            "site": {"id": "s"},
            "mqtt": {
                "host": "vendor.example",
                "port": 8883,
                "username": "gw-s",
                "password_file": str(password),
                "tls": {"ca": str(ca)},
            },
            "buildings": [{"id": "b1", "devices": [{"id": "g1", "kind": "gate", "model": "barrier-a"}]}],
        }
    )
    gateway = SiteGateway(
        site, mqtt=MqttSettings("backbone.example"), state_dir=tmp_path, clock=FakeClock(), metrics=Counters()
    )
    try:
        [collector] = [c for c in gateway.collectors if isinstance(c, MqttCollector)]
        broker = collector.broker
        assert (broker.host, broker.port, broker.username, broker.password) == (
            "vendor.example",
            8883,
            "gw-s",
            "s3cret",
        )
        assert broker.tls == MqttTls(str(ca), None, None, insecure=False)
    finally:
        gateway.outbox.close()


def test_broker_config_writes_private_logins_and_keeps_them(tmp_path: Path) -> None:
    out = tmp_path / "broker"
    args = ["broker-config", "--site", "examples/demo-site.yaml", "--out", str(out), "--plain-port", "1883"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    conf = (out / "facmon.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "listener 1883 127.0.0.1" in conf
    for private in (out / "passwd", out / "env" / "historian.env", out / "env" / "gateway-sunrise-garden.env"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    env = (out / "env" / "rules.env").read_text()
    passwords = (out / "passwd").read_text()
    assert "FACMON_MQTT_USERNAME=rules" in env
    assert env.split("FACMON_MQTT_PASSWORD=")[1].split()[0] not in passwords, "the password file holds hashes only"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "env" / "rules.env").read_text() == env, "a second run keeps the passwords"


def test_broker_config_wants_a_listener_and_complete_tls_files(tmp_path: Path) -> None:
    base = ["broker-config", "--site", "examples/demo-site.yaml", "--out", str(tmp_path / "b")]
    nothing = CliRunner().invoke(app, base)
    assert nothing.exit_code == 2
    assert "--plain-port" in nothing.output
    half = CliRunner().invoke(app, [*base, "--tls-ca", str(_file(tmp_path, "ca.crt"))])
    assert half.exit_code == 2
    assert "go together" in half.output
