"""Drivers are registered by name, explicitly: a new controller model is a data file plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from collectors.modbus.driver import ModbusDriver, load_driver
from collectors.modbus.fire_panel import FirePanelDriver, load_fire_panel_driver
from collectors.mqtt.driver import MqttDriver
from collectors.mqtt.driver import load_driver as load_mqtt_driver

if TYPE_CHECKING:
    pass

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
