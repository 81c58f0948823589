"""The service plan, end to end through the real services at 20x speed: an entrapment seen from the car's state,
a fire point in fault, a peak elevator out of service in the morning peak, and the technician's card read at the
gate proving arrival for all of them.

The system runs on a `ScaledClock` that starts at 05:58 site time and runs 20 times faster, and the simulators play
their scenario at the same speed, so minutes of site time pass in seconds without any component being told.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from facmon.estate.site import Site
from facmon.kernel.clock import ScaledClock
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.scenario import parse_scenario
from simulators.site import SiteSimulator
from tests.support import wait_for

SPEED = 20.0
CARD = "A1B2C3D4"


def _site(site_id: str) -> Site:
    def modbus(device: str, kind: str, model: str, role: str | None = None) -> dict[str, object]:
        address = {"host": "127.0.0.1", "port": free_port(), "unit": 1}
        entry = {"id": device, "kind": kind, "model": model, "address": address, "poll_interval_s": 0.5}
        return entry | ({"role": role} if role else {})

    return Site.model_validate(
        {
            "site": {"id": site_id, "timezone": "Asia/Shanghai"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        modbus("main", "elevator", "elev-st-b", "main"),  # no entrapment flag: derived
                        modbus("peak", "elevator", "elev-gb-a", "peak"),
                        modbus("fp", "fire_panel", "fire-gb-a"),
                        {"id": "gate", "kind": "gate", "model": "barrier-a", "vendor_id": f"{site_id}-gate"},
                    ],
                }
            ],
            "technicians": [
                {
                    "id": "li",
                    "name": "Li Ming",
                    "phone": "13800000001",
                    "cards": [CARD],
                    "disciplines": ["elevator", "fire"],
                }
            ],
        }
    )


async def test_entrapment_fire_fault_peak_outage_and_card_arrival(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    site = _site(topic_prefix)
    endpoints = Endpoints(
        MqttSettings("127.0.0.1", mosquitto.port), influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}"
    )
    start = datetime(2026, 11, 25, 5, 58, tzinfo=ZoneInfo("Asia/Shanghai"))
    clock = ScaledClock(start, SPEED)
    simulator = SiteSimulator(site, seed=11, speed=SPEED, mqtt=MqttSettings("127.0.0.1", mosquitto.port))
    fire_point = next(iter(simulator.sims["fp"].points()))  # type: ignore[attr-defined]
    # Site-time seconds after the simulators start (the system's clock starts a moment earlier: close enough).
    scenario = parse_scenario(
        {
            "steps": [
                {"at_s": 20, "device": "main", "action": "entrapment", "flag": False},
                {"at_s": 30, "device": "fp", "action": "point", "point": fire_point, "state": "fault"},
                # 05:58:40 is before the 06:00-08:00 window; it opens with the peak car still out.
                {"at_s": 40, "device": "peak", "action": "mode", "mode": "out_of_service"},
                {"at_s": 300, "device": "gate", "action": "card_read", "card": CARD, "direction": "in"},
            ]
        }
    )
    simulator.scenario = scenario
    sim_task = asyncio.create_task(simulator.run())
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with (
            system_running(site, endpoints, state_dir=tmp_path / "state", clock=clock) as api,
            httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
        ):

            async def orders(expected: int) -> dict[tuple[str, str], dict[str, object]] | None:
                items = (await client.get("/work-orders", params={"site": topic_prefix})).json()["items"]
                found = {(str(wo["device"]), str(wo["fault"])): wo for wo in items}
                return found if len(found) >= expected else None

            # 300 s of site time at 20x: the three work orders open within ~15 s of wall time.
            found = await wait_for(lambda: orders(3), 30, "work orders for entrapment, fire point and peak car")
            keys = set(found)
            assert ("main", "entrapment") in keys
            assert ("fp", f"{fire_point}/fault") in keys
            peak = [key for key in keys if key[0] == "peak"]
            assert peak, f"no work order for the peak elevator out of service in the peak window: {keys}"

            entrapment = found[("main", "entrapment")]
            assert entrapment["priority"] == "emergency"
            detected = datetime.fromisoformat(str(entrapment["detected_at"]))
            # Passenger trapped at 05:58:20 site time, seen after the 45 s threshold (plus a poll or two).
            assert start + timedelta(seconds=60) <= detected <= start + timedelta(seconds=90), detected
            peak_detected = datetime.fromisoformat(str(found[peak[0]]["detected_at"]))
            assert peak_detected >= start + timedelta(minutes=2), "opened only once the 06:00 window began"

            # The card read at 06:03 site time puts every one of them on site, as Li covers elevators and fire.
            async def all_on_site() -> bool:
                now = await orders(3)
                return now is not None and all(wo["status"] == "on_site" for wo in now.values())

            await wait_for(all_on_site, 30, "the card read to put the work orders on site")
            detail = (await client.get(f"/work-orders/{entrapment['id']}")).json()
            arrival = [e for e in detail["timeline"] if e.get("status") == "on_site"]
            assert arrival, detail["timeline"]
            assert arrival[0]["source"] == "card_read"
            assert arrival[0]["actor"] == "Li Ming"
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
