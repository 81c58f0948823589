"""A third-party Modbus tool (Debian's mbpoll) reads the simulator by the register map in the driver's README."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from collectors.registry import modbus_driver
from facmon.kernel.daemons import free_port
from simulators.elevator import ElevatorSimulator
from tests.simulators.support import assert_no_leaked_tasks
from tests.support import mbpoll


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


@pytest.fixture
async def sim() -> AsyncIterator[ElevatorSimulator]:
    # speed=0: the car holds still, so what mbpoll prints and what the simulator holds are the same moment.
    async with ElevatorSimulator(modbus_driver("elev-gb-a"), port=free_port(), seed=4, speed=0) as sim:
        sim.set_value("service_mode", "inspection")
        sim.set_value("floor", 7)
        sim.inject_fault(11)
        sim.set_value("trips", 0x0123ABCD)
        sim.set_value("run_hours", 54321.7)
        yield sim


async def test_live_block_by_the_register_map(sim: ElevatorSimulator) -> None:
    # The command of the driver's README: holding registers 1..26 (protocol addresses 0..25).
    regs = await mbpoll(sim.port, "-t", "4", "-r", "1", "-c", "26")
    assert sorted(regs) == list(range(1, 27))
    assert regs[1] == 2  # service_mode: inspection
    assert sim.value("service_mode") == "inspection"
    assert regs[4] == sim.value("floor") == 7
    assert regs[11] == sim.value("fault_code") == 11
    assert regs[12] == int(sim.value("entrapment"))
    # 32-bit counters: high word first (word_order: big).
    assert (regs[21] << 16) | regs[22] == sim.value("trips") == 0x0123ABCD
    assert (regs[23] << 16) | regs[24] == round(float(sim.value("run_hours")) * 10) == 543217
    assert (regs[25] << 16) | regs[26] == sim.value("door_cycles")


async def test_32_bit_counters_with_mbpoll_int_type(sim: ElevatorSimulator) -> None:
    # -t 4:int -B reads each counter as one big-endian 32-bit value: one reference per counter.
    regs = await mbpoll(sim.port, "-t", "4:int", "-B", "-r", "21", "-c", "3")
    assert regs == {21: 0x0123ABCD, 23: 543217, 25: sim.value("door_cycles")}


async def test_identity_block(sim: ElevatorSimulator) -> None:
    regs = await mbpoll(sim.port, "-t", "4", "-r", "101", "-c", "2")
    assert regs == {101: sim.value("firmware"), 102: sim.value("floors_served")}


async def test_model_b_input_registers_by_its_register_map() -> None:
    # The commands of elev_st_b/README.md: input registers (-t 3), a packed status word, little-endian counters.
    async with ElevatorSimulator(modbus_driver("elev-st-b"), port=free_port(), seed=4, speed=0) as sim:
        sim.set_value("trips", 0x0123ABCD)
        sim.set_value("power_source", "backup")
        sim.inject_fault(1)
        regs = await mbpoll(sim.port, "-t", "3", "-r", "1", "-c", "22")
        assert sorted(regs) == list(range(1, 23))
        assert regs[1] >> 12 & 1 == 1  # power source: backup
        assert regs[1] >> 8 & 1 == int(sim.value("door_zone"))
        assert regs[3] == sim.value("e_code") == 21  # GB fault 1 as E21...
        assert regs[4] == sim.value("fault_bits") == 0b10  # ...and as alarm bit 1
        assert regs[5] == sim.value("floor")
        assert regs[9] | regs[10] << 16 == 0x0123ABCD
        counters = await mbpoll(sim.port, "-t", "3:int", "-r", "9", "-c", "3")
        run_hours_raw = round(float(sim.value("run_hours")) * 100)
        assert counters == {9: 0x0123ABCD, 11: run_hours_raw, 13: sim.value("door_cycles")}
