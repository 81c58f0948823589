"""The spine, end to end on real services: simulator -> Modbus -> gateway -> MQTT -> rules/historian -> API/InfluxDB."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.site import SiteSimulator
from tests.conftest import influxql
from tests.support import wait_for


def _site(site_id: str) -> Site:
    ports = [free_port(), free_port()]
    return Site.model_validate(
        {
            "site": {"id": site_id, "timezone": "Asia/Shanghai"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {
                            "id": f"e{i + 1}",
                            "kind": "elevator",
                            "model": "elev-gb-a",
                            "role": role,
                            "address": {"host": "127.0.0.1", "port": port, "unit": 1},
                            "poll_interval_s": 1,
                        }
                        for i, (role, port) in enumerate(zip(["main", "backup"], ports, strict=True))
                    ],
                }
            ],
        }
    )


async def test_fault_becomes_work_order_and_readings_reach_influxdb(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    endpoints = Endpoints(
        MqttSettings("127.0.0.1", mosquitto.port), influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}"
    )
    simulator = SiteSimulator(site, seed=7)
    sim_task = asyncio.create_task(simulator.run())
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with (
            system_running(site, endpoints, state_dir=tmp_path / "state") as api,
            httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
        ):
            # The devices are polled and their readings reach InfluxDB before anything goes wrong.
            async def readings() -> bool:
                series = influxql(influxd.url, influx_db, "SELECT count(floor) FROM elevator GROUP BY device")
                return len(series) == 2

            await wait_for(readings, 20, "readings of both elevators in InfluxDB")
            assert (await client.get("/work-orders")).json()["items"] == []

            simulator.sims["e1"].inject_fault(2)
            injected = time.monotonic()

            async def work_order() -> dict[str, object] | None:
                items = (await client.get("/work-orders", params={"device": "e1"})).json()["items"]
                return items[0] if items else None

            wo = await wait_for(work_order, 5, "the work order through the API")
            latency = time.monotonic() - injected
            print(f"fault -> work order visible through the API: {latency:.2f} s")
            assert wo["fault"] == "2"
            assert wo["status"] == "open"
            assert wo["site"] == topic_prefix

            detail = (await client.get(f"/work-orders/{wo['id']}")).json()
            assert detail["device"] == "e1"

            # The readings carry the fault too, and InfluxQL sees the event.
            async def fault_in_influx() -> bool:
                rows = influxql(influxd.url, influx_db, "SELECT last(fault_code) FROM elevator WHERE device = 'e1'")
                events = influxql(
                    influxd.url, influx_db, "SELECT count(message) FROM events WHERE \"type\" = 'fault_raised'"
                )
                return bool(rows) and rows[0]["values"][0][1] == 2 and bool(events)  # type: ignore[index]

            await wait_for(fault_in_influx, 10, "the fault in InfluxDB")
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
