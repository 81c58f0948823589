"""The edge process of one estate: the collectors of its devices, all feeding the durable outbox and the publisher.

Which collectors a device family needs is the family's business (`gateway.families`); the gateway runs them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import structlog

from collectors.mqtt.collector import BrokerSettings
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.health import Check, Health
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from gateway.families import Collector, Wiring, site_collectors
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from gateway.put_batch import PutBatch

log = structlog.get_logger(__name__)

PUT_LINGER_S = 0.05
# How long the publisher lets readings gather after a wake before sending them as one batch (gateway.publisher);
# events go at once. 100 ms: two of the 20 poll places (collectors.modbus.slots) per batch at a 1 s interval.
PUBLISH_GATHER_S = 0.1


class SiteGateway:
    name = "gateway"

    def __init__(
        self,
        site: Site,
        *,
        mqtt: MqttSettings,
        state_dir: Path,
        clock: Clock,
        metrics: Counters,
        instance: str | None = None,
        replay_window_s: float = 60.0,
    ) -> None:
        """`instance` names this gateway in its backbone client id (`facmon-gateway-<site>-<instance>`; default: the
        host name): stable across restarts, so the broker keeps its session, and different for two gateways of one
        site, so they never evict each other. At the vendor broker the session is the site's (`facmon-vendor-<site>`,
        held by one gateway of the site at a time: collectors.mqtt.collector).
        `replay_window_s`: how long the outbox keeps what the broker took, to send again after a reconnect."""
        self.site = site
        self.instance = instance or socket.gethostname()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(
            state_dir / f"outbox-{site.id}.sqlite", metrics=metrics, replay_window_s=replay_window_s, clock=clock
        )
        metrics.gauge("outbox_pending", self.outbox.size, "messages in the outbox not yet taken by the broker")
        metrics.gauge("outbox_memory", self.outbox.memory_size, "messages held in memory while the disk is full")
        self.publisher = Publisher(
            self.outbox,
            mqtt=mqtt,
            client_id=f"facmon-gateway-{site.id}-{self.instance}",
            metrics=metrics,
            gather_s=PUBLISH_GATHER_S,
        )
        # Every device family builds its own collectors (gateway.families): Modbus devices are polled, each by
        # its own poller over the shared links; MQTT devices are heard on the site's vendor broker or, when the site
        # file names none, on this backbone broker.
        backbone = BrokerSettings(
            mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password, tls=mqtt.tls_settings
        )
        # What the Modbus pollers emit within 50 ms goes into the outbox in one transaction (gateway.put_batch); the
        # publisher is woken by the outbox's put, as before. The MQTT collector, which acknowledges each vendor
        # message once its messages are in the outbox and handles them one after another, puts them at once.
        self.batch = PutBatch(self.outbox.put_many, linger_s=PUT_LINGER_S)
        wiring = Wiring(
            self.publisher.emit,
            self.publisher.reject,
            clock,
            metrics,
            backbone,
            self.publisher.store,
            polled_emit=self.batch.emit,
            polled_emit_many=self.batch.emit_many,
        )
        self.collectors: list[Collector] = site_collectors(site, wiring)

    async def run(self) -> None:
        log.info("gateway starting", site=self.site.id, collectors=len(self.collectors), outbox=self.outbox.size())
        # The outbox's log is checkpointed in a thread while the gateway runs: a checkpoint in a put or ack (a sync
        # to disk) started every poll due meanwhile tens to hundreds of milliseconds late.
        self.outbox.start_checkpoints()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.publisher.run(), name="publisher")
                for collector in self.collectors:
                    tg.create_task(collector.run(), name=collector.name)
        finally:
            self.outbox.stop_checkpoints()

    def health(self) -> Health:
        connected = self.publisher.connected.is_set()
        backlog = self.outbox.size()
        return Health(
            self.name,
            (
                Check("broker", connected, "" if connected else f"not connected; {backlog} message(s) kept"),
                self._outbox_check(backlog),
            ),
        )

    def _outbox_check(self, backlog: int) -> Check:
        full = self.outbox.full
        if full is None:
            return Check("outbox", True, f"{backlog} message(s) waiting")
        return Check("outbox", False, f"disk full ({full}); {self.outbox.memory_size()} message(s) held in memory")
