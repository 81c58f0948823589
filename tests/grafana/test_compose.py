"""docker-compose.yml (Docker cannot run here): the services are there, every file it mounts or builds from is in
the repository, and the environment it sets is what Grafana's datasource file and facmon's settings read."""

from __future__ import annotations

import re
from typing import Any

import yaml

from facmon.shell.settings import Settings
from tests.grafana.expand import PROVISIONING, ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def _mounts(service: str) -> dict[str, str]:
    """{container path: host path} of the bind mounts (host paths starting with ./)."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            found[container] = host
    return found


def test_services() -> None:
    assert set(SERVICES) == {"influxdb", "grafana", "facmon"}, "facmon up runs its own Mosquitto, with logins"
    assert "FACMON_MQTT_HOST" not in SERVICES["facmon"]["environment"]
    assert SERVICES["influxdb"]["image"] == "influxdb:1.8"
    assert SERVICES["influxdb"]["environment"]["INFLUXDB_DB"] == "facmon"
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana-oss")
    assert SERVICES["facmon"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


def test_every_mounted_file_is_in_the_repository() -> None:
    for service in SERVICES:
        for host in _mounts(service).values():
            assert (ROOT / host).exists(), f"{service}: {host}"
    grafana = _mounts("grafana")
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "facmon.yaml").read_text())["providers"][0]
    assert grafana[provider["options"]["path"]] == "./grafana/dashboards"
    assert grafana["/etc/grafana/provisioning/datasources"] == "./grafana/provisioning/datasources"
    facmon = _mounts("facmon")
    command = SERVICES["facmon"]["command"]
    for option in ("--site", "--scenario"):
        assert command[command.index(option) + 1] in facmon, f"{option} names a mounted file"


def test_environment_matches_what_is_read() -> None:
    datasource = (PROVISIONING / "datasources" / "facmon.yaml").read_text()
    read_by_grafana = set(re.findall(r"\$\{(\w+)\}", datasource))
    assert read_by_grafana == set(SERVICES["grafana"]["environment"])
    settings = {f"FACMON_{name.upper()}" for name in Settings.model_fields}
    assert read_by_grafana <= settings, "the datasource reads facmon's own setting names"
    facmon_env = SERVICES["facmon"]["environment"]
    assert set(facmon_env) <= settings
    assert facmon_env["FACMON_INFLUX_URL"] == SERVICES["grafana"]["environment"]["FACMON_INFLUX_URL"]
    assert facmon_env["FACMON_INFLUX_URL"] == "http://influxdb:8086"


def test_dockerfile_installs_and_runs_facmon() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#")
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install" in dockerfile
    assert "COPY . ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored, "the host's virtualenv stays out of the image"
    assert "apt-get install -y --no-install-recommends mosquitto" in dockerfile, "the demo's broker, run by facmon up"
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous" not in conf, "who may connect is the generated configuration's (no anonymous client)"
    assert "include_dir /etc/mosquitto/facmon" in conf
