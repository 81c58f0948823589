"""The edge process of one estate: a collector per device, all feeding the durable outbox and the publisher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from collectors.modbus.fire_poller import FirePanelPoller
from collectors.modbus.poller import ModbusPoller
from collectors.mqtt.collector import MqttCollector
from collectors.registry import fire_panel_driver, modbus_driver
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.health import Check, Health
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind
from gateway.mqtt_devices import site_devices
from gateway.outbox import Outbox
from gateway.publisher import Publisher

log = structlog.get_logger(__name__)


class SiteGateway:
    name = "gateway"

    def __init__(
        self,
        site: Site,
        *,
        mqtt_host: str,
        mqtt_port: int,
        state_dir: Path,
        clock: Clock,
        metrics: Counters,
        mqtt_username: str | None = None,
        mqtt_password: str | None = None,
    ) -> None:
        self.site = site
        state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(state_dir / f"outbox-{site.id}.sqlite", metrics=metrics)
        metrics.gauge("outbox_pending", self.outbox.size, "messages in the outbox not yet taken by the broker")
        self.publisher = Publisher(
            self.outbox,
            host=mqtt_host,
            port=mqtt_port,
            client_id=f"facmon-gateway-{site.id}",
            metrics=metrics,
            username=mqtt_username,
            password=mqtt_password,
        )
        # Elevators and fire panels are polled over Modbus, each kind by its poller, all over the shared links.
        self.pollers: list[ModbusPoller | FirePanelPoller] = []
        for _, device in site.devices():
            if device.address is None:
                continue
            poller = FirePanelPoller if device.kind is DeviceKind.FIRE_PANEL else ModbusPoller
            driver = fire_panel_driver if device.kind is DeviceKind.FIRE_PANEL else modbus_driver
            self.pollers.append(
                poller(
                    site.ref(device.id),
                    driver(device.model),  # type: ignore[arg-type]  # each poller gets its kind's driver
                    device.address,
                    poll_interval_s=device.poll_interval_s,
                    comm_grace_s=device.comm_grace_s,
                    emit=self.publisher.emit,
                    reject=self.publisher.reject,
                    clock=clock,
                    metrics=metrics,
                )
            )
        # Barriers and cameras push over MQTT: one collector listens for all of them, on the site's vendor broker
        # or, when the site file names none, on the backbone broker (with the backbone's credentials).
        mqtt_devices = site_devices(site)
        vendor = site.mqtt
        self.mqtt_collector = (
            MqttCollector(
                site.id,
                mqtt_devices,
                host=vendor.host if vendor else mqtt_host,
                port=vendor.port if vendor else mqtt_port,
                topic_prefix=vendor.topic_prefix if vendor else "",
                username=None if vendor else mqtt_username,
                password=None if vendor else mqtt_password,
                emit=self.publisher.emit,
                reject=self.publisher.reject,
                clock=clock,
                metrics=metrics,
            )
            if mqtt_devices
            else None
        )

    async def run(self) -> None:
        log.info("gateway starting", site=self.site.id, devices=len(self.pollers), outbox=self.outbox.size())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.publisher.run(), name="publisher")
            for poller in self.pollers:
                tg.create_task(poller.run(), name=f"poll-{poller.ref.device}")
            if self.mqtt_collector is not None:
                tg.create_task(self.mqtt_collector.run(), name="mqtt-collector")

    def health(self) -> Health:
        connected = self.publisher.connected.is_set()
        backlog = self.outbox.size()
        return Health(
            self.name,
            (
                Check("broker", connected, "" if connected else f"not connected; {backlog} message(s) kept"),
                Check("outbox", True, f"{backlog} message(s) waiting"),
            ),
        )
