"""The edge process of one estate: a collector per device, all feeding the durable outbox and the publisher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from collectors.modbus.poller import ModbusPoller
from collectors.registry import modbus_driver
from facmon.clock import Clock
from facmon.metrics import Counters
from facmon.site import Site
from gateway.outbox import Outbox
from gateway.publisher import Publisher

log = structlog.get_logger(__name__)


class SiteGateway:
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
        self.outbox = Outbox(state_dir / f"outbox-{site.id}.sqlite")
        self.publisher = Publisher(
            self.outbox,
            host=mqtt_host,
            port=mqtt_port,
            client_id=f"facmon-gateway-{site.id}",
            metrics=metrics,
            username=mqtt_username,
            password=mqtt_password,
        )
        self.pollers = [
            ModbusPoller(
                site.ref(device.id),
                modbus_driver(device.model),
                device.address,
                poll_interval_s=device.poll_interval_s,
                comm_grace_s=device.comm_grace_s,
                emit=self.publisher.emit,
                clock=clock,
                metrics=metrics,
            )
            for _, device in site.devices()
            if device.address is not None
        ]

    async def run(self) -> None:
        log.info("gateway starting", site=self.site.id, devices=len(self.pollers), outbox=self.outbox.size())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.publisher.run(), name="publisher")
            for poller in self.pollers:
                tg.create_task(poller.run(), name=f"poll-{poller.ref.device}")
