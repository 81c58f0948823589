"""How each family of devices is collected: the registry a gateway builds its collectors from.

A family names the device kinds it collects and builds the collectors of a site's devices of those kinds. Elevator
controllers and fire alarm panels are polled over Modbus TCP, one `ModbusPoller` per device, each with its family's
interpreter of the registers. Barriers and cameras push over MQTT, all of them to one `MqttCollector` listening on
the site's vendor broker or, when the site file names none, on the backbone broker (with the backbone's
credentials). A new family is a builder and one line in `FAMILIES`; drivers of a family are registered in
`collectors.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.fire_interpreter import FirePanelInterpreter
from collectors.modbus.interpreter import Interpreter
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.mqtt.collector import BrokerSettings, MqttCollector
from collectors.registry import fire_panel_driver, modbus_driver
from facmon.estate.entries import Device
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import MQTT_KINDS, DeviceKind, Emit, EmitMany, Reject, Store
from gateway.mqtt_devices import mqtt_device


class Collector(Protocol):
    @property
    def name(self) -> str:
        """The name of its task."""
        ...

    async def run(self) -> None:
        """Collect until cancelled; device and network problems are events and metrics, never exceptions."""
        ...


@dataclass(frozen=True)
class Wiring:
    """What every collector of one gateway is given: where its messages and dead letters go, the clock, the
    metrics, and the backbone broker (MQTT devices are heard there when the site file names no vendor broker).
    `polled_emit`, when given, is where the Modbus pollers' messages go instead of `emit`: an emit that may take a
    few milliseconds to share a transaction with other pollers' (gateway.put_batch), which suits hundreds of
    pollers each emitting once a second, not a collector that handles its messages one after another."""

    emit: Emit
    reject: Reject
    clock: Clock
    metrics: Counters
    backbone: BrokerSettings
    # Where collectors that handle input in bursts store what a burst became, in one transaction.
    store: Store | None = None
    polled_emit: Emit | None = None
    # ... and where a poll's messages go all at once (the same batches as `polled_emit`).
    polled_emit_many: EmitMany | None = None


# The collectors of a site's devices of one family (in site file order), given the gateway's wiring.
Build = Callable[[Site, Sequence[Device], Wiring], list[Collector]]


@dataclass(frozen=True)
class Family:
    kinds: frozenset[DeviceKind]
    build: Build


def polled(interpreter: Callable[[str], Interpreter]) -> Build:
    """A Modbus family: a poller per device, with the interpreter `interpreter(model)` of its registers."""

    def build(site: Site, devices: Sequence[Device], wiring: Wiring) -> list[Collector]:
        return [
            ModbusPoller(
                site.ref(device.id),
                interpreter(device.model),
                device.address,
                PollTiming(device.poll_interval_s, device.comm_grace_s, device.request_timeout_s),
                emit=wiring.polled_emit or wiring.emit,
                reject=wiring.reject,
                clock=wiring.clock,
                metrics=wiring.metrics,
                emit_many=wiring.polled_emit_many,
            )
            for device in devices
            if device.address is not None  # the site file requires one for Modbus kinds
        ]

    return build


def heard(site: Site, devices: Sequence[Device], wiring: Wiring) -> list[Collector]:
    """The MQTT family: one collector for all of the site's barriers and cameras, on the broker they publish to."""
    vendor = site.mqtt
    broker = wiring.backbone
    if vendor is not None:
        broker = BrokerSettings(
            vendor.host,
            vendor.port,
            vendor.topic_prefix,
            username=vendor.username,
            password=vendor.password(),
            tls=vendor.mqtt_tls(),
        )
    specs = [mqtt_device(site, device) for device in devices]
    collector = MqttCollector(
        site.id,
        specs,
        broker,
        emit=wiring.emit,
        reject=wiring.reject,
        clock=wiring.clock,
        metrics=wiring.metrics,
        store=wiring.store,
    )
    return [collector]


FAMILIES: dict[str, Family] = {
    "elevator": Family(
        frozenset({DeviceKind.ELEVATOR}), polled(lambda model: ElevatorInterpreter(modbus_driver(model)))
    ),
    "fire_panel": Family(
        frozenset({DeviceKind.FIRE_PANEL}), polled(lambda model: FirePanelInterpreter(fire_panel_driver(model)))
    ),
    "mqtt": Family(MQTT_KINDS, heard),
}


def site_collectors(site: Site, wiring: Wiring) -> list[Collector]:
    """The collectors of every device of the site, family by family; a family the site has no device of has none."""
    collectors: list[Collector] = []
    for family in FAMILIES.values():
        devices = [device for _, device in site.devices() if device.kind in family.kinds]
        if devices:
            collectors.extend(family.build(site, devices, wiring))
    return collectors
