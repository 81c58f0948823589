"""Two gateways polling one device store each poll once: polls start at the device's slot and carry its start,
and the events of a slot carry the same id from either gateway (collectors.modbus.slots)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.modbus.elevator_interpreter import ElevatorInterpreter
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.modbus.slots import PLACES, phase_s, slot_start, until_next_slot_s, with_slot_id
from collectors.registry import modbus_driver
from facmon.kernel.clock import SystemClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, ModbusAddress, Reading
from simulators.elevator import ElevatorSimulator
from tests.simulators.support import wait_until

INTERVAL_S = 0.5
REF = DeviceRef(site="s", building="b", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")


@given(
    # hypothesis bounds are naive; the drawn times are UTC
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),  # noqa: DTZ001
    st.sampled_from([0.05, 0.5, 1.0, 5.0, 60.0]),
)
def test_a_slot_holds_its_time_and_the_next_one_starts_where_the_wait_ends(now: datetime, interval_s: float) -> None:
    phase = phase_s(REF, interval_s)
    assert 0 <= phase < interval_s
    start = slot_start(now, interval_s, phase)
    assert start <= now < start + timedelta(seconds=interval_s)
    wait = until_next_slot_s(now, interval_s, phase)
    assert 0 <= wait < interval_s
    following = now + timedelta(seconds=wait)
    if wait > 1e-3:  # a slot's own start (floating point aside) starts it
        assert (
            abs((slot_start(following + timedelta(microseconds=1), interval_s, phase) - following).total_seconds())
            < 1e-3
        )


def test_devices_take_different_places_in_the_interval_and_keep_them() -> None:
    other = REF.model_copy(update={"device": "e2"})
    assert phase_s(REF, 1.0) == phase_s(REF, 1.0)
    assert phase_s(REF, 1.0) != phase_s(other, 1.0)


def test_slots_start_at_a_few_places_so_polls_share_loop_turns() -> None:
    # The polls of one place start together (one wake-up of the gateway's loop); the places are spread over the
    # interval, and a thousand devices use all of them.
    refs = [REF.model_copy(update={"device": f"e{n}"}) for n in range(1000)]
    for interval_s in (0.2, 1.0, 60.0):
        phases = [phase_s(ref, interval_s) for ref in refs]
        places = {round(phase / interval_s * PLACES, 6) for phase in phases}
        assert all(place == int(place) for place in places)
        assert len(places) == PLACES


def test_equal_events_of_a_slot_have_one_id_and_others_another() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    raised = Event(ref=REF, ts=ts, type=EventType.FAULT_RAISED, code="2")
    twin = Event(ref=REF, ts=ts, type=EventType.FAULT_RAISED, code="2")
    assert raised.id != twin.id
    assert with_slot_id(raised).id == with_slot_id(twin).id
    later = twin.model_copy(update={"ts": ts + timedelta(seconds=1)})
    cleared = twin.model_copy(update={"type": EventType.FAULT_CLEARED})
    assert len({with_slot_id(e).id for e in (raised, later, cleared)}) == 3


class Gateway:
    """One gateway's poller of the device, with its own connection, and what it emitted."""

    def __init__(self, port: int) -> None:
        self.messages: list[Reading | Event] = []
        self.links = ModbusLinks()
        self.poller = ModbusPoller(
            REF,
            ElevatorInterpreter(modbus_driver("elev-gb-a")),
            ModbusAddress(host="127.0.0.1", port=port, unit=1),
            PollTiming(interval_s=INTERVAL_S, comm_grace_s=5.0, timeout_s=0.4, backoff_max_s=0.2),
            emit=self.emit,
            clock=SystemClock(),
            metrics=Counters(),
            links=self.links,
        )

    async def emit(self, message: Reading | Event) -> None:
        self.messages.append(message)

    def stamps(self) -> set[datetime]:
        return {m.ts for m in self.messages if isinstance(m, Reading)}

    def faults(self) -> list[Event]:
        return [m for m in self.messages if isinstance(m, Event) and m.type == EventType.FAULT_RAISED]


@pytest.fixture
async def sim() -> AsyncIterator[ElevatorSimulator]:
    async with ElevatorSimulator(modbus_driver("elev-gb-a"), port=free_port(), seed=3, speed=5) as sim:
        yield sim


async def test_two_gateways_polling_one_device_stamp_the_same_slots_and_events(sim: ElevatorSimulator) -> None:
    a, b = Gateway(sim.port), Gateway(sim.port)
    tasks = [asyncio.create_task(g.poller.run()) for g in (a, b)]
    try:
        await wait_until(lambda: len(a.stamps() & b.stamps()) >= 4, what="four polls of both", timeout_s=20)
        sim.inject_fault(2)
        await wait_until(lambda: bool(a.faults() and b.faults()), what="the fault from both", timeout_s=20)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Every stamp is a slot start; the polls both made carry the same stamps (a busy machine may make one of
    # them skip a slot, never stamp another time), and the fault is one event to whoever counts events by id.
    phase = phase_s(REF, INTERVAL_S)
    for stamp in a.stamps() | b.stamps():
        assert slot_start(stamp, INTERVAL_S, phase) == stamp
    shared = a.stamps() & b.stamps()
    assert len(shared) >= 0.75 * min(len(a.stamps()), len(b.stamps())), (a.stamps(), b.stamps())
    [fault_a], [fault_b] = a.faults(), b.faults()
    if fault_a.ts == fault_b.ts:
        assert fault_a.id == fault_b.id
    assert fault_a.code == fault_b.code == "2"
