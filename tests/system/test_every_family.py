"""Every device family, end to end on real services: simulators -> Modbus / vendor MQTT -> gateway -> backbone ->
historian -> InfluxDB, and their faults -> rules -> work orders at the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.site import SiteSimulator
from simulators.steps import STEP
from tests.conftest import influxql
from tests.support import wait_for


def _site(site_id: str) -> Site:
    def modbus(device: str, kind: str, model: str) -> dict[str, object]:
        address = {"host": "127.0.0.1", "port": free_port(), "unit": 1}
        return {"id": device, "kind": kind, "model": model, "address": address, "poll_interval_s": 0.5}

    return Site.model_validate(
        {
            "site": {"id": site_id},
            # Vendor ids carry the test's own prefix, so tests sharing the broker never hear each other's devices.
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        modbus("ea", "elevator", "elev-gb-a"),
                        modbus("eb", "elevator", "elev-st-b"),
                        modbus("fp", "fire_panel", "fire-gb-a"),
                        {"id": "g1", "kind": "gate", "model": "barrier-a", "vendor_id": f"{site_id}-g1"},
                        {"id": "c1", "kind": "camera", "model": "camera-a", "vendor_id": f"{site_id}-c1"},
                    ],
                }
            ],
        }
    )


async def test_every_family_reaches_influxdb_and_opens_work_orders(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    endpoints = Endpoints(
        MqttSettings("127.0.0.1", mosquitto.port), influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}"
    )
    # speed 10: the camera heartbeats every 3 s instead of 30 s (its first one may come before the gateway listens).
    simulator = SiteSimulator(site, seed=3, speed=10, mqtt=MqttSettings("127.0.0.1", mosquitto.port))
    sim_task = asyncio.create_task(simulator.run())
    await asyncio.wait_for(simulator.serving.wait(), 10)
    try:
        await _exercise(site, endpoints, simulator, influxd, influx_db, tmp_path, topic_prefix)
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)


async def _exercise(
    site: Site,
    endpoints: Endpoints,
    simulator: SiteSimulator,
    influxd: Influxd,
    influx_db: str,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    async with system_running(site, endpoints, state_dir=tmp_path / "state") as api:
        fire_point = next(iter(simulator.sims["fp"].points()))  # type: ignore[attr-defined]
        for device, step in [
            ("ea", {"action": "fault", "code": 3}),
            ("eb", {"action": "fault", "code": 11}),
            ("fp", {"action": "point", "point": fire_point, "state": "fault"}),
            ("g1", {"action": "card_read", "card": "A1B2C3D4"}),
            ("c1", {"action": "camera", "condition": "tamper"}),
        ]:
            await simulator.sims[device].perform(STEP.validate_python(step))

        measurements = ["elevator", "fire_panel", "fire_panel_point", "gate", "camera"]
        missing: list[str] = []

        async def every_measurement() -> bool:
            found = {
                m: influxql(influxd.url, influx_db, f"SELECT count(*) FROM {m} WHERE site = '{topic_prefix}'")
                for m in measurements
            }
            missing[:] = [m for m, rows in found.items() if not rows]
            return not missing

        try:
            await wait_for(every_measurement, 60, "readings of every family in InfluxDB")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: none of {missing}") from None
        elevators = influxql(
            influxd.url, influx_db, f"SELECT last(floor) FROM elevator WHERE site = '{topic_prefix}' GROUP BY device"
        )
        assert len(elevators) == 2, "both elevator models write to the one elevator measurement"

        async def card_read() -> bool:
            q = f"SELECT card, granted FROM events WHERE site = '{topic_prefix}' AND type = 'card_read'"
            rows = influxql(influxd.url, influx_db, q)
            return bool(rows) and rows[0]["values"][0][1:] == ["A1B2C3D4", True]  # type: ignore[index]

        await wait_for(card_read, 30, "the card read in InfluxDB's events")

        async with httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client:

            async def work_orders() -> set[tuple[str, str]] | None:
                items = (await client.get("/work-orders", params={"site": topic_prefix})).json()["items"]
                found = {(wo["device"], wo["fault"]) for wo in items}
                return found if len(found) >= 4 else None

            found = await wait_for(work_orders, 45, "a work order for each faulted device")
        assert found >= {("ea", "3"), ("eb", "11"), ("fp", f"{fire_point}/fault"), ("c1", "tamper")}
