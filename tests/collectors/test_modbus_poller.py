"""The Modbus poller against real simulators on free ports: readings, fault and status edges, derived entrapment,
dead letters, comm loss, shared links."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.registry import modbus_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import (
    FIRST_CONTACT,
    DeadLetter,
    DeviceKind,
    DeviceRef,
    Event,
    EventType,
    ModbusAddress,
    Reading,
    Value,
)
from simulators.elevator import ElevatorSimulator
from simulators.endpoint import ModbusEndpoint
from simulators.steps import (
    EntrapmentStep,
    GarbageStep,
    GarbageStopStep,
    ModeStep,
    PowerLossStep,
    PowerRestoreStep,
    ReleaseStep,
)
from tests.simulators.support import assert_no_leaked_tasks, wait_until

INTERVAL_S = 0.05


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


class Harness:
    """Pollers under test, what they emit, and the loop time at which each message arrived."""

    def __init__(self) -> None:
        self.driver: ModbusDriver = modbus_driver("elev-gb-a")
        self.clock = FakeClock()
        self.metrics = Counters()
        self.links = ModbusLinks()
        self.received: list[tuple[float, Reading | Event]] = []
        self.letters: list[DeadLetter] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def emit(self, message: Reading | Event) -> None:
        self.received.append((asyncio.get_running_loop().time(), message))

    async def reject(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def poll(
        self, device: str, port: int, unit: int = 1, driver: ModbusDriver | None = None, **options: float
    ) -> ModbusPoller:
        settings = {"interval_s": INTERVAL_S, "comm_grace_s": 3.0, "timeout_s": 0.5, "backoff_max_s": 0.2}
        settings.update(options)
        driver = driver or self.driver
        poller = ModbusPoller(
            DeviceRef(site="s", building="b", device=device, kind=DeviceKind.ELEVATOR, model=driver.model),
            ElevatorInterpreter(driver),
            ModbusAddress(host="127.0.0.1", port=port, unit=unit),
            PollTiming(**settings),
            emit=self.emit,
            reject=self.reject,
            clock=self.clock,
            metrics=self.metrics,
            links=self.links,
        )
        self.tasks.append(asyncio.create_task(poller.run(), name=f"poll-{device}"))
        return poller

    def readings(self, device: str) -> list[Reading]:
        return [m for _, m in self.received if isinstance(m, Reading) and m.ref.device == device]

    def events(self, device: str, *types: EventType) -> list[Event]:
        return [m for _, m in self.received if isinstance(m, Event) and m.ref.device == device and m.type in types]

    def count(self, device: str) -> Callable[[], int]:
        return lambda: len(self.readings(device))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.close()
    assert len(h.links) == 0, "every link closes with its last poller"


@pytest.fixture
async def sim() -> AsyncIterator[ElevatorSimulator]:
    async with ElevatorSimulator(modbus_driver("elev-gb-a"), port=free_port(), seed=2, speed=5) as sim:
        yield sim


async def test_each_poll_emits_one_reading_with_every_point(harness: Harness, sim: ElevatorSimulator) -> None:
    poller = harness.poll("e1", sim.port)
    await wait_until(lambda: len(harness.readings("e1")) >= 3, what="three readings")
    reading = harness.readings("e1")[-1]
    assert set(reading.values) == set(harness.driver.by_name)
    # Stamped with the start of the device's slot, at most one interval before now.
    assert reading.ts == poller.stamp()
    assert harness.clock.now() - timedelta(seconds=INTERVAL_S) < reading.ts <= harness.clock.now()
    assert reading.values["floors_served"] == 18
    assert harness.metrics.get("modbus_polls", device="e1") >= 3
    assert harness.metrics.get("modbus_poll_failures") == 0


async def test_fault_raised_and_cleared_within_a_few_polls(harness: Harness, sim: ElevatorSimulator) -> None:
    poller = harness.poll("e1", sim.port)
    await wait_until(lambda: len(harness.readings("e1")) >= 1, what="a first reading")
    sim.inject_fault(2)
    before = len(harness.readings("e1"))
    await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_RAISED)), what="fault_raised")
    assert len(harness.readings("e1")) - before <= 3
    (raised,) = harness.events("e1", EventType.FAULT_RAISED)
    assert (raised.code, raised.message, raised.ts) == ("2", "door close fault", poller.stamp())
    sim.clear_fault()
    await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_CLEARED)), what="fault_cleared")
    (cleared,) = harness.events("e1", EventType.FAULT_CLEARED)
    assert cleared.code == "2"
    # A code changing from one fault to another clears the first and raises the second.
    sim.inject_fault(11)
    await wait_until(lambda: len(harness.events("e1", EventType.FAULT_RAISED)) == 2, what="second fault")
    sim.inject_fault(13)
    await wait_until(lambda: len(harness.events("e1", EventType.FAULT_RAISED)) == 3, what="third fault")
    changes = [(e.type, e.code) for e in harness.events("e1", EventType.FAULT_RAISED, EventType.FAULT_CLEARED)]
    assert changes[-3:] == [
        (EventType.FAULT_RAISED, "11"),
        (EventType.FAULT_CLEARED, "11"),
        (EventType.FAULT_RAISED, "13"),
    ]


async def test_entrapment_flag_edges(harness: Harness, sim: ElevatorSimulator) -> None:
    harness.poll("e1", sim.port)
    await wait_until(lambda: len(harness.readings("e1")) >= 1, what="a first reading")
    sim.set_entrapment(True)
    await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_RAISED)), what="entrapment raised")
    (raised,) = harness.events("e1", EventType.FAULT_RAISED)
    assert (raised.code, raised.message) == ("entrapment", "passenger trapped in the car")
    sim.set_entrapment(False)
    await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_CLEARED)), what="entrapment cleared")
    assert [e.code for e in harness.events("e1", EventType.FAULT_CLEARED)] == ["entrapment"]


async def test_a_fault_present_at_start_is_reported(harness: Harness, sim: ElevatorSimulator) -> None:
    sim.inject_fault(9)
    harness.poll("e1", sim.port)
    await wait_until(lambda: len(harness.readings("e1")) >= 3, what="readings")
    assert [e.code for e in harness.events("e1", EventType.FAULT_RAISED)] == ["9"]


async def test_illegal_values_are_left_out_and_counted(harness: Harness) -> None:
    async with ElevatorSimulator(harness.driver, port=free_port(), speed=0) as frozen:
        frozen.set_value("door", 7)  # not a code of the door table
        frozen.set_value("floor", 120)  # above the driver's max of 99
        harness.poll("e1", frozen.port)
        await wait_until(lambda: len(harness.readings("e1")) >= 2, what="readings")
        reading = harness.readings("e1")[-1]
        assert "door" not in reading.values
        assert "floor" not in reading.values
        assert reading.values["service_mode"] == "normal"
        polls = len(harness.readings("e1"))
        assert harness.metrics.get("modbus_rejected_values", device="e1", point="door") >= polls
        assert harness.metrics.get("modbus_rejected_values", device="e1", point="floor") >= polls
        # Parked once per point, however many polls the bad value stays, with the words of its block.
        assert sorted(letter.reason for letter in harness.letters) == [
            "door (holding 4): raw value 7 is not a code of door",
            "floor (holding 3): raw value 120 outside -5..99",
        ]
        words = " ".join(str(frozen.registers("holding").get(a, 0)) for a in range(102))
        assert {letter.payload for letter in harness.letters} == {f"holding 0+102: {words}"}
        frozen.set_value("fault_code", 250)  # out of range: no fault event from an illegal code
        await wait_until(
            lambda: harness.metrics.get("modbus_rejected_values", device="e1", point="fault_code") >= 2,
            what="fault_code rejected",
        )
        assert harness.events("e1", EventType.FAULT_RAISED) == []


def _comm(harness: Harness, device: str) -> list[tuple[EventType, str, dict[str, Value]]]:
    return [(e.type, e.message, e.data) for e in harness.events(device, EventType.COMM_LOST, EventType.COMM_RESTORED)]


FIRST = (EventType.COMM_RESTORED, "answering", {FIRST_CONTACT: True})


async def test_the_first_answer_since_start_is_announced_once(harness: Harness, sim: ElevatorSimulator) -> None:
    harness.poll("e1", sim.port)
    await wait_until(lambda: len(harness.readings("e1")) >= 5, what="five readings")
    assert _comm(harness, "e1") == [FIRST], "one first contact, however many polls answer"
    first = harness.events("e1", EventType.COMM_RESTORED)[0]
    messages = [m for _, m in harness.received]
    assert messages.index(first) < messages.index(harness.readings("e1")[0]), "announced before its first reading"
    assert first.ts == harness.readings("e1")[0].ts


async def test_comm_lost_once_after_the_grace_then_restored(harness: Harness, sim: ElevatorSimulator) -> None:
    harness.poll("e1", sim.port, comm_grace_s=3.0)
    await wait_until(lambda: len(harness.readings("e1")) >= 1, what="a first reading")
    await sim.link_down()
    failures = lambda: harness.metrics.get("modbus_poll_failures", device="e1")  # noqa: E731
    await wait_until(lambda: failures() >= 3, what="failed polls")
    # Silent, but not yet for the grace: nothing reported beyond the first contact.
    assert _comm(harness, "e1") == [FIRST]
    harness.clock.advance(3.0)
    await wait_until(lambda: bool(harness.events("e1", EventType.COMM_LOST)), what="comm_lost")
    seen = failures()
    await wait_until(lambda: failures() >= seen + 3, what="more failed polls")
    assert len(harness.events("e1", EventType.COMM_LOST)) == 1
    readings = len(harness.readings("e1"))
    await sim.link_up()
    await wait_until(lambda: len(harness.events("e1", EventType.COMM_RESTORED)) >= 2, what="comm_restored")
    await wait_until(lambda: len(harness.readings("e1")) >= readings + 3, what="readings again")
    first, lost, restored = _comm(harness, "e1")
    assert first == FIRST
    assert lost[0] is EventType.COMM_LOST
    assert lost[1].startswith("no answer for 3.0 s: ")
    assert restored == (EventType.COMM_RESTORED, "answering again", {}), "a restore is not a first contact"


async def test_a_device_answering_only_after_its_grace_is_lost_then_restored_as_first_contact(
    harness: Harness,
) -> None:
    late = ElevatorSimulator(modbus_driver("elev-gb-a"), port=free_port(), seed=3, speed=5)
    harness.poll("e1", late.port, comm_grace_s=1.0)
    await wait_until(lambda: harness.metrics.get("modbus_poll_failures", device="e1") >= 2, what="failed polls")
    harness.clock.advance(1.0)
    await wait_until(lambda: bool(harness.events("e1", EventType.COMM_LOST)), what="comm_lost")
    async with late:
        await wait_until(lambda: len(harness.readings("e1")) >= 3, what="readings once it answers")
    [(lost, _, _), restored] = _comm(harness, "e1")
    assert lost is EventType.COMM_LOST
    assert restored == (EventType.COMM_RESTORED, "answering again", {FIRST_CONTACT: True})


async def test_a_device_that_never_answers_is_reported_and_the_poller_keeps_going(harness: Harness) -> None:
    nothing_there = free_port()
    harness.poll("e9", nothing_there, comm_grace_s=1.0)
    await wait_until(lambda: harness.metrics.get("modbus_poll_failures", device="e9") >= 2, what="failed polls")
    harness.clock.advance(1.0)
    await wait_until(lambda: bool(harness.events("e9", EventType.COMM_LOST)), what="comm_lost")
    assert not harness.tasks[0].done()


async def test_a_dead_device_does_not_slow_the_live_ones(harness: Harness) -> None:
    # The worst kind of dead: it accepts the connection and then never says a word, so every request times out.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
        writer.close()

    blackhole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    dead_port = blackhole.sockets[0].getsockname()[1]
    sims = [ElevatorSimulator(harness.driver, port=free_port(), seed=i, speed=5) for i in range(3)]
    try:
        for sim in sims:
            await sim.start()
        harness.poll("dead", dead_port, timeout_s=0.4)
        for i, sim in enumerate(sims):
            harness.poll(f"e{i}", sim.port)
        live = [f"e{i}" for i in range(3)]
        # Long enough for the dead device to time out several times while the live ones are read.
        await wait_until(
            lambda: (
                all(len(harness.readings(d)) >= 25 for d in live)
                and harness.metrics.get("modbus_poll_failures", device="dead") >= 2
            ),
            what="live readings while the dead device times out",
        )
        for device in live:
            times = [t for t, m in harness.received if isinstance(m, Reading) and m.ref.device == device]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert max(gaps) < 0.3, f"{device}: a gap of {max(gaps):.2f} s, the dead device's timeout leaked in"
            assert (times[-1] - times[0]) / len(gaps) < 1.5 * INTERVAL_S, f"{device}: the schedule drifted"
            # ...over a stretch in which the dead device's requests hung for their whole timeout at least twice.
            assert times[-1] - times[0] >= 2 * 0.4
    finally:
        await harness.close()
        for sim in sims:
            await sim.stop()
        blackhole.close()
        await blackhole.wait_closed()


async def test_units_behind_one_gateway_share_a_connection(harness: Harness) -> None:
    driver = harness.driver
    port = free_port()
    units = [ElevatorSimulator(driver, port=port, unit=unit, seed=unit, speed=5) for unit in (1, 2)]
    gateway = ModbusEndpoint("127.0.0.1", port, list(units))
    for unit in units:
        unit.attach(gateway)
    try:
        for unit in units:
            await unit.start()
        units[1].set_value("floors_served", 30)
        harness.poll("u1", port, unit=1)
        harness.poll("u2", port, unit=2, comm_grace_s=1.0)
        await wait_until(lambda: len(harness.readings("u1")) >= 2 and len(harness.readings("u2")) >= 2, what="both")
        assert len(harness.links) == 1
        assert harness.readings("u1")[-1].values["floors_served"] == 18
        assert harness.readings("u2")[-1].values["floors_served"] == 30
        units[1].inject_fault(5)
        await wait_until(lambda: bool(harness.events("u2", EventType.FAULT_RAISED)), what="u2 fault")
        assert harness.events("u1", EventType.FAULT_RAISED) == []
        # One controller behind the gateway goes quiet: only its own poller notices.
        await units[1].link_down()
        await wait_until(lambda: harness.metrics.get("modbus_poll_failures", device="u2") >= 2, what="u2 failing")
        harness.clock.advance(1.0)
        await wait_until(lambda: bool(harness.events("u2", EventType.COMM_LOST)), what="u2 comm_lost")
        count = len(harness.readings("u1"))
        await wait_until(lambda: len(harness.readings("u1")) >= count + 5, what="u1 still read")
        assert harness.events("u1", EventType.COMM_LOST) == []
        await units[1].link_up()
        await wait_until(lambda: len(harness.events("u2", EventType.COMM_RESTORED)) == 2, what="u2 restored")
        assert [e.message for e in harness.events("u1", EventType.COMM_RESTORED)] == ["answering"]
    finally:
        await harness.close()
        for unit in units:
            await unit.stop()
        await gateway.stop()


# -- model B (input registers, packed status word, E-codes, no entrapment flag) and the elevator scenario steps --


@pytest.mark.parametrize("model", ["elev-st-b", "elev-gb-a"])
async def test_entrapment_without_the_flag_is_derived_from_the_car(harness: Harness, model: str) -> None:
    driver = modbus_driver(model)
    async with ElevatorSimulator(driver, port=free_port(), seed=3, speed=5) as sim:
        harness.poll("e1", sim.port, driver=driver)
        await wait_until(lambda: len(harness.readings("e1")) >= 1, what="a first reading")
        # The scenario step, without the controller's flag (elev-st-b has none; elev-gb-a keeps its flag down).
        await sim.perform(EntrapmentStep(action="entrapment", flag=False))
        trapped = {"passenger": True, "door": "closed", "door_zone": False, "moving": False}
        seen = lambda: {k: harness.readings("e1")[-1].values.get(k) for k in trapped}  # noqa: E731
        await wait_until(lambda: seen() == trapped, what="the trapped car in the readings")
        assert harness.readings("e1")[-1].values.get("entrapment", False) is False
        # Debounced by the driver's thresholds on the poller's clock: 10 s of passenger, 45 s outside the door zone.
        harness.clock.advance(44)
        count = len(harness.readings("e1"))
        await wait_until(lambda: len(harness.readings("e1")) >= count + 3, what="polls at 44 s")
        assert harness.events("e1", EventType.FAULT_RAISED) == []
        harness.clock.advance(1)
        await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_RAISED)), what="derived entrapment")
        (raised,) = harness.events("e1", EventType.FAULT_RAISED)
        assert raised.code == "entrapment"
        assert raised.message.startswith("passenger trapped in the car: stopped outside the door zone")
        await sim.perform(ReleaseStep(action="release"))
        await wait_until(lambda: bool(harness.events("e1", EventType.FAULT_CLEARED)), what="entrapment cleared")
        assert [e.code for e in harness.events("e1", EventType.FAULT_RAISED, EventType.FAULT_CLEARED)] == [
            "entrapment",
            "entrapment",
        ]


async def test_model_b_faults_status_events_and_modes(harness: Harness) -> None:
    driver = modbus_driver("elev-st-b")
    async with ElevatorSimulator(driver, port=free_port(), seed=4, speed=5) as sim:
        harness.poll("b1", sim.port, driver=driver)
        await wait_until(lambda: len(harness.readings("b1")) >= 1, what="a first reading")
        assert harness.events("b1", EventType.STATUS) == []  # normal, on main power: nothing to say at start
        sim.inject_fault(1)  # E21 and alarm bit 1: one condition
        await wait_until(lambda: bool(harness.events("b1", EventType.FAULT_RAISED)), what="fault")
        await wait_until(lambda: harness.readings("b1")[-1].values["e_code"] == 21, what="E21 read")
        assert harness.readings("b1")[-1].values["fault_bits"] == 0b10
        sim.clear_fault()
        await wait_until(lambda: bool(harness.events("b1", EventType.FAULT_CLEARED)), what="cleared")
        faults = [
            (e.type, e.code, e.message) for e in harness.events("b1", EventType.FAULT_RAISED, EventType.FAULT_CLEARED)
        ]
        assert faults == [
            (EventType.FAULT_RAISED, "1", "safety circuit open while running (E21)"),
            (EventType.FAULT_CLEARED, "1", "safety circuit open while running (E21)"),
        ]
        await sim.perform(PowerLossStep(action="power_loss"))
        await wait_until(lambda: len(harness.events("b1", EventType.STATUS)) == 1, what="main power lost")
        await sim.perform(ModeStep(action="mode", mode="inspection"))
        await wait_until(lambda: len(harness.events("b1", EventType.STATUS)) == 2, what="inspection")
        await wait_until(lambda: harness.readings("b1")[-1].values["moving"] is False, what="the car stopped")
        await sim.perform(ModeStep(action="mode", mode="normal"))
        await sim.perform(PowerRestoreStep(action="power_restore"))
        await wait_until(lambda: len(harness.events("b1", EventType.STATUS)) == 4, what="back to normal")
        status = [(e.code, e.message, e.data) for e in harness.events("b1", EventType.STATUS)]
        assert status == [
            ("41", "main power lost", {"status_point": "power_source", "status_value": "backup"}),
            ("43", "inspection", {"status_point": "service_mode", "status_value": "inspection"}),
            ("40", "back to normal", {"status_point": "service_mode", "status_value": "normal"}),
            ("40", "back to normal", {"status_point": "power_source", "status_value": "main"}),
        ]


async def test_garbage_is_refused_parked_once_and_ends(harness: Harness) -> None:
    driver = modbus_driver("elev-st-b")
    async with ElevatorSimulator(driver, port=free_port(), seed=5, speed=5) as sim:
        harness.poll("b1", sim.port, driver=driver)
        await wait_until(lambda: len(harness.readings("b1")) >= 1, what="a first reading")
        await sim.perform(GarbageStep(action="garbage", count=100))
        garbled = {"direction", "door", "service_mode", "e_code", "floor", "load_pct", "speed", "floors_served"}
        await wait_until(lambda: not garbled & set(harness.readings("b1")[-1].values), what="garbage refused")
        count = len(harness.readings("b1"))
        await wait_until(lambda: len(harness.readings("b1")) >= count + 5, what="more polls of garbage")
        # The rest of the status word still arrives.
        assert {"moving", "door_zone", "passenger", "power_source", "trips"} <= set(harness.readings("b1")[-1].values)
        assert sorted(letter.reason.split(" ")[0] for letter in harness.letters) == sorted(garbled)
        assert harness.metrics.get("modbus_rejected_values", device="b1", point="door") >= 6
        assert harness.events("b1", EventType.FAULT_RAISED, EventType.STATUS) == []
        await sim.perform(GarbageStopStep(action="garbage_stop"))
        await wait_until(lambda: set(harness.readings("b1")[-1].values) == set(driver.by_name), what="clean again")
        assert len(harness.letters) == len(garbled)
