"""The barrier simulator through a real Mosquitto into the MQTT collector: the arm's cycle, a stuck arm's limit
fault, going quiet and coming back, garbage, and seeded routine traffic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from collectors.mqtt.codec import Problem
from collectors.registry import mqtt_driver
from facmon.kernel.clock import Clock, FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, EventType
from facmon.kernel.mqtt import MqttSettings
from simulators.gate import LIMIT_TIMEOUT_S, TRAVEL_S, BarrierSimulator, RoutineTraffic
from simulators.steps import (
    BarrierStuckStep,
    CameraStep,
    CardReadStep,
    GarbageStep,
    HeartbeatStartStep,
    HeartbeatStopStep,
    LinkDropStep,
    LinkRestoreStep,
    SetStep,
)
from tests.collectors.mqtt_support import Recorder, collecting, make_collector, mqtt_device
from tests.simulators.support import assert_no_leaked_tasks, wait_until

SPEED = 20.0  # the arm travels in 0.125 s, a heartbeat every 0.5 s


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


class Gate:
    """A barrier simulator and a collector listening to it, both on the test's own topic prefix."""

    def __init__(self, sim: BarrierSimulator, rec: Recorder, metrics: Counters) -> None:
        self.sim, self.rec, self.metrics = sim, rec, metrics

    def positions(self) -> list[Any]:
        """The arm's positions as the collector saw them, repeats of the same position folded."""
        seen: list[Any] = []
        for r in self.rec.readings("g1"):
            if "position" in r.values and (not seen or seen[-1] != r.values["position"]):
                seen.append(r.values["position"])
        return seen

    def loop(self) -> list[Any]:
        seen: list[Any] = []
        for r in self.rec.readings("g1"):
            if "loop_occupied" in r.values and (not seen or seen[-1] != r.values["loop_occupied"]):
                seen.append(r.values["loop_occupied"])
        return seen


Start = Callable[..., Awaitable[Gate]]


@pytest.fixture
async def gate(mosquitto: Mosquitto, topic_prefix: str) -> AsyncIterator[Start]:
    stack = contextlib.AsyncExitStack()

    async def start(seed: int = 0, grace_s: float = 60.0, clock: Clock | None = None, **options: Any) -> Gate:
        """The barrier and its collector; a `clock` given is shared by both (default: each its own time)."""
        rec, metrics = Recorder(), Counters()
        device = mqtt_device("g1", "barrier-a", "G01", grace_s)
        collector = make_collector(mosquitto.port, topic_prefix, [device], rec, clock=clock, metrics=metrics)
        await stack.enter_async_context(collecting(collector))
        sim = BarrierSimulator(
            mqtt_driver("barrier-a"), broker=MqttSettings("127.0.0.1", mosquitto.port), device_id="g1", vendor_id="G01",
            seed=seed, speed=SPEED, topic_prefix=topic_prefix, clock=clock, **options,
        )  # fmt: skip
        stack.push_async_callback(sim.stop)
        await sim.start()
        await wait_until(lambda: sim.answering, what="the barrier to connect")
        # It says where its arm is as soon as it connects.
        await wait_until(lambda: bool(rec.readings("g1")), what="the barrier's first state")
        return Gate(sim, rec, metrics)

    async with stack:
        yield start


async def test_a_granted_card_runs_the_arm_through_a_passage(gate: Start) -> None:
    g = await gate(seed=0)  # seed 0: the vehicle turns up
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await g.sim.perform(CardReadStep(action="card_read", card="0A1B2C3D", granted=True, direction="in"))
    await wait_until(lambda: g.positions()[-1:] == ["lowered"] and len(g.positions()) > 1, what="the arm down again")
    elapsed = loop.time() - t0

    (card,) = g.rec.events("g1", EventType.CARD_READ)
    assert card.data == {"card": "0A1B2C3D", "granted": True, "direction": "in"}
    assert g.positions() == ["lowered", "opening", "raised", "closing", "lowered"]
    assert g.loop() == [False, True, False], "the vehicle drove onto the loop and off it"
    reasons = [r.values.get("reason") for r in g.rec.readings("g1") if "position" in r.values]
    assert "card" in reasons, "opened for the card"
    assert reasons[-1] == "loop", "closed when the loop cleared"
    # Two arm movements plus the vehicle passing take seconds of simulated time, not an instant.
    assert elapsed >= 2 * TRAVEL_S / SPEED


async def test_a_vehicle_that_never_comes_lets_the_arm_close_on_its_timer(gate: Start) -> None:
    g = await gate(seed=14)  # seed 14: the vehicle turns back
    await g.sim.perform(CardReadStep(action="card_read", card="0A1B2C3D"))
    await wait_until(lambda: g.positions()[-1:] == ["lowered"] and len(g.positions()) > 1, what="auto close")
    assert g.loop() == [False]
    assert g.rec.readings("g1")[-1].values["reason"] == "auto_close"


async def test_a_denied_card_leaves_the_arm_down(gate: Start) -> None:
    clock = FakeClock()
    g = await gate(clock=clock)
    await g.sim.perform(CardReadStep(action="card_read", card="99F00D", granted=False, direction="out"))
    await wait_until(lambda: bool(g.rec.events("g1", EventType.CARD_READ)), what="the card read")
    # Long enough for an arm sent up to be up and on its way (a passage takes at least 2 travels and 3 s more).
    await clock.advance_and_settle(3 * TRAVEL_S)
    assert g.positions() == ["lowered"]
    assert not g.sim.busy


async def test_a_stuck_arm_stops_midway_and_reports_the_limit_fault(gate: Start) -> None:
    g = await gate(seed=0)
    loop = asyncio.get_running_loop()
    await g.sim.perform(BarrierStuckStep(action="barrier_stuck", on=True))
    t0 = loop.time()
    await g.sim.perform(CardReadStep(action="card_read", card="0A1B2C3D"))
    await wait_until(lambda: bool(g.rec.events("g1", EventType.FAULT_RAISED)), what="the limit fault")
    (fault,) = g.rec.events("g1", EventType.FAULT_RAISED)
    assert (fault.code, fault.message) == ("limit_timeout", "the arm did not reach its limit in time")
    assert loop.time() - t0 >= LIMIT_TIMEOUT_S / SPEED * 0.9, "the controller waits for its limit timer"
    assert g.positions() == ["lowered", "opening", "stopped_midway"]

    await g.sim.perform(BarrierStuckStep(action="barrier_stuck", on=False))
    await wait_until(lambda: bool(g.rec.events("g1", EventType.FAULT_CLEARED)), what="the fault to clear")
    await wait_until(lambda: g.positions()[-1] == "lowered", what="the passage to finish")
    assert g.positions() == ["lowered", "opening", "stopped_midway", "opening", "raised", "closing", "lowered"]
    assert len(g.rec.events("g1", EventType.FAULT_RAISED)) == 1


def _restored_after_loss(events: list[Event]) -> bool:
    """A comm_restored after the comm_lost (the first contact before it does not count)."""
    types = [e.type for e in events]
    return EventType.COMM_LOST in types and EventType.COMM_RESTORED in types[types.index(EventType.COMM_LOST) :]


async def test_heartbeat_stop_is_comm_lost_and_start_is_restored(gate: Start) -> None:
    clock = FakeClock()
    interval_s = mqtt_driver("barrier-a").heartbeat.interval_s
    g = await gate(grace_s=2 * interval_s, clock=clock)

    def heartbeats() -> int:
        return sum("cycles" in r.values for r in g.rec.readings("g1"))

    async def next_heartbeat() -> None:
        heard = heartbeats()
        await clock.advance_and_settle(interval_s)
        await wait_until(lambda: heartbeats() > heard, what="the next heartbeat")

    # Three intervals, longer than the grace: only the heartbeats keep it alive.
    for _ in range(3):
        await next_heartbeat()
    assert not g.rec.events("g1", EventType.COMM_LOST), "heartbeats keep it alive"
    await g.sim.perform(HeartbeatStopStep(action="heartbeat_stop"))
    await clock.advance_and_settle(2 * interval_s)
    await wait_until(lambda: bool(g.rec.events("g1", EventType.COMM_LOST)), what="comm_lost")
    assert g.sim.answering, "the link stays up; the device is only quiet"
    await g.sim.perform(HeartbeatStartStep(action="heartbeat_start"))
    await wait_until(lambda: _restored_after_loss(g.rec.events("g1")), what="comm_restored")


async def test_link_drop_disconnects_and_link_restore_comes_back(gate: Start) -> None:
    g = await gate(grace_s=1.0)
    await g.sim.perform(LinkDropStep(action="link_drop"))
    await wait_until(lambda: not g.sim.answering, what="the barrier off the broker")
    await g.sim.perform(CardReadStep(action="card_read", card="0A1B2C3D"))  # lost: nobody hears it
    await wait_until(lambda: bool(g.rec.events("g1", EventType.COMM_LOST)), what="comm_lost")
    await g.sim.perform(LinkRestoreStep(action="link_restore"))
    await wait_until(lambda: _restored_after_loss(g.rec.events("g1")), what="comm_restored")
    assert not g.rec.events("g1", EventType.CARD_READ)
    assert g.sim.dropped >= 1


async def test_garbage_is_rejected_in_every_way(gate: Start) -> None:
    g = await gate()
    await g.sim.perform(GarbageStep(action="garbage", count=10))
    await wait_until(lambda: len(g.rec.rejected()) == 10, what="ten rejections")
    reasons = {p for p in Problem if g.metrics.get("mqtt_rejected", device="g1", reason=p.value)}
    assert {Problem.BAD_JSON, Problem.WRONG_TYPE, Problem.UNKNOWN_FIELD, Problem.UNKNOWN_MESSAGE} <= reasons
    assert reasons & {Problem.OUT_OF_RANGE, Problem.NOT_IN_ENUM}
    assert all(letter.ref is not None and letter.ref.device == "g1" for letter in g.rec.rejected())


async def test_set_reports_the_new_value_at_once(gate: Start) -> None:
    g = await gate()
    await g.sim.perform(SetStep(action="set", point="temperature_c", value=41.5))
    await g.sim.perform(SetStep(action="set", point="position", value="locked"))
    await wait_until(lambda: g.positions()[-1] == "locked", what="the locked arm")
    temps = [r.values["temperature_c"] for r in g.rec.readings("g1") if "temperature_c" in r.values]
    assert 41.5 in temps
    assert g.sim.problem(SetStep(action="set", point="temperature_c", value=200)) == (
        "heartbeat.temperature_c: 200 is above the maximum 85 °C"
    )
    assert "no settable point 'uptime_s'" in (g.sim.problem(SetStep(action="set", point="uptime_s", value=1)) or "")
    assert g.sim.problem(CameraStep(action="camera", condition="tamper")) == "a gate simulator cannot camera"


def test_routine_traffic_is_the_same_for_the_same_seed() -> None:
    def first(seed: int) -> list[tuple[float, CardReadStep]]:
        traffic = RoutineTraffic(seed, per_hour=30)
        return [traffic.next() for _ in range(50)]

    assert first(3) == first(3)
    assert first(3) != first(4)
    steps = [step for _, step in first(3)]
    assert any(not s.granted for s in steps), "a stranger now and then"
    assert sum(s.granted for s in steps) > 40, "mostly residents"
    assert {s.direction for s in steps} == {"in", "out"}


async def test_routine_cards_arrive_in_the_seeded_order(gate: Start) -> None:
    # 20 cards a simulated second at speed 20: a card every few milliseconds.
    g = await gate(seed=5, routine_reads_per_hour=72_000 / SPEED)
    await wait_until(lambda: len(g.rec.events("g1", EventType.CARD_READ)) >= 5, what="routine card reads")
    traffic = RoutineTraffic(5, per_hour=72_000 / SPEED)
    expected = [traffic.next()[1] for _ in range(5)]
    got = g.rec.events("g1", EventType.CARD_READ)[:5]
    assert [(e.data["card"], e.data["granted"], e.data["direction"]) for e in got] == [
        (s.card, s.granted, s.direction) for s in expected
    ]
