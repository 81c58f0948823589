"""The demo estate, end to end on real services: every one of its devices is `comm: ok` at the API soon after start,
from its first answer or message alone, without ever having been lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.inprocess import demo_headers, system_running
from facmon.shell.up import Endpoints
from simulators.site import SiteSimulator
from tests.support import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_DEVICES = 31
# The demo's cameras heartbeat every 30 s, its barriers every 10 s: at 10x they are heard within a few seconds.
SPEED = 10
DEADLINE_S = 60


def _demo_site(site_id: str, mqtt_port: int) -> Site:
    """examples/demo-site.yaml with its Modbus devices on free ports, and its barriers and cameras on the test broker
    under a topic prefix of their own (the site id too), so tests sharing the broker never hear each other."""
    raw: dict[str, Any] = yaml.safe_load((EXAMPLES / "demo-site.yaml").read_text(encoding="utf-8"))
    raw["site"]["id"] = site_id
    raw["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "topic_prefix": site_id}
    for building in raw["buildings"]:
        for device in building["devices"]:
            if "address" in device:
                device["address"]["port"] = free_port()
    return Site.model_validate(raw)


async def test_every_demo_device_is_comm_ok_soon_after_start(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _demo_site(topic_prefix, mosquitto.port)
    assert len(list(site.devices())) == DEMO_DEVICES
    endpoints = Endpoints(
        MqttSettings("127.0.0.1", mosquitto.port), influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}"
    )
    simulator = SiteSimulator(site, seed=11, speed=SPEED, mqtt=MqttSettings("127.0.0.1", mosquitto.port))
    sim_task = asyncio.create_task(simulator.run())
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        started = time.monotonic()
        async with (
            system_running(site, endpoints, state_dir=tmp_path / "state") as api,
            httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
        ):
            listed: list[dict[str, Any]] = []

            async def all_ok() -> bool:
                response = await client.get("/devices", params={"site": topic_prefix})
                assert response.status_code == 200, response.text
                listed[:] = response.json()["items"]
                return len(listed) == DEMO_DEVICES and all(d["comm"] == "ok" for d in listed)

            try:
                left_s = round(DEADLINE_S - (time.monotonic() - started), 1)
                await wait_for(all_ok, left_s, f"every demo device comm ok ({DEADLINE_S} s after start)")
            except AssertionError as exc:
                behind = sorted(f"{d['id']}:{d['comm']}" for d in listed if d["comm"] != "ok")
                raise AssertionError(f"{exc}; not ok: {behind}") from None
            print(f"all {DEMO_DEVICES} demo devices comm ok {time.monotonic() - started:.1f} s after start")

            # Each was found by its first contact, and nothing was ever lost.
            assert all(d["comm_since"] is not None and d["state"] in ("ok", "fault") for d in listed), listed
            items = (await client.get("/work-orders", params={"site": topic_prefix})).json()["items"]
            assert [wo for wo in items if wo["fault"] == "comm_lost"] == []
            elevator = (await client.get(f"/devices/{topic_prefix}/b1-e1")).json()
            assert (elevator["comm"], elevator["state"]) == ("ok", "ok")
            assert elevator["last_heard_at"] is not None
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
