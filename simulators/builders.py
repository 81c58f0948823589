"""How each kind of device of a site file becomes its simulator: one builder per kind, registered in `BUILDERS`.

A builder takes the site file's entry and what the whole site simulator shares (`BuildContext`) and returns the
simulated device, built from the same driver file the collector reads it with. Modbus devices (elevators, fire
panels) are servers at their address; MQTT devices (barriers, cameras) publish to the broker the gateway listens on.
Each device draws its choices from a seed of its own, so the site file's order does not change them. The site
simulator (`simulators.site`) and the demo's history (`facmon.demo_history`) build their devices here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from collectors.registry import fire_panel_driver, modbus_driver, mqtt_driver
from facmon.estate.entries import Building, Device
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.model import DeviceKind
from facmon.kernel.mqtt import MqttSettings
from simulators.camera import CameraSimulator
from simulators.elevator import ElevatorSimulator
from simulators.fire_panel import FirePanelSimulator
from simulators.gate import BarrierSimulator
from simulators.mqtt_device import SimOptions
from simulators.steps import SimulatedDevice

# Residents' cards at a simulated barrier, per hour (at speed 1): enough to see traffic on a dashboard.
ROUTINE_READS_PER_HOUR = 12.0


def device_seed(seed: int, device_id: str) -> int:
    """Each device gets its own stream of choices, the same whatever order the site file lists devices in."""
    return zlib.crc32(f"{seed}/{device_id}".encode())


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need beyond the device's own entry."""

    site: Site
    building: Building
    seed: int
    speed: float
    # The broker MQTT devices publish to, with their login and TLS (None: MQTT devices are not simulated); the
    # site file's vendor broker, when it names one, takes the place of its host and port.
    mqtt: MqttSettings | None
    # The simulated time the devices' timers wait on (None: each device runs `speed` times the wall clock).
    clock: Clock | None = None


Builder = Callable[[Device, BuildContext], SimulatedDevice]


def _elevator(device: Device, ctx: BuildContext) -> SimulatedDevice:
    assert device.address is not None  # the site file requires one for Modbus kinds
    return ElevatorSimulator(
        modbus_driver(device.model),
        host=device.address.host,
        port=device.address.port,
        unit=device.address.unit,
        seed=device_seed(ctx.seed, device.id),
        speed=ctx.speed,
        device_id=device.id,
        clock=ctx.clock,
    )


def _fire_panel(device: Device, ctx: BuildContext) -> SimulatedDevice:
    assert device.address is not None  # the site file requires one for Modbus kinds
    return FirePanelSimulator(
        fire_panel_driver(device.model),
        host=device.address.host,
        port=device.address.port,
        unit=device.address.unit,
        # The installed points are a fact of the site, not of the run: the population depends on the device only,
        # so a scenario naming point "1-004" works whatever --seed is given.
        seed=device_seed(0, device.id),
        device_id=device.id,
    )


def _mqtt_options(device: Device, ctx: BuildContext) -> SimOptions:
    # MQTT devices publish where the gateway listens for them: the site's vendor broker, else the one given.
    vendor = ctx.site.mqtt
    broker = ctx.mqtt
    if broker is not None and vendor is not None:
        broker = replace(broker, host=vendor.host, port=vendor.port)
    return SimOptions(
        broker=broker,
        topic_prefix=vendor.topic_prefix if vendor else "",
        device_id=device.id,
        vendor_id=device.mqtt_id,
        seed=device_seed(ctx.seed, device.id),
        speed=ctx.speed,
        clock=ctx.clock,
    )


def _gate(device: Device, ctx: BuildContext) -> SimulatedDevice:
    options = _mqtt_options(device, ctx)
    return BarrierSimulator(mqtt_driver(device.model), routine_reads_per_hour=ROUTINE_READS_PER_HOUR, **options)


def _camera(device: Device, ctx: BuildContext) -> SimulatedDevice:
    return CameraSimulator(mqtt_driver(device.model), **_mqtt_options(device, ctx))


# One builder per device kind, registered explicitly.
BUILDERS: dict[DeviceKind, Builder] = {
    DeviceKind.ELEVATOR: _elevator,
    DeviceKind.FIRE_PANEL: _fire_panel,
    DeviceKind.GATE: _gate,
    DeviceKind.CAMERA: _camera,
}
