"""Arrival proved by the site, end to end on real services: a technician's card read at the simulated barrier travels
vendor MQTT -> gateway -> backbone -> rules worker and puts the elevator's work order on site, seen through the API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from facmon.clock import SystemClock
from facmon.metrics import Counters
from facmon.services import Influxd, Mosquitto, free_port
from facmon.site import Site
from facmon.up import Endpoints, run_system
from simulators.site import SiteSimulator
from simulators.steps import CardReadStep

CARD = "A1B2C3D4"


def _site(site_id: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {
                            "id": "e1",
                            "kind": "elevator",
                            "model": "elev-gb-a",
                            "role": "main",
                            "address": {"host": "127.0.0.1", "port": free_port(), "unit": 1},
                        },
                        # The site id in the vendor id keeps this test's barrier apart on the shared broker.
                        {"id": "gate-north", "kind": "gate", "model": "barrier-a", "vendor_id": f"{site_id}-gn"},
                    ],
                }
            ],
            "technicians": [
                {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": [CARD], "disciplines": ["elevator"]}
            ],
        }
    )


async def test_a_card_read_at_the_barrier_puts_the_work_order_on_site(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    endpoints = Endpoints("127.0.0.1", mosquitto.port, influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}")
    api_port = free_port()
    ready = asyncio.Event()
    simulator = SiteSimulator(site, seed=7, mqtt_host="127.0.0.1", mqtt_port=mosquitto.port)
    sim_task = asyncio.create_task(simulator.run())
    system = asyncio.create_task(
        run_system(
            site,
            endpoints,
            state_dir=tmp_path / "state",
            clock=SystemClock(),
            metrics=Counters(),
            api_port=api_port,
            simulate=False,
            on_ready=ready.set,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=5) as client:

            async def work_order() -> dict[str, object] | None:
                items = (await client.get("/work-orders", params={"device": "e1"})).json()["items"]
                return items[0] if items else None

            simulator.sims["e1"].inject_fault(2)  # type: ignore[attr-defined]
            deadline = time.monotonic() + 20
            while (wo := await work_order()) is None:
                assert time.monotonic() < deadline, "no work order for the fault"
                await asyncio.sleep(0.1)
            assert wo["status"] == "open"

            # The gateway's vendor subscription may not be up when the first read goes out; a technician who is
            # not let in badges again, and each read proves the same arrival.
            gate = simulator.sims["gate-north"]
            read_at = time.monotonic()
            deadline = read_at + 20
            while wo["status"] != "on_site":
                assert time.monotonic() < deadline, f"the work order stayed {wo['status']}"
                await gate.perform(CardReadStep(action="card_read", card=CARD, direction="in"))
                for _ in range(20):
                    await asyncio.sleep(0.1)
                    wo = await work_order()
                    assert wo is not None
                    if wo["status"] == "on_site":
                        break
            print(f"card read -> on_site through the API: {time.monotonic() - read_at:.2f} s")
            detail = (await client.get(f"/work-orders/{wo['id']}")).json()
            arrived = [e for e in detail["timeline"] if e.get("status") == "on_site"]
            assert [(e["source"], e["actor"]) for e in arrived] == [("card_read", "Li Ming")]
    finally:
        system.cancel()
        sim_task.cancel()
        await asyncio.gather(system, sim_task, return_exceptions=True)
