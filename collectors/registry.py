"""Drivers are registered by name, explicitly: a new controller model is a data file plus one line here."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.modbus.driver import ModbusDriver, load_driver

if TYPE_CHECKING:
    from facmon.site import Site

_HERE = Path(__file__).parent

MODBUS_DRIVERS: dict[str, Path] = {
    "elev-gb-a": _HERE / "modbus" / "drivers" / "elev_gb_a" / "driver.yaml",
}


@cache
def modbus_driver(model: str) -> ModbusDriver:
    try:
        path = MODBUS_DRIVERS[model]
    except KeyError:
        raise KeyError(f"no Modbus driver for model {model!r}; known: {sorted(MODBUS_DRIVERS)}") from None
    driver = load_driver(path)
    if driver.model != model:
        raise ValueError(f"{path}: declares model {driver.model!r}, registered as {model!r}")
    return driver


def check_models(site: Site) -> list[tuple[str, str]]:
    """(entry, problem) for every device whose model has no driver."""
    problems = []
    for building, device in site.devices():
        if device.address is not None and device.model not in MODBUS_DRIVERS:
            problems.append(
                (
                    f"buildings[{building.id}].devices[{device.id}].model",
                    f"no Modbus driver for model {device.model!r}; known: {sorted(MODBUS_DRIVERS)}",
                )
            )
    return problems
