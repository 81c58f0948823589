"""The spine, end to end on real services: simulator -> Modbus -> gateway -> MQTT -> rules/historian -> API/InfluxDB."""

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
from tests.conftest import influxql


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


async def _wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def test_fault_becomes_work_order_and_readings_reach_influxdb(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    endpoints = Endpoints("127.0.0.1", mosquitto.port, influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}")
    api_port = free_port()
    ready = asyncio.Event()
    simulator = SiteSimulator(site, seed=7)
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
    api = f"http://127.0.0.1:{api_port}/api/v1"
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with httpx.AsyncClient(base_url=api, timeout=5) as client:
            # The devices are polled and their readings reach InfluxDB before anything goes wrong.
            async def readings() -> bool:
                series = influxql(influxd.url, influx_db, "SELECT count(floor) FROM elevator GROUP BY device")
                return len(series) == 2

            await _wait_for(readings, 20, "readings of both elevators in InfluxDB")
            assert (await client.get("/work-orders")).json()["items"] == []

            simulator.sims["e1"].inject_fault(2)
            injected = time.monotonic()

            async def work_order() -> dict[str, object] | None:
                items = (await client.get("/work-orders", params={"device": "e1"})).json()["items"]
                return items[0] if items else None

            wo = await _wait_for(work_order, 5, "the work order through the API")
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

            await _wait_for(fault_in_influx, 10, "the fault in InfluxDB")
    finally:
        system.cancel()
        sim_task.cancel()
        await asyncio.gather(system, sim_task, return_exceptions=True)
