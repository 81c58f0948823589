"""The camera simulator through a real Mosquitto into the MQTT collector: every condition raised and cleared,
repeated alarms reported once, and what conditions do to the heartbeat."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args

import pytest

from collectors.registry import mqtt_driver
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import EventType
from facmon.kernel.mqtt import MqttSettings
from simulators.camera import CameraSimulator
from simulators.steps import CameraCondition, CameraStep, CardReadStep, SetStep
from tests.collectors.mqtt_support import Recorder, collecting, make_collector, mqtt_device
from tests.simulators.support import assert_no_leaked_tasks, wait_until

SPEED = 60.0  # a 30 s heartbeat every 0.5 s
CONDITIONS: tuple[str, ...] = get_args(CameraCondition)


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


Start = Callable[..., Awaitable[tuple[CameraSimulator, Recorder, Counters]]]


@pytest.fixture
async def camera(mosquitto: Mosquitto, topic_prefix: str) -> AsyncIterator[Start]:
    stack = contextlib.AsyncExitStack()

    async def start(**options: Any) -> tuple[CameraSimulator, Recorder, Counters]:
        rec, metrics = Recorder(), Counters()
        collector = make_collector(
            mosquitto.port, topic_prefix, [mqtt_device("c1", "camera-a", "IPC-1")], rec, metrics=metrics
        )
        await stack.enter_async_context(collecting(collector))
        sim = CameraSimulator(
            mqtt_driver("camera-a"), broker=MqttSettings("127.0.0.1", mosquitto.port), device_id="c1",
            vendor_id="IPC-1",
            speed=SPEED, topic_prefix=topic_prefix, **options,
        )  # fmt: skip
        stack.push_async_callback(sim.stop)
        await sim.start()
        await wait_until(lambda: bool(rec.readings("c1")), what="the camera's first heartbeat")
        return sim, rec, metrics

    async with stack:
        yield start


# What a camera's conditions come out as (its first message also brings a first-contact comm_restored).
CONDITION_EVENTS = (EventType.FAULT_RAISED, EventType.FAULT_CLEARED, EventType.STATUS)


def test_the_simulator_knows_every_condition_of_the_scenario_contract() -> None:
    sim = CameraSimulator(mqtt_driver("camera-a"), broker=None, device_id="c1")
    assert sim.supported == set(CONDITIONS)
    assert sim.problem(CardReadStep(action="card_read", card="ABCD")) == "a camera simulator cannot card_read"
    assert sim.problem(SetStep(action="set", point="recording", value="yes")) == (
        'heartbeat.recording: expected boolean, got string "yes"'
    )


async def test_every_condition_is_raised_and_cleared(camera: Start) -> None:
    sim, rec, _ = await camera()
    for condition in CONDITIONS:
        await sim.perform(CameraStep(action="camera", condition=condition, on=True))
        await sim.perform(CameraStep(action="camera", condition=condition, on=False))
    await wait_until(
        lambda: len(rec.events("c1", *CONDITION_EVENTS)) == 2 * len(CONDITIONS), what="a raise and a clear each"
    )

    seen = [(e.code, e.type, e.data) for e in rec.events("c1", *CONDITION_EVENTS)]
    expected = []
    for condition in CONDITIONS:
        if condition == "scene_change":  # informative: a status event with its state
            expected += [(condition, EventType.STATUS, {"active": on}) for on in (True, False)]
        else:
            expected += [(condition, EventType.FAULT_RAISED, {}), (condition, EventType.FAULT_CLEARED, {})]
    assert seen == expected
    assert not rec.rejected()


async def test_an_active_alarm_repeats_with_the_heartbeat_but_is_raised_once(camera: Start) -> None:
    sim, rec, metrics = await camera()
    await sim.perform(CameraStep(action="camera", condition="video_loss", on=True))
    await wait_until(lambda: metrics.get("mqtt_repeats", device="c1", code="video_loss") >= 2, what="two repeats")
    assert [e.type for e in rec.events("c1", *CONDITION_EVENTS)] == [EventType.FAULT_RAISED]
    await sim.perform(CameraStep(action="camera", condition="video_loss", on=False))
    await wait_until(lambda: len(rec.events("c1", *CONDITION_EVENTS)) == 2, what="the clear")
    repeats = metrics.get("mqtt_repeats", device="c1", code="video_loss")
    readings = len(rec.readings("c1"))
    await wait_until(lambda: len(rec.readings("c1")) >= readings + 2, what="two more heartbeats")
    assert metrics.get("mqtt_repeats", device="c1", code="video_loss") == repeats, "a cleared alarm is not repeated"


async def test_the_heartbeat_shows_what_a_condition_does(camera: Start) -> None:
    sim, rec, _ = await camera()
    normal = rec.readings("c1")[0].values
    assert normal["recording"] is True
    assert 0 <= float(normal["storage_used_pct"]) < 100

    def last() -> dict[str, Any]:
        return dict(rec.readings("c1")[-1].values)

    await sim.perform(CameraStep(action="camera", condition="storage_full", on=True))
    await wait_until(lambda: last()["storage_used_pct"] == 100.0, what="full storage in the heartbeat")
    await sim.perform(CameraStep(action="camera", condition="storage_failed", on=True))
    await wait_until(lambda: last()["recording"] is False, what="recording stopped in the heartbeat")
    await sim.perform(CameraStep(action="camera", condition="storage_failed", on=False))
    await sim.perform(CameraStep(action="camera", condition="storage_full", on=False))
    await wait_until(lambda: last() == normal, what="back to normal")
