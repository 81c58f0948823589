"""The gateway counts on the metrics it is given: its outbox's counters and backlog are on that registry."""

from __future__ import annotations

from pathlib import Path

from facmon.estate.site import Site
from facmon.kernel.clock import SystemClock
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from gateway.site_gateway import SiteGateway
from tests.gateway.conftest import reading


async def test_the_outbox_counts_on_the_gateways_own_registry(tmp_path: Path) -> None:
    lift = {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1", "port": 1502}}
    site = Site.model_validate({"site": {"id": "s"}, "buildings": [{"id": "b1", "devices": [lift]}]})
    metrics, elsewhere = Counters(), Counters()
    gateway = SiteGateway(
        site, mqtt=MqttSettings("127.0.0.1", 1), state_dir=tmp_path, clock=SystemClock(), metrics=metrics
    )
    try:
        await gateway.publisher.emit(reading("s", seq=1))
        await gateway.publisher.emit(reading("s", seq=2))
    finally:
        gateway.outbox.close()
    assert metrics.get("outbox_put", kind="reading") == 2
    exposed = metrics.prometheus()
    assert 'facmon_outbox_put_total{kind="reading"} 2.0' in exposed
    assert "facmon_outbox_pending 2.0" in exposed
    assert elsewhere.get("outbox_put") == 0
