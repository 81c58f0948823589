"""The fire panel simulator: a seeded population, scenario steps encoded by the driver, a unit of a site listener."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from collectors.modbus.fire_panel import Flag
from collectors.registry import fire_panel_driver
from facmon.estate.site import Site
from facmon.kernel.daemons import free_port
from facmon.kernel.model import DeviceKind
from simulators.builders import BUILDERS
from simulators.fire_panel import FirePanelSimulator
from simulators.scenario import ScenarioError, parse_scenario
from simulators.site import SiteSimulator
from simulators.steps import STEP, Step
from tests.simulators.support import assert_no_leaked_tasks, wait_until

DRIVER = fire_panel_driver("fire-gb-a")
TABLE = DRIVER.point_table


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


def step(**fields: object) -> Step:
    return STEP.validate_python(fields)


def status(sim: FirePanelSimulator, point: str) -> int:
    return sim.registers("holding")[TABLE.status_address(point)]


def test_a_seed_gives_the_same_realistic_panel() -> None:
    one, again, other = (FirePanelSimulator(DRIVER, port=1, seed=s) for s in (5, 5, 6))
    points = one.points()
    assert points == again.points()
    assert [one.point_type(p) for p in points] == [again.point_type(p) for p in points]
    assert [other.point_type(p) for p in other.points()] != [one.point_type(p) for p in points]
    assert len(points) >= 220
    kinds = Counter(one.point_type(p) for p in points)
    assert kinds.most_common(1)[0][0] == "smoke_detector"
    assert kinds["smoke_detector"] > len(points) / 2
    assert set(kinds) == set(DRIVER.by_type_name), "every kind of device is on the panel"
    assert {p.split("-")[0] for p in points} == {"1", "2"}
    # The registers say the same: a type code at every present point, "not present" everywhere else.
    words = one.registers("holding")
    for point in TABLE.ids():
        if point in points:
            assert words[TABLE.status_address(point)] == 0
            assert DRIVER.point_types[words[TABLE.type_address(point)]].name == one.point_type(point)
        else:
            assert words[TABLE.status_address(point)] == 0xFFFF


async def test_point_steps_set_the_status_bits() -> None:
    sim = FirePanelSimulator(DRIVER, port=1, seed=5)
    flow, smoke, pump = (
        sim.points("water_flow_indicator")[0],
        sim.points("smoke_detector")[0],
        sim.points("fire_pump")[0],
    )
    await sim.perform(step(action="point", point=flow, state="fire"))
    assert status(sim, flow) == 0x0001, "the fire bit: the collector makes it supervisory"
    await sim.perform(step(action="point", point=flow, state="supervisory"))
    assert status(sim, flow) == 0x0009
    await sim.perform(step(action="point", point=pump, state="active"))
    assert sim.flags(pump) == {Flag.ACTIVE, Flag.FEEDBACK}
    assert status(sim, pump) == 0x0030
    await sim.perform(step(action="point", point=smoke, state="fire"))
    await sim.perform(step(action="point", point=smoke, state="fault"))
    assert status(sim, smoke) == 0x0003, "states add up"
    await sim.perform(step(action="point", point=smoke, state="disabled"))
    assert status(sim, smoke) == 0x0006, "disabling masks the fire alarm"
    await sim.perform(step(action="point", point=smoke, state="fire"))
    assert status(sim, smoke) == 0x0006, "a disabled point raises no alarm"
    words = sim.registers("holding")
    assert (words[6], words[7], words[8]) == (0, 1, 1), "the panel's own fire, fault and disabled counts"
    await sim.perform(step(action="point", point=smoke, state="absent"))
    assert status(sim, smoke) == 0xFFFF
    assert smoke not in sim.points()
    await sim.perform(step(action="point", point=smoke, state="normal"))
    assert status(sim, smoke) == 0x0000
    await sim.perform(step(action="panel", condition="bus_fault"))
    await sim.perform(step(action="set", point="resets", value=3))
    await sim.perform(step(action="set", point=smoke, value=0x0101))
    assert (words[2], words[4], status(sim, smoke)) == (1, 3, 0x0101)


async def test_garbage_lies_over_the_registers_until_stopped() -> None:
    sim = FirePanelSimulator(DRIVER, port=1, seed=5)
    await sim.perform(step(action="garbage", count=4))
    bad = sim.garbage_points()
    assert len(bad) == 4
    served = sim.registers("holding")
    refused = []
    for point in bad:
        word, code = served[TABLE.status_address(point)], served[TABLE.type_address(point)]
        with pytest.raises(ValueError, match=f"point {point}: "):
            DRIVER.decode_point(point, word, code)
        refused.append(point)
    assert refused == bad
    await sim.perform(step(action="garbage_stop"))
    assert all(status(sim, p) == 0 for p in bad)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"action": "fault", "code": 2}, "a fire panel simulator cannot fault"),
        ({"action": "point", "point": "2-128", "state": "fire"}, "has no device at point '2-128'"),
        (
            {"action": "point", "point": "SMOKE", "state": "active"},
            "photoelectric smoke detector (SMOKE) cannot be active",
        ),
        ({"action": "point", "point": "PUMP", "state": "fire"}, "a fire pump (PUMP) cannot be fire"),
        ({"action": "set", "point": "resets", "value": -1}, "does not fit"),
        ({"action": "set", "point": "nope", "value": 1}, "not a panel value"),
        ({"action": "set", "point": "SMOKE", "value": 70000}, "raw status word"),
    ],
)
def test_steps_it_cannot_take_are_refused_with_a_reason(fields: dict[str, object], problem: str) -> None:
    sim = FirePanelSimulator(DRIVER, port=1, seed=5)
    names = {"SMOKE": sim.points("smoke_detector")[0], "PUMP": sim.points("fire_pump")[0]}
    fields = {k: names.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    found = sim.problem(step(**fields))
    assert found is not None
    assert problem.replace("SMOKE", names["SMOKE"]).replace("PUMP", names["PUMP"]) in found


def _site(site_id: str, port: int) -> Site:
    address = {"host": "127.0.0.1", "port": port}
    devices = [
        {"id": "b1-e1", "kind": "elevator", "model": "elev-gb-a", "address": {**address, "unit": 1}},
        {"id": "b1-fire", "kind": "fire_panel", "model": "fire-gb-a", "address": {**address, "unit": 2}},
    ]
    return Site.model_validate({"site": {"id": site_id}, "buildings": [{"id": "b1", "devices": devices}]})


async def test_a_site_panel_shares_a_listener_and_plays_scenarios(topic_prefix: str) -> None:
    assert DeviceKind.FIRE_PANEL in BUILDERS
    port = free_port()
    probe = SiteSimulator(_site(topic_prefix, port), seed=3)
    panel = probe.sims["b1-fire"]
    assert isinstance(panel, FirePanelSimulator)
    flow = panel.points("water_flow_indicator")[0]
    scenario = parse_scenario(
        {
            "device": "b1-fire",
            "steps": [
                {"action": "point", "point": flow, "state": "fire"},
                {"action": "panel", "condition": "battery_fault"},
            ],
        }
    )
    simulator = SiteSimulator(_site(topic_prefix, port), seed=3, scenario=scenario, speed=50)
    assert len(simulator.endpoints) == 1, "the elevator and the panel answer on one listener"
    sim = simulator.sims["b1-fire"]
    assert isinstance(sim, FirePanelSimulator)
    assert sim.points() == panel.points(), "the site seed decides the population"
    task = asyncio.create_task(simulator.run())
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0, reconnect_delay=0)
    try:
        await wait_until(lambda: simulator.serving.is_set() and sim.flags(flow) == {Flag.FIRE}, what="scenario")
        await client.connect()
        address = TABLE.status_address(flow)
        words = await client.read_holding_registers(address, count=1, device_id=2)
        panel_words = await client.read_holding_registers(0, count=3, device_id=2)
        elevator = await client.read_holding_registers(0, count=1, device_id=1)
        assert (words.registers, panel_words.registers) == ([0x0001], [0, 1, 0])
        assert not elevator.isError()
    finally:
        client.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_scenario_asking_the_impossible_is_refused_before_it_runs(topic_prefix: str) -> None:
    bad = parse_scenario({"device": "b1-fire", "steps": [{"action": "point", "point": "1-200", "state": "fire"}]})
    with pytest.raises(ScenarioError, match="b1-fire: fire-gb-a has no device at point '1-200'"):
        SiteSimulator(_site(topic_prefix, free_port()), scenario=bad)
