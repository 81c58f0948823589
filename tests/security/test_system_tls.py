"""Every facmon service over TLS with the login `facmon broker-config` gave it, and nothing else: a simulated
elevator's alarm and a simulated barrier's card read go through the gateway to the rules (a work order), the
historian (InfluxDB) and the notifier (an MQTT push to the on-call technician's phone)."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import httpx

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, free_port
from facmon.kernel.mqtt import MqttSettings, mqtt_client
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.elevator import ElevatorSimulator
from simulators.site import SiteSimulator
from simulators.steps import STEP
from tests.conftest import influxql
from tests.security.conftest import OBSERVER, Pki, secure_broker_for
from tests.support import wait_for


def _site(site_id: str) -> Site:
    address = {"host": "127.0.0.1", "port": free_port(), "unit": 1}
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "role": "main", "address": address},
                        {"id": "g1", "kind": "gate", "model": "barrier-a", "vendor_id": f"{site_id}-g1"},
                    ],
                }
            ],
            "technicians": [
                {
                    "id": "li",
                    "name": "Li Ming",
                    "phone": "13800000001",
                    "cards": ["A1B2C3D4"],
                    "disciplines": ["elevator"],
                }
            ],
            "on_call": {
                "elevator": {"technicians": ["li"], "every": "weekly", "handoff": "08:30", "start": date(2026, 1, 5)}
            },
        }
    )


async def test_every_service_works_over_tls_with_its_own_login(
    pki: Pki, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    with secure_broker_for(tmp_path, pki, [site], simulators=True) as broker:
        roles = ("historian", "rules", "notifier", f"gateway-{site.id}", f"devices-{site.id}")
        logins = {role: broker.login(role) for role in roles}
        # No shared login: a service that fell back to it could not connect, and the test would show it.
        nobody = MqttSettings("localhost", broker.port, tls_ca=str(pki.ca))
        endpoints = Endpoints(nobody, influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}", service_mqtt=logins)
        simulator = SiteSimulator(site, seed=3, speed=10, mqtt=logins[f"devices-{site.id}"])
        sim_task = asyncio.create_task(simulator.run())
        try:
            await asyncio.wait_for(simulator.serving.wait(), 10)
            async with (
                mqtt_client(broker.login(OBSERVER)) as observer,
                system_running(site, endpoints, state_dir=tmp_path / "state") as api,
                httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
            ):
                await observer.subscribe(f"facmon/v1/{site.id}/push/#", qos=1)

                async def commands_heard() -> bool:
                    return simulator.control_ready.is_set()

                await wait_for(commands_heard, 10, "the simulators' command subscription (devices' login)")
                elevator = simulator.sims["e1"]
                assert isinstance(elevator, ElevatorSimulator)
                elevator.inject_fault(15)  # the car's alarm button: an emergency, pushed at once
                await simulator.sims["g1"].perform(STEP.validate_python({"action": "card_read", "card": "A1B2C3D4"}))

                async def work_order() -> list[dict[str, object]]:
                    items: list[dict[str, object]] = (
                        await client.get("/work-orders", params={"site": site.id})
                    ).json()["items"]
                    return items

                [opened] = await wait_for(work_order, 15, "the alarm's work order (gateway and rules over TLS)")
                assert (opened["device"], opened["fault"]) == ("e1", "15")
                async with asyncio.timeout(15):
                    push = await anext(aiter(observer.messages))
                assert push.topic.value == f"facmon/v1/{site.id}/push/li"
                assert isinstance(push.payload, bytes)
                assert json.loads(push.payload)["work_order_id"] == opened["id"]

                async def stored() -> bool:
                    def count(query: str) -> bool:
                        return bool(influxql(influxd.url, influx_db, f"{query} WHERE site = '{site.id}'"))

                    cards = "SELECT count(card) FROM events"
                    return count("SELECT count(floor) FROM elevator") and count(cards)

                await wait_for(stored, 15, "the elevator's readings and the card read in InfluxDB (historian over TLS)")
        finally:
            sim_task.cancel()
            await asyncio.gather(sim_task, return_exceptions=True)
