"""Drivers are registered by name, explicitly: a new controller model is a data file plus one line here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from collectors.modbus.driver import ModbusDriver, load_driver
from collectors.modbus.fire_panel import FirePanelDriver, load_fire_panel_driver
from collectors.mqtt.driver import MqttDriver
from collectors.mqtt.driver import load_driver as load_mqtt_driver
from facmon.model import DeviceKind
from facmon.site import MODBUS_KINDS, MQTT_KINDS

if TYPE_CHECKING:
    from facmon.datafile import Problem
    from facmon.site import Device
    from facmon.yaml_lines import Loc

_HERE = Path(__file__).parent

MODBUS_DRIVERS: dict[str, Path] = {
    "elev-gb-a": _HERE / "modbus" / "drivers" / "elev_gb_a" / "driver.yaml",
    "elev-st-b": _HERE / "modbus" / "drivers" / "elev_st_b" / "driver.yaml",
}

# Fire alarm panels: panel registers plus a point table (collectors.modbus.fire_panel), read over Modbus TCP too.
FIRE_PANEL_DRIVERS: dict[str, Path] = {
    "fire-gb-a": _HERE / "modbus" / "drivers" / "fire_gb_a" / "driver.yaml",
}

MQTT_DRIVERS: dict[str, Path] = {
    "barrier-a": _HERE / "mqtt" / "drivers" / "barrier_a" / "driver.yaml",
    "camera-a": _HERE / "mqtt" / "drivers" / "camera_a" / "driver.yaml",
}


class _Driver(Protocol):
    @property
    def model(self) -> str: ...


D = TypeVar("D", bound=_Driver)


def _load(registry: dict[str, Path], what: str, load: Callable[[Path], D], model: str) -> D:
    """The driver registered for `model`, refusing one whose file declares another model."""
    try:
        path = registry[model]
    except KeyError:
        raise KeyError(f"no {what} driver for model {model!r}; known: {sorted(registry)}") from None
    driver = load(path)
    if driver.model != model:
        raise ValueError(f"{path}: declares model {driver.model!r}, registered as {model!r}")
    return driver


@cache
def modbus_driver(model: str) -> ModbusDriver:
    return _load(MODBUS_DRIVERS, "Modbus", load_driver, model)


@cache
def fire_panel_driver(model: str) -> FirePanelDriver:
    return _load(FIRE_PANEL_DRIVERS, "fire panel", load_fire_panel_driver, model)


@cache
def mqtt_driver(model: str) -> MqttDriver:
    return _load(MQTT_DRIVERS, "MQTT", load_mqtt_driver, model)


def check_models(devices: Iterable[tuple[Loc, Device]]) -> list[Problem]:
    """Every device (with its place in the site file) whose model has no driver, or whose MQTT settings cannot work."""
    problems: list[Problem] = []
    vendor_ids: dict[tuple[str, str], str] = {}
    for loc, device in devices:
        fire = device.kind is DeviceKind.FIRE_PANEL
        drivers = FIRE_PANEL_DRIVERS if fire else MODBUS_DRIVERS
        if device.kind in MODBUS_KINDS and device.model not in drivers:
            what = "fire panel" if fire else "Modbus"
            problems.append(((*loc, "model"), f"no {what} driver for model {device.model!r}; known: {sorted(drivers)}"))
        if device.kind in MQTT_KINDS:
            problems += [((*loc, *where), what) for where, what in _check_mqtt(device, vendor_ids)]
    return problems


def _check_mqtt(device: Device, vendor_ids: dict[tuple[str, str], str]) -> list[Problem]:
    """An MQTT device's driver fits its kind, its grace outlasts a heartbeat, its vendor id is its own."""
    if device.model not in MQTT_DRIVERS:
        return [(("model",), f"no MQTT driver for model {device.model!r}; known: {sorted(MQTT_DRIVERS)}")]
    driver = mqtt_driver(device.model)
    problems: list[Problem] = []
    if driver.kind is not device.kind:
        problems.append((("model",), f"{device.model} is a {driver.kind.value} driver, not a {device.kind.value}"))
    heartbeat_s = driver.heartbeat.interval_s
    if "comm_grace_s" in device.model_fields_set and device.comm_grace_s <= heartbeat_s:
        problems.append(
            (
                ("comm_grace_s",),
                f"{device.comm_grace_s:g} s is not longer than the {heartbeat_s:g} s heartbeat of {device.model}: "
                "the device would be reported lost between heartbeats",
            )
        )
    # Two devices on the same topics would each take the other's messages.
    owner = vendor_ids.setdefault((driver.topic, device.mqtt_id), device.id)
    if owner != device.id:
        where = ("vendor_id",) if device.vendor_id is not None else ("id",)
        problems.append((where, f"vendor id {device.mqtt_id!r} is already {owner}'s ({driver.topic})"))
    return problems
