"""The elevator simulator: a real pymodbus server whose registers follow a simulated car."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from collectors.modbus.driver import ModbusDriver
from collectors.registry import modbus_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.model import Value
from simulators.car import RATED_SPEED_MPS
from simulators.elevator import ElevatorSimulator
from simulators.steps import STEP, Step
from tests.simulators.support import assert_no_leaked_tasks, read_point_values, wait_until
from tests.support import eventually


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


@pytest.fixture
def driver() -> ModbusDriver:
    return modbus_driver("elev-gb-a")


@pytest.fixture
async def client_for() -> AsyncIterator[list[AsyncModbusTcpClient]]:
    clients: list[AsyncModbusTcpClient] = []
    yield clients
    for client in clients:
        client.close()


async def _client(port: int, clients: list[AsyncModbusTcpClient], timeout_s: float = 1.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    clients.append(client)
    assert await client.connect()
    return client


def _ride(sim: ElevatorSimulator, seconds: float, dt: float = 0.5) -> list[dict[str, Value]]:
    frames = []
    for _ in range(int(seconds / dt)):
        sim.step(dt)
        frames.append(sim.snapshot())
    return frames


def test_same_seed_same_ride_other_seed_other_ride(driver: ModbusDriver) -> None:
    first = _ride(ElevatorSimulator(driver, port=1, seed=42), 600)
    again = _ride(ElevatorSimulator(driver, port=1, seed=42), 600)
    other = _ride(ElevatorSimulator(driver, port=1, seed=43), 600)
    assert first == again
    assert first != other


def test_the_car_rides_between_floors_and_counts(driver: ModbusDriver) -> None:
    sim = ElevatorSimulator(driver, port=1, seed=1, floors=12)
    start = sim.snapshot()
    frames = _ride(sim, 1800, dt=0.2)
    assert len({f["floor"] for f in frames}) >= 4
    assert all(1 <= int(f["floor"]) <= 12 for f in frames)
    assert {f["door"] for f in frames} == {"closed", "opening", "open", "closing"}
    assert {f["direction"] for f in frames if f["moving"]} == {"up", "down"}
    assert all(f["direction"] == "none" and f["speed"] == 0 for f in frames if not f["moving"])
    # The door only opens level with a landing, and never while the car moves.
    assert all(f["door_zone"] and not f["moving"] for f in frames if f["door"] != "closed")
    assert any(not f["door_zone"] for f in frames if f["moving"])
    assert max(float(f["speed"]) for f in frames) == pytest.approx(RATED_SPEED_MPS)
    assert any(f["passenger"] for f in frames)
    end = sim.snapshot()
    trips = int(end["trips"]) - int(start["trips"])
    assert trips >= 10
    assert int(end["door_cycles"]) - int(start["door_cycles"]) >= trips - 1
    assert float(end["run_hours"]) > float(start["run_hours"])


def test_fault_stops_the_car_until_cleared(driver: ModbusDriver) -> None:
    sim = ElevatorSimulator(driver, port=1, seed=5)
    # Stop it mid-run: find a moment it moves.
    while not sim.value("moving"):
        sim.step(0.1)
    sim.inject_fault(1)
    assert (sim.value("fault_code"), sim.value("moving"), sim.value("speed")) == (1, False, 0)
    held = _ride(sim, 120)
    assert all(f == held[0] for f in held)
    sim.clear_fault()
    assert sim.value("fault_code") == 0
    frames = _ride(sim, 120)
    assert any(f["moving"] for f in frames)


@pytest.mark.parametrize("code", [2, 3])
def test_a_door_fault_holds_the_car_at_a_landing_with_the_door_open(driver: ModbusDriver, code: int) -> None:
    sim = ElevatorSimulator(driver, port=1, seed=5)
    while not sim.value("moving"):
        sim.step(0.1)
    sim.inject_fault(code)
    # Not between floors with the door shut: nobody is trapped by a door that will not close.
    assert (sim.value("moving"), sim.value("door_zone"), sim.value("door")) == (False, True, "open")
    held = _ride(sim, 120)
    assert all(f["door"] == "open" and f["door_zone"] and not f["moving"] for f in held)


def test_entrapment_and_release(driver: ModbusDriver) -> None:
    sim = ElevatorSimulator(driver, port=1, seed=9)
    _ride(sim, 100)
    sim.set_entrapment(True)
    trapped = {"passenger": True, "door": "closed", "moving": False, "door_zone": False, "entrapment": True}
    assert {k: sim.value(k) for k in trapped} == trapped
    assert all({k: f[k] for k in trapped} == trapped for f in _ride(sim, 120))
    sim.set_entrapment(False)
    # A rescue: the car is brought level and the door opened, then it goes back into service.
    assert (sim.value("entrapment"), sim.value("door_zone"), sim.value("door")) == (False, True, "open")
    assert any(f["moving"] for f in _ride(sim, 60))


def test_set_value_checks_names_and_encodability(driver: ModbusDriver) -> None:
    sim = ElevatorSimulator(driver, port=1)
    sim.set_value("power_source", "backup")
    assert sim.value("power_source") == "backup"
    assert sim.registers("holding")[9] == 1
    sim.set_value("trips", 0x12345678)
    assert [sim.registers("holding")[20], sim.registers("holding")[21]] == [0x1234, 0x5678]
    with pytest.raises(KeyError, match="no point 'nope'"):
        sim.set_value("nope", 1)
    with pytest.raises(ValueError, match="not one of"):
        sim.set_value("door", "ajar")
    with pytest.raises(ValueError, match="does not fit"):
        sim.set_value("trips", -1)


def test_refuses_a_driver_without_elevator_points() -> None:
    other = ModbusDriver.model_validate(
        {"model": "x", "kind": "fire_panel", "points": [{"name": "a", "address": 0, "type": "uint16"}]}
    )
    with pytest.raises(ValueError, match="no points"):
        ElevatorSimulator(other, port=1)


async def test_serves_its_state_over_modbus(driver: ModbusDriver, client_for: list[AsyncModbusTcpClient]) -> None:
    port = free_port()
    async with ElevatorSimulator(driver, port=port, seed=3, speed=0) as sim:
        sim.set_value("trips", 0x12345678)
        sim.set_value("run_hours", 20000.4)
        client = await _client(port, client_for)
        values, problems = await read_point_values(client, driver)
        assert problems == []
        assert values == {**sim.snapshot(), "speed": 0.0, "run_hours": pytest.approx(20000.4)}
        # Reserved registers inside a block read as zeros; outside the map is an illegal address.
        assert (await client.read_holding_registers(12, count=8, device_id=1)).registers == [0] * 8
        assert (await client.read_holding_registers(50, count=2, device_id=1)).registers == [0, 0]
        outside = await client.read_holding_registers(150, count=2, device_id=1)
        assert outside.isError()
        assert outside.exception_code == 2
        # Status registers are read-only.
        assert (await client.write_register(0, 2, device_id=1)).isError()


async def test_the_car_moves_on_the_clock_it_is_given(driver: ModbusDriver) -> None:
    clock = FakeClock()
    # The same ride stepped by hand: the clock's time, not the wall clock's, moves the car.
    twin = ElevatorSimulator(driver, port=1, seed=8)
    async with ElevatorSimulator(driver, port=free_port(), seed=8, clock=clock) as sim:
        await clock.settle()
        before = sim.snapshot()
        await clock.advance_and_settle(0.05)
        assert sim.snapshot() == before, "no update before a tick is due"
        await clock.advance_and_settle(300)
        twin.step(0.05 + 300)
        assert sim.snapshot() == twin.snapshot()
        assert sim.snapshot() != before
        assert clock.sleeping == [pytest.approx(300.15)], "the next tick"


async def test_live_updates_reach_the_wire(driver: ModbusDriver, client_for: list[AsyncModbusTcpClient]) -> None:
    port = free_port()
    async with ElevatorSimulator(driver, port=port, seed=11, speed=40) as sim:
        client = await _client(port, client_for)
        seen: set[Value] = set()

        async def floors() -> None:
            while len(seen) < 3:
                values, _ = await read_point_values(client, driver)
                seen.add(values["floor"])
                await asyncio.sleep(0.02)

        await asyncio.wait_for(floors(), 10)
        sim.inject_fault(7)
        values, _ = await read_point_values(client, driver)
        assert (values["fault_code"], values["moving"]) == (7, False)


async def test_link_down_closes_the_port_and_link_up_reopens_it(
    driver: ModbusDriver, client_for: list[AsyncModbusTcpClient]
) -> None:
    port = free_port()
    async with ElevatorSimulator(driver, port=port, speed=0) as sim:
        client = await _client(port, client_for)
        await sim.link_down()
        await wait_until(lambda: not client.connected, what="the server to drop the connection")
        refused = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0)
        client_for.append(refused)
        assert not await refused.connect()
        await sim.link_up()
        again = await _client(port, client_for)
        assert (await again.read_holding_registers(101, count=1, device_id=1)).registers == [18]


async def test_response_delay(driver: ModbusDriver, client_for: list[AsyncModbusTcpClient]) -> None:
    port = free_port()
    async with ElevatorSimulator(driver, port=port, speed=0) as sim:
        client = await _client(port, client_for)
        sim.set_response_delay(0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
        assert loop.time() - started >= 0.3


async def test_stop_frees_the_port_even_with_a_request_in_flight(
    driver: ModbusDriver, client_for: list[AsyncModbusTcpClient]
) -> None:
    port = free_port()
    sim = ElevatorSimulator(driver, port=port, speed=0)
    await sim.start()
    client = await _client(port, client_for, timeout_s=0.2)
    sim.set_response_delay(30)
    pending = asyncio.ensure_future(client.read_holding_registers(0, count=1, device_id=1))
    assert sim.endpoint is not None
    endpoint = sim.endpoint
    await eventually(lambda: endpoint.inflight == 1, what="the request waiting out the delay")
    await sim.stop()
    assert endpoint.inflight == 0
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pymodbus makes of a dropped connection
        await pending
    with socket.socket() as s:
        # SO_REUSEADDR: the closed connection may linger in TIME_WAIT; only a listener would still hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


# -- both models, and the elevator steps of simulators/steps.py ----------------------------------------------------


def _decoded(sim: ElevatorSimulator) -> tuple[dict[str, Value], list[str]]:
    """What a collector would decode from the words the simulator serves right now."""
    values: dict[str, Value] = {}
    problems: list[str] = []
    for block in sim.driver.blocks:
        words = sim.registers(block.table)
        part, bad = sim.driver.decode_block(
            block, [words.get(a, 0) for a in range(block.start, block.start + block.count)]
        )
        values.update(part)
        problems += bad
    return values, problems


@pytest.mark.parametrize("model", ["elev-gb-a", "elev-st-b"])
def test_every_model_rides_and_its_registers_say_so(model: str) -> None:
    sim = ElevatorSimulator(modbus_driver(model), port=1, seed=1, floors=12)
    assert _ride(ElevatorSimulator(modbus_driver(model), port=1, seed=8), 300) == _ride(
        ElevatorSimulator(modbus_driver(model), port=1, seed=8), 300
    )
    for _ in range(600):
        sim.step(0.5)
        values, problems = _decoded(sim)
        assert problems == []
        assert values == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in sim.snapshot().items()}
    assert {f["door"] for f in _ride(sim, 600)} == {"closed", "opening", "open", "closing"}


async def test_model_b_serves_input_registers(client_for: list[AsyncModbusTcpClient]) -> None:
    driver = modbus_driver("elev-st-b")
    port = free_port()
    async with ElevatorSimulator(driver, port=port, seed=3, speed=0) as sim:
        sim.set_value("trips", 0x12345678)
        sim.set_value("power_source", "backup")
        client = await _client(port, client_for)
        values, problems = await read_point_values(client, driver)
        assert problems == []
        assert values == {**sim.snapshot(), "run_hours": pytest.approx(sim.value("run_hours"))}
        # Little-endian counters; the status word's power bit.
        words = (await client.read_input_registers(0, count=10, device_id=1)).registers
        assert [words[8], words[9]] == [0x5678, 0x1234]
        assert words[0] >> 12 & 1 == 1
        # A holding-register read of an input-only device is an illegal address.
        assert (await client.read_holding_registers(0, count=1, device_id=1)).isError()


@pytest.mark.parametrize(
    ("code", "e_code", "fault_bits"),
    [(2, 31, 0), (1, 21, 0b10), (11, 71, 0b1000), (15, 0, 0b1)],
)
def test_model_b_reports_a_gb_fault_its_own_way(code: int, e_code: int, fault_bits: int) -> None:
    sim = ElevatorSimulator(modbus_driver("elev-st-b"), port=1, seed=2)
    sim.inject_fault(code)
    assert (sim.value("e_code"), sim.value("fault_bits"), sim.value("moving")) == (e_code, fault_bits, False)
    held = _ride(sim, 60)
    assert all(f == held[0] for f in held), "a faulted car holds"
    sim.clear_fault()
    assert (sim.value("e_code"), sim.value("fault_bits")) == (0, 0)
    assert any(f["moving"] for f in _ride(sim, 120))


def _steps(*raw: dict[str, object]) -> list[Step]:
    return [STEP.validate_python(r) for r in raw]


def test_problems_name_what_a_model_cannot_do() -> None:
    b = ElevatorSimulator(modbus_driver("elev-st-b"), port=1)
    a = ElevatorSimulator(modbus_driver("elev-gb-a"), port=1)
    fine = _steps(
        {"action": "fault", "code": 15},
        {"action": "clear"},
        {"action": "entrapment", "flag": True},
        {"action": "release"},
        {"action": "power_loss", "duration_s": 5},
        {"action": "power_restore"},
        {"action": "mode", "mode": "fire_return"},
        {"action": "garbage"},
        {"action": "garbage_stop"},
        {"action": "set", "point": "door", "value": "open"},
        {"action": "response_delay", "delay_s": 1},
        {"action": "link_drop"},
    )
    assert [b.problem(s) for s in fine] == [None] * len(fine)
    assert a.problem(STEP.validate_python({"action": "fault", "code": 90})) is None
    assert b.problem(STEP.validate_python({"action": "fault", "code": 90})) == (
        "elev-st-b has no way to report fault code 90"
    )
    assert b.problem(STEP.validate_python({"action": "set", "point": "entrapment", "value": True})) == (
        "elev-st-b has no point 'entrapment'"
    )
    assert "not one of" in str(b.problem(STEP.validate_python({"action": "mode", "mode": "party"})))
    assert b.problem(STEP.validate_python({"action": "card_read", "card": "ABCD"})) == (
        "an elevator simulator cannot card_read"
    )


async def test_entrapment_flag_only_where_the_model_has_one_and_the_step_asks() -> None:
    a = ElevatorSimulator(modbus_driver("elev-gb-a"), port=1, seed=9)
    b = ElevatorSimulator(modbus_driver("elev-st-b"), port=1, seed=9)
    for sim, flag in ((a, False), (b, True)):
        await sim.perform(STEP.validate_python({"action": "entrapment", "flag": flag}))
        assert sim.trapped
        trapped = {"passenger": True, "door": "closed", "moving": False, "door_zone": False}
        assert all({k: f[k] for k in trapped} == trapped for f in _ride(sim, 60))
    assert a.value("entrapment") is False
    assert "entrapment" not in b.snapshot()
    await a.perform(STEP.validate_python({"action": "release"}))
    await a.perform(STEP.validate_python({"action": "entrapment"}))
    assert a.value("entrapment") is True


async def test_power_and_service_modes() -> None:
    sim = ElevatorSimulator(modbus_driver("elev-st-b"), port=1, seed=6)
    await sim.perform(STEP.validate_python({"action": "power_loss"}))
    assert sim.value("power_source") == "backup"
    assert any(f["moving"] for f in _ride(sim, 120)), "on backup power the car still serves"
    await sim.perform(STEP.validate_python({"action": "power_restore"}))
    assert sim.value("power_source") == "main"
    while not sim.value("moving"):
        sim.step(0.1)
    # Inspection: the car stops where it is, whatever is inside.
    await sim.perform(STEP.validate_python({"action": "mode", "mode": "inspection"}))
    frames = _ride(sim, 60)
    assert all(not f["moving"] and f["service_mode"] == "inspection" for f in frames)
    # Fire return: brought to a landing, door open, empty.
    await sim.perform(STEP.validate_python({"action": "mode", "mode": "fire_return"}))
    assert (sim.value("door_zone"), sim.value("door"), sim.value("passenger")) == (True, "open", False)
    assert all(not f["moving"] for f in _ride(sim, 60))
    await sim.perform(STEP.validate_python({"action": "mode", "mode": "normal"}))
    assert any(f["moving"] for f in _ride(sim, 120))


@pytest.mark.parametrize("model", ["elev-gb-a", "elev-st-b"])
async def test_garbage_is_on_the_wire_only_until_it_stops(model: str) -> None:
    sim = ElevatorSimulator(modbus_driver(model), port=1, seed=7)
    before = sim.snapshot()
    await sim.perform(STEP.validate_python({"action": "garbage", "count": 3}))
    values, problems = _decoded(sim)
    assert len(problems) == 3
    assert len(values) == len(sim.driver.by_name) - 3
    assert sim.snapshot() == before, "the device's own state is untouched"
    # It stays garbage while the car moves on underneath.
    sim.step(5)
    assert len(_decoded(sim)[1]) == 3
    await sim.perform(STEP.validate_python({"action": "garbage_stop"}))
    assert _decoded(sim)[1] == []


def test_a_driver_without_a_fault_register_cannot_drive_it() -> None:
    driver = modbus_driver("elev-st-b")
    no_faults = ModbusDriver.model_validate({**driver.model_dump(exclude_none=True, exclude={"faults"})})
    with pytest.raises(ValueError, match="no fault register"):
        ElevatorSimulator(no_faults, port=1)
