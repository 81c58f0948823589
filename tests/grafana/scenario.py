"""A small estate and a scenario that gives every Grafana panel something to show, played through the whole system
into a real InfluxDB.

Two buildings (so the `building` variable has a choice), every device family, and in a few minutes of site time:
faults on both elevator models, an entrapment (left unacknowledged, so its SLA clocks breach), a controller link
drop (comm lost), a fire point in fault, a point disabled, a fire alarm, a panel battery fault, a barrier fault,
granted and refused card reads, a camera condition and a camera going silent, and finally the technician's card
read that puts the open work orders on site.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from facmon.estate.site import Site
from facmon.kernel.clock import ScaledClock
from facmon.kernel.daemons import free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import system_running
from simulators.scenario import parse_scenario
from simulators.scenario import play as scenario_play
from simulators.site import SiteSimulator
from tests.conftest import influxql
from tests.support import wait_for

# Site time runs this many times faster than the wall clock: an elevator work order's 20 min on-site clock runs
# out 20 s after it opens, and the whole scenario takes 24 s.
SPEED = 60.0
CARD = "A1B2C3D4"
SILENT_CAMERA = "cam-2"
ENTRAPPED = "b2-e1"


@dataclass(frozen=True)
class Played:
    """What the scenario left in InfluxDB: the database, the site and the time range to query."""

    url: str
    db: str
    site: str
    start: datetime
    end: datetime


def site_file(site_id: str) -> Site:
    def modbus(device: str, kind: str, model: str) -> dict[str, object]:
        address = {"host": "127.0.0.1", "port": free_port(), "unit": 1}
        device_entry: dict[str, object] = {
            "id": device, "kind": kind, "model": model, "address": address, "poll_interval_s": 0.2
        }  # fmt: skip
        if kind == "fire_panel":
            # A panel's reading holds for its comm grace in the intact rate. At 60 times speed, each real second the
            # readings spend on their way through one busy process is a minute of site time; an hour of grace (a
            # real minute) keeps the panels answering, and no step of the scenario is a panel falling silent.
            device_entry["comm_grace_s"] = 3600
        return device_entry

    def mqtt(device: str, kind: str, model: str) -> dict[str, object]:
        # Vendor ids carry the site id, so tests sharing the broker never hear each other's devices.
        return {"id": device, "kind": kind, "model": model, "vendor_id": f"{site_id}-{device}"}

    return Site.model_validate(
        {
            "site": {"id": site_id, "timezone": "Asia/Shanghai"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        modbus("b1-e1", "elevator", "elev-gb-a"),
                        modbus("b1-e2", "elevator", "elev-st-b"),
                        modbus("b1-fp", "fire_panel", "fire-gb-a"),
                        mqtt("gate-1", "gate", "barrier-a"),
                        mqtt("cam-1", "camera", "camera-a"),
                    ],
                },
                {
                    "id": "b2",
                    "devices": [
                        modbus(ENTRAPPED, "elevator", "elev-st-b"),
                        modbus("b2-fp", "fire_panel", "fire-gb-a"),
                        mqtt("gate-2", "gate", "barrier-a"),
                        mqtt(SILENT_CAMERA, "camera", "camera-a"),
                    ],
                },
            ],
            "technicians": [
                {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": [CARD], "disciplines": ["elevator"]}
            ],
        }
    )


SCENARIO = {
    "steps": [
        {"at_s": 10, "device": "b1-e1", "action": "fault", "code": 2},
        {"at_s": 15, "device": ENTRAPPED, "action": "entrapment", "flag": False},
        {"at_s": 20, "device": "b1-fp", "action": "point", "point": "1-004", "state": "fault"},
        {"at_s": 25, "device": "b2-fp", "action": "point", "point": "1-033", "state": "disabled"},
        {"at_s": 30, "device": "gate-1", "action": "card_read", "card": "0000BEEF", "granted": False},
        {"at_s": 35, "device": "gate-1", "action": "card_read", "card": "5A5A0001", "direction": "in"},
        {"at_s": 40, "device": "gate-2", "action": "barrier_stuck"},
        {"at_s": 45, "device": "gate-2", "action": "card_read", "card": "5A5A0002", "direction": "in"},
        {"at_s": 50, "device": "cam-1", "action": "camera", "condition": "tamper"},
        {"at_s": 60, "device": "b1-e2", "action": "fault", "code": 3},  # door open fault: at a landing
        {"at_s": 60, "device": "b2-fp", "action": "point", "point": "1-002", "state": "fire"},
        {"at_s": 70, "device": "b1-fp", "action": "panel", "condition": "battery_fault"},
        {"at_s": 80, "device": "b1-e1", "action": "link_drop", "duration_s": 60},
        {"at_s": 90, "device": SILENT_CAMERA, "action": "heartbeat_stop"},
        {"at_s": 200, "device": "b2-fp", "action": "point", "point": "1-002", "state": "normal"},
        # After the elevator work orders' 20 min on-site clocks ran out (they open 10-70 s in): the technician
        # arrives, late for all three.
        {"at_s": 1400, "device": "gate-1", "action": "card_read", "card": CARD, "direction": "in"},
    ]
}


async def play(url: str, db: str, mqtt_port: int, site_id: str, state_dir: Path) -> Played:
    """Run simulators and the whole system, then the scenario, until everything the dashboards show is in InfluxDB."""
    site = site_file(site_id)
    endpoints = Endpoints(MqttSettings("127.0.0.1", mqtt_port), url, db, f"sqlite:///{state_dir / 'wo.db'}")
    # 11:00 on the site: no peak window, no role rules (the cars have no roles either).
    start = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    clock = ScaledClock(start, SPEED)
    simulator = SiteSimulator(site, seed=5, speed=SPEED, mqtt=MqttSettings("127.0.0.1", mqtt_port))
    scenario = parse_scenario(SCENARIO)
    sim_task = asyncio.create_task(simulator.run())
    try:
        async with asyncio.timeout(10):
            await simulator.serving.wait()
        async with system_running(site, endpoints, state_dir=state_dir / "state", clock=clock):
            # The scenario starts once the system listens, so its times are the system's too. The dashboards are
            # asked about the time from here on: site time runs 60 times faster while the system starts, and on a
            # busy machine those site minutes of readings before the first fault would change every share.
            begun = clock.now() - timedelta(seconds=2)
            await scenario_play(scenario, simulator.sims, speed=SPEED)

            async def arrived() -> bool:
                q = f"SELECT count(work_order_id) FROM work_orders WHERE site = '{site_id}' AND event = 'on_site'"
                return bool(influxql(url, db, q))

            await wait_for(arrived, 15, "the technician's card read to put work orders on site")
            end = clock.now() + timedelta(seconds=1)

            async def recorded() -> bool:  # the historian's path is not the rules': wait for the read itself too
                q = f"SELECT count(card) FROM events WHERE site = '{site_id}' AND type = 'card_read'"
                return bool(influxql(url, db, f"{q} AND card = '{CARD}'"))

            # On a busy machine the historian may be well behind the rules; what the dashboards show is its work.
            await wait_for(recorded, 90, "the technician's card read in InfluxDB")
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
    return Played(url=url, db=db, site=site_id, start=begun, end=end)


def create_database(url: str, db: str) -> None:
    httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
