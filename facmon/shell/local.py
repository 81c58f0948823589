"""A broker and a database on this machine for `facmon up`, when the settings name none.

Mosquitto and influxd run as child processes on free ports with their data in the state folder. While they run,
`<state folder>/local-services.json` says where they are, so other commands started on the same state folder
(`facmon report`, `facmon historian`, ...) find them without being told: the settings name no broker and no
InfluxDB, and the file does.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from facmon.estate.site import Site
from facmon.kernel.daemons import ChildService, Influxd, Mosquitto, ServiceError, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.broker_config import Listener, write_broker_config
from facmon.shell.compose import Endpoints
from facmon.shell.settings import Settings

S = TypeVar("S", bound=ChildService)

FILE_NAME = "local-services.json"
# The local broker's generated configuration, with an env file per login (env/<login>.env, mode 0600).
BROKER_FOLDER = "broker"
# The ports the local broker and InfluxDB take when they are free, so that the README's commands work as written;
# not 1883 and 8086, which Debian's own mosquitto and influxdb services take when those are installed and running.
MQTT_PORT = 18830
INFLUX_PORT = 18086


def _free(port: int) -> int | None:
    """`port` when nothing listens on it and it can be bound, else None."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start(make: Callable[[int | None], S], preferred: int) -> S:
    """A service on `preferred` when it is free, else on a free port; also when another process takes `preferred`
    between the look and the start (two `facmon up` starting at once)."""
    port = _free(preferred)
    service = make(port)
    try:
        service.start()
    except ServiceError:
        if port is None:
            raise
        service = make(None)
        service.start()
    return service


def discovered(state_dir: Path) -> dict[str, object]:
    """What a running `facmon up` on this state folder started: {"mqtt_port": ..., "influx_url": ...} or {}."""
    try:
        found = json.loads((state_dir / FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict) or not isinstance(found.get("pid"), int) or not _alive(found["pid"]):
        return {}
    return found


def _logins(folder: Path, port: int) -> dict[str, MqttSettings]:
    """The logins of the local broker's generated configuration (its env files), by service."""
    found: dict[str, MqttSettings] = {}
    for env_file in sorted((folder / "env").glob("*.env")):
        values = dict(line.partition("=")[::2] for line in env_file.read_text().splitlines() if "=" in line)
        user, password = values.get("FACMON_MQTT_USERNAME"), values.get("FACMON_MQTT_PASSWORD")
        if user and password:
            found[user] = MqttSettings("127.0.0.1", port, username=user, password=password)
    return found


def endpoints(settings: Settings) -> Endpoints:
    """The settings' endpoints; a broker or InfluxDB they leave unset is the local one of a running `facmon up`
    (with each service's login of its generated configuration)."""
    ends = Endpoints.from_settings(settings)
    found = discovered(settings.state_dir)
    if settings.mqtt_host is None and isinstance(found.get("mqtt_port"), int):
        port = int(str(found["mqtt_port"]))
        logins = _logins(settings.state_dir / BROKER_FOLDER, port)
        ends = replace(ends, mqtt=replace(ends.mqtt, host="127.0.0.1", port=port), service_mqtt=logins)
    if settings.influx_url is None and isinstance(found.get("influx_url"), str):
        ends = replace(ends, influx_url=str(found["influx_url"]))
    return ends


def _broker(state_dir: Path, sites: Sequence[Site], simulators: bool) -> Callable[[int | None], Mosquitto]:
    """Makes the local Mosquitto on a port: the configuration `facmon broker-config` would write for `sites`, with
    one plain listener on 127.0.0.1 (the services run beside it), a login per service and nothing anonymous."""

    def make(port: int | None) -> Mosquitto:
        port = port or free_port()
        files = write_broker_config(
            sites, state_dir / BROKER_FOLDER, [Listener(port, "127.0.0.1")], simulators=simulators
        )
        return Mosquitto(state_dir / "mosquitto", port=port, security=files.conf.read_text())

    return make


@contextlib.contextmanager
def local_services(settings: Settings, sites: Sequence[Site] = (), *, simulators: bool = False) -> Iterator[Endpoints]:
    """The settings' endpoints, starting a local Mosquitto / influxd for whichever they do not name. The local
    Mosquitto lets in only the services of `sites` (and with `simulators`, their simulated devices), each with its own
    login (facmon.shell.broker_config), which the endpoints carry."""
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    started: list[ChildService] = []
    ends = Endpoints.from_settings(settings)
    note = state_dir / FILE_NAME
    try:
        local: dict[str, object] = {"pid": os.getpid()}
        if settings.mqtt_host is None:
            broker = _start(_broker(state_dir, sites, simulators), MQTT_PORT)
            started.append(broker)
            logins = _logins(state_dir / BROKER_FOLDER, broker.port)
            ends = replace(ends, mqtt=MqttSettings("127.0.0.1", broker.port), service_mqtt=logins)
            local["mqtt_port"] = broker.port
        if settings.influx_url is None:
            influx = _start(lambda port: Influxd(state_dir / "influxdb", port=port), INFLUX_PORT)
            started.append(influx)
            ends = replace(ends, influx_url=influx.url, influx_username=None, influx_password=None)
            local["influx_url"] = influx.url
        if started:
            note.write_text(json.dumps(local))
        yield ends
    finally:
        if started:
            note.unlink(missing_ok=True)
        for service in reversed(started):
            service.stop()
