"""The fields the site files' devices may write to InfluxDB, from their drivers (facmon.historian.lines.DeclaredFields).

Built here because the historian sits beside the collectors and below the estate: it may know neither the drivers
nor the site files, so the composition root hands it what they declare.

- Modbus elevators: every point of the register map.
- Fire panels: the panel registers and the counts of the point table the interpreter adds (`points_*`,
  `intact_pct`); a point's readings: `state`, `type` and one boolean per flag.
- MQTT devices: the fields each message of the driver lists under `reading`.

tests/shell/test_declared.py holds every golden case of every driver to it, so a field a collector starts to emit
without its declaration here fails there, not silently in production.
"""

from __future__ import annotations

from collections.abc import Sequence

from collectors.modbus.fire_panel import Flag
from collectors.registry import fire_panel_driver, modbus_driver, mqtt_driver
from facmon.estate.entries import Device
from facmon.estate.site import Site
from facmon.historian.lines import DeclaredFields, DeviceFields
from facmon.kernel.model import MQTT_KINDS, DeviceKind

__all__ = ["FIRE_PANEL_COUNTS", "FIRE_POINT_FIELDS", "declared_fields", "device_fields"]

# What the fire panel interpreter adds to the panel's registers (collectors.modbus.fire_interpreter._counts).
FIRE_PANEL_COUNTS = frozenset(
    {
        "points_total",
        "points_fire",
        "points_supervisory",
        "points_fault",
        "points_disabled",
        "points_active",
        "points_intact",
        "points_rejected",
        "intact_pct",
    }
)
# A fire point's reading (collectors.modbus.fire_panel.PointStatus.values).
FIRE_POINT_FIELDS = frozenset({"state", "type", *(flag.value for flag in Flag)})


def device_fields(building: str, device: Device) -> DeviceFields:
    kind, model = device.kind, device.model
    if kind == DeviceKind.FIRE_PANEL:
        panel = {point.name for point in fire_panel_driver(model).panel}
        return DeviceFields(building, kind.value, model, frozenset(panel) | FIRE_PANEL_COUNTS, FIRE_POINT_FIELDS)
    if kind in MQTT_KINDS:
        messages = mqtt_driver(model).messages.values()
        return DeviceFields(building, kind.value, model, frozenset(f for m in messages for f in m.reading))
    return DeviceFields(building, kind.value, model, frozenset(point.name for point in modbus_driver(model).points))


def declared_fields(sites: Sequence[Site]) -> DeclaredFields:
    return DeclaredFields(
        {
            (site.id, device.id): device_fields(building.id, device)
            for site in sites
            for building, device in site.devices()
        }
    )
