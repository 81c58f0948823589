"""A third-party Modbus tool (Debian's mbpoll) reads a simulated fire panel by the map in the driver's README."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from collectors.registry import fire_panel_driver
from facmon.kernel.daemons import free_port
from simulators.fire_panel import FirePanelSimulator
from tests.simulators.support import assert_no_leaked_tasks
from tests.support import mbpoll


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


@pytest.fixture
async def panel() -> AsyncIterator[FirePanelSimulator]:
    async with FirePanelSimulator(fire_panel_driver("fire-gb-a"), port=free_port(), seed=4) as sim:
        yield sim


async def test_panel_registers_by_the_map(panel: FirePanelSimulator) -> None:
    panel.set_panel("battery_fault", True)
    regs = await mbpoll(panel.port, "-t", "4", "-r", "1", "-c", "10")
    assert regs == {1: 0, 2: 1, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 120}


async def test_a_points_status_and_type_by_protocol_address(panel: FirePanelSimulator) -> None:
    flow = panel.points("water_flow_indicator")[0]
    loop, address = (int(part) for part in flow.split("-"))
    status_address = 100 + (loop - 1) * 128 + (address - 1)
    assert await mbpoll(panel.port, "-t", "4:hex", "-0", "-r", str(status_address), "-c", "1") == {status_address: 0}
    panel.set_point(flow, "fire")
    assert await mbpoll(panel.port, "-t", "4:hex", "-0", "-r", str(status_address), "-c", "1") == {
        status_address: 0x0001
    }
    type_address = status_address + 300
    assert await mbpoll(panel.port, "-t", "4", "-0", "-r", str(type_address), "-c", "1") == {type_address: 10}


async def test_the_status_words_of_a_loop(panel: FirePanelSimulator) -> None:
    regs = await mbpoll(panel.port, "-t", "4:hex", "-r", "101", "-c", "125")
    present = {int(p.split("-")[1]) for p in panel.points() if p.startswith("1-")}
    assert {ref - 100 for ref, word in regs.items() if word != 0xFFFF} == {a for a in present if a <= 125}
    assert all(word in (0x0000, 0xFFFF) for word in regs.values())
