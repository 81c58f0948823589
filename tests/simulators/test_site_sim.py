"""The site simulator: every elevator of a site file at its address, shared listeners, MQTT commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import pytest
from pymodbus.client import AsyncModbusTcpClient

from collectors.registry import modbus_driver
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from simulators.scenario import ScenarioError, parse_scenario
from simulators.site import SiteSimulator, command_topic
from tests.simulators.support import assert_no_leaked_tasks, read_point_values, wait_until


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


def _site(site_id: str, gateway_port: int, own_port: int) -> Site:
    def elevator(device: str, port: int, unit: int) -> dict[str, object]:
        address = {"host": "127.0.0.1", "port": port, "unit": unit}
        return {"id": device, "kind": "elevator", "model": "elev-gb-a", "address": address}

    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        elevator("b1-e1", gateway_port, 1),
                        elevator("b1-e2", gateway_port, 2),
                        elevator("b1-e3", own_port, 1),
                    ],
                }
            ],
        }
    )


Start = Callable[..., Awaitable[SiteSimulator]]


@pytest.fixture
async def start(topic_prefix: str) -> AsyncIterator[Start]:
    """Run a site simulator in the background until the test ends; returns it once every device answers."""
    tasks: list[asyncio.Task[None]] = []

    async def run(**options: Any) -> SiteSimulator:
        simulator = SiteSimulator(_site(topic_prefix, free_port(), free_port()), seed=1, speed=5, **options)
        tasks.append(asyncio.create_task(simulator.run()))
        await wait_until(lambda: all(sim.answering for sim in simulator.sims.values()), what="all devices answering")
        return simulator

    yield run
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks), "run() ends only by being cancelled"


async def test_every_device_answers_at_its_address(start: Start) -> None:
    running = await start()
    driver = modbus_driver("elev-gb-a")
    sims = running.sims
    assert sorted(sims) == ["b1-e1", "b1-e2", "b1-e3"]
    assert len(running.endpoints) == 2, "b1-e1 and b1-e2 share one listener"
    sims["b1-e2"].inject_fault(4)
    sims["b1-e2"].set_value("floors_served", 30)
    for device, sim in sims.items():
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0, reconnect_delay=0)
        try:
            assert await client.connect()
            values, problems = await read_point_values(client, driver, unit=sim.unit)
        finally:
            client.close()
        assert problems == []
        assert values["fault_code"] == (4 if device == "b1-e2" else 0), device
        assert values["floors_served"] == (30 if device == "b1-e2" else 18), device


async def test_devices_and_scenario_share_the_clock_given(start: Start) -> None:
    clock = FakeClock()
    scenario = parse_scenario({"steps": [{"at_s": 30, "device": "b1-e2", "action": "entrapment"}]}, "s.yaml")
    running = await start(clock=clock, scenario=scenario)
    sims = running.sims
    assert all(sim.clock is clock for sim in sims.values())
    await clock.settle()
    before = sims["b1-e1"].snapshot()
    await clock.advance_and_settle(29.9)
    assert not sims["b1-e2"].trapped, "not before its time on the clock"
    assert sims["b1-e1"].snapshot() != before, "the cars ride on the clock"
    await clock.advance_and_settle(0.1)
    assert sims["b1-e2"].trapped


async def test_devices_of_one_seed_ride_differently() -> None:
    site = _site("s", free_port(), free_port())
    first = SiteSimulator(site, seed=5).sims
    again = SiteSimulator(site, seed=5).sims
    assert {d: s.snapshot() for d, s in first.items()} == {d: s.snapshot() for d, s in again.items()}
    assert first["b1-e1"].snapshot() != first["b1-e3"].snapshot()


def test_a_scenario_for_another_site_is_refused_at_once() -> None:
    scenario = parse_scenario({"steps": [{"at_s": 1, "device": "b7-e1", "action": "entrapment"}]}, "other.yaml")
    with pytest.raises(ScenarioError, match="unknown device 'b7-e1'"):
        SiteSimulator(_site("s", free_port(), free_port()), scenario=scenario)


@pytest.mark.services
async def test_commands_over_mqtt_bad_ones_ignored(start: Start, mosquitto: Mosquitto) -> None:
    running = await start(mqtt=MqttSettings("127.0.0.1", mosquitto.port))
    await wait_until(running.control_ready.is_set, what="the control subscription")
    site = running.site.id
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for device, payload in [
            ("b1-e1", b"not json"),
            ("b1-e1", json.dumps({"action": "explode"})),
            ("b1-e1", json.dumps({"action": "fault"})),
            ("b9-e9", json.dumps({"action": "fault", "code": 2})),
            ("b1-e1", json.dumps({"action": "set", "point": "door", "value": "ajar"})),
            ("b1-e1", json.dumps([1, 2])),
            ("b1-e3", json.dumps({"action": "fault", "code": 5})),
            ("b1-e2", json.dumps({"action": "entrapment"})),
            ("b1-e1", json.dumps({"action": "link_drop", "duration_s": 0.5})),
        ]:
            await client.publish(command_topic(site, device), payload, qos=1)
    sims = running.sims
    await wait_until(lambda: sims["b1-e2"].value("entrapment") is True, what="the entrapment command")
    assert sims["b1-e3"].value("fault_code") == 5
    assert sims["b1-e1"].value("fault_code") == 0
    # A timed link drop over MQTT: the unit goes quiet, then answers again by itself (0.5 s / speed 5).
    await wait_until(lambda: not sims["b1-e1"].answering, what="b1-e1 to go quiet")
    await wait_until(lambda: sims["b1-e1"].answering, what="b1-e1 to answer again")
    assert running.control_ready.is_set()


@pytest.mark.services
async def test_control_reconnects_after_a_broker_outage(
    mosquitto_factory: Callable[[], Mosquitto], start: Start
) -> None:
    # The broker fixture comes first so it is torn down last: the simulator leaves a live broker, as it does when
    # a process shuts down normally.
    broker = mosquitto_factory()
    running = await start(mqtt=MqttSettings("127.0.0.1", broker.port), backoff_max_s=0.5)
    await wait_until(running.control_ready.is_set, what="the control subscription")
    await asyncio.to_thread(broker.stop)
    await wait_until(lambda: not running.control_ready.is_set(), what="the control link to notice the outage")
    await asyncio.to_thread(broker.start)
    await wait_until(running.control_ready.is_set, what="the control subscription again", timeout_s=10)
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(command_topic(running.site.id, "b1-e3"), json.dumps({"action": "fault", "code": 6}), qos=1)
    await wait_until(lambda: running.sims["b1-e3"].value("fault_code") == 6, what="a command after the outage")
