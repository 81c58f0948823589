"""The MQTT collector against a real Mosquitto: every message type decoded, every rejection reason dead-lettered and
counted, comm loss by silence, reconnecting after the broker comes back."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable

import pytest

from collectors.mqtt.codec import Problem
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import FIRST_CONTACT, DeadLetter, Event, EventType, Reading
from tests.collectors.mqtt_support import (
    SITE,
    Recorder,
    collecting,
    make_collector,
    mqtt_device,
    vendor_client,
)
from tests.simulators.support import assert_no_leaked_tasks, wait_until


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


GATE = mqtt_device("g1", "barrier-a", "G01")
CAMERA = mqtt_device("c1", "camera-a", "IPC-7")


async def test_each_message_type_is_decoded(mosquitto: Mosquitto, topic_prefix: str) -> None:
    rec = Recorder()
    collector = make_collector(mosquitto.port, topic_prefix, [GATE, CAMERA], rec)
    async with collecting(collector), vendor_client(mosquitto.port) as vendor:
        sends = [
            ("vendor/barrier/G01/state", {"position": "opening", "loop_occupied": False, "reason": "card"}),
            ("vendor/barrier/G01/card", {"card": "0A1B2C3D", "granted": True, "direction": "in"}),
            ("vendor/barrier/G01/fault", {"code": "limit_timeout", "active": True}),
            ("vendor/barrier/G01/fault", {"code": "limit_timeout", "active": False}),
            ("vendor/barrier/G01/heartbeat", {"uptime_s": 5, "cycles": 10, "temperature_c": 21.5}),
            ("vendor/ipc/IPC-7/heartbeat", {"uptime_s": 5, "recording": True, "storage_used_pct": 40}),
            ("vendor/ipc/IPC-7/alarm", {"event": "shelteralarm", "state": "active"}),
            ("vendor/ipc/IPC-7/alarm", {"event": "scenechangedetection", "state": "active"}),
        ]
        for topic, payload in sends:
            await vendor.publish(f"{topic_prefix}/{topic}", json.dumps(payload), qos=1)
        # Eight messages, and the first of each device announced as first contact.
        await wait_until(lambda: len(rec.out) == 10, what="eight messages decoded")

    gate, camera = rec.readings("g1"), rec.readings("c1")
    assert [r.values for r in gate] == [
        {"position": "opening", "loop_occupied": False, "reason": "card"},
        {"cycles": 10, "temperature_c": 21.5},
    ]
    assert camera[0].values == {"recording": True, "storage_used_pct": 40.0}
    assert isinstance(camera[0].values["storage_used_pct"], float), "a number field is always a float"
    (card,) = rec.events("g1", EventType.CARD_READ)
    assert card.data == {"card": "0A1B2C3D", "granted": True, "direction": "in"}
    assert [(e.type, e.code) for e in rec.events("g1", EventType.FAULT_RAISED, EventType.FAULT_CLEARED)] == [
        (EventType.FAULT_RAISED, "limit_timeout"),
        (EventType.FAULT_CLEARED, "limit_timeout"),
    ]
    (tamper,) = rec.events("c1", EventType.FAULT_RAISED)
    assert (tamper.code, tamper.message) == ("tamper", "lens covered or camera tampered with")
    (scene,) = rec.events("c1", EventType.STATUS)
    assert (scene.code, scene.data) == ("scene_change", {"active": True})
    assert all(m.ref.site == SITE for m in rec.out if not isinstance(m, DeadLetter))
    assert not rec.rejected()
    for device in ("g1", "c1"):
        first = rec.events(device)[0]
        assert rec.events(device, EventType.COMM_RESTORED) == [first], "announced once, before anything else"
        assert (first.message, first.data) == ("talking", {FIRST_CONTACT: True})
        assert rec.out.index(first) < min(rec.out.index(m) for m in rec.readings(device))


# One input per reason the collector gives: (topic under the prefix, payload bytes, device or None).
CARD = b'{"card": "ABCD", "granted": true, "direction": "in"'
REJECTIONS: dict[Problem, tuple[str, bytes, str | None]] = {
    Problem.NOT_UTF8: ("vendor/barrier/G01/state", b"\xff\xfe{}", "g1"),
    Problem.BAD_JSON: ("vendor/barrier/G01/state", b'{"position": "raised", ', "g1"),
    Problem.NOT_OBJECT: ("vendor/ipc/IPC-7/heartbeat", b"42", "c1"),
    Problem.UNKNOWN_MESSAGE: ("vendor/barrier/G01/selftest", b"{}", "g1"),
    Problem.UNKNOWN_FIELD: ("vendor/barrier/G01/card", CARD + b', "x": 1}', "g1"),
    Problem.MISSING_FIELD: ("vendor/ipc/IPC-7/alarm", b'{"event": "videoloss"}', "c1"),
    Problem.WRONG_TYPE: ("vendor/barrier/G01/state", b'{"position": "raised", "loop_occupied": 0}', "g1"),
    Problem.OUT_OF_RANGE: (
        "vendor/ipc/IPC-7/heartbeat",
        b'{"uptime_s": 1, "recording": true, "storage_used_pct": 101}',
        "c1",
    ),
    Problem.NOT_IN_ENUM: ("vendor/barrier/G01/state", b'{"position": "sideways", "loop_occupied": false}', "g1"),
    Problem.BAD_FORMAT: ("vendor/barrier/G01/card", CARD.replace(b"ABCD", b"not-hex") + b"}", "g1"),
    Problem.UNKNOWN_DEVICE: ("vendor/barrier/G77/state", b'{"position": "raised", "loop_occupied": false}', None),
    Problem.TOO_LARGE: ("vendor/barrier/G01/card", b'{"card": "' + b"A" * 70_000 + b'"}', "g1"),
}


def test_every_reason_has_a_case() -> None:
    assert set(REJECTIONS) == set(Problem)


@pytest.mark.parametrize("problem", list(REJECTIONS), ids=[p.value for p in REJECTIONS])
async def test_rejection_is_dead_lettered_and_counted(
    mosquitto: Mosquitto, topic_prefix: str, problem: Problem
) -> None:
    topic, payload, device = REJECTIONS[problem]
    rec, metrics = Recorder(), Counters()
    collector = make_collector(mosquitto.port, topic_prefix, [GATE, CAMERA], rec, metrics=metrics)
    good = {"position": "lowered", "loop_occupied": False}
    async with collecting(collector), vendor_client(mosquitto.port) as vendor:
        await vendor.publish(f"{topic_prefix}/{topic}", payload, qos=1)
        # A good message after the bad one still gets through.
        await vendor.publish(f"{topic_prefix}/vendor/barrier/G01/state", json.dumps(good), qos=1)
        await wait_until(lambda: len(_without_comm(rec)) == 2, what="the rejection and the good message")

    letter, after = _without_comm(rec)
    assert isinstance(letter, DeadLetter), rec.out
    assert isinstance(after, Reading)
    assert after.values == good
    assert (letter.site, letter.source, letter.topic) == (SITE, "mqtt", f"{topic_prefix}/{topic}")
    assert (letter.ref.device if letter.ref else None) == device
    # The reason names the device and what is wrong with which field; the input is kept as it came.
    if device is not None:
        assert letter.reason.startswith(f"{device}: ")
    if problem is Problem.NOT_UTF8:
        assert letter.payload is None
        assert base64.b64decode(letter.payload_base64 or "") == payload
    elif problem is Problem.TOO_LARGE:
        # Kept as evidence, not whole: the first 64 KiB and the size it had.
        assert letter.payload == payload[: 64 * 1024].decode()
        assert letter.payload_size == len(payload)
    else:
        assert letter.payload == payload.decode()
        assert (letter.payload_base64, letter.payload_size) == (None, None)
    assert metrics.get("mqtt_rejected", device=device or "_unknown", reason=problem.value) == 1
    assert metrics.get("mqtt_rejected") == 1
    # A device that sends garbage is still talking: its first message is announced all the same.
    firsts = [m for m in rec.out if isinstance(m, Event) and m.type is EventType.COMM_RESTORED]
    assert sorted(e.ref.device for e in firsts) == sorted({"g1", device} - {None})
    assert all(e.data == {FIRST_CONTACT: True} for e in firsts)


def _without_comm(rec: Recorder) -> list[Reading | Event | DeadLetter]:
    return [m for m in rec.out if not (isinstance(m, Event) and m.type is EventType.COMM_RESTORED)]


async def test_silence_is_comm_lost_once_then_restored(mosquitto: Mosquitto, topic_prefix: str) -> None:
    rec, clock = Recorder(), FakeClock()
    quiet = mqtt_device("g1", "barrier-a", "G01", grace_s=30.0)
    collector = make_collector(mosquitto.port, topic_prefix, [quiet], rec, clock=clock)
    heartbeat = json.dumps({"uptime_s": 1, "cycles": 2, "temperature_c": 20})
    comm = lambda: [(e.type, e.message, e.data) for e in rec.events("g1", *COMM)]  # noqa: E731
    async with collecting(collector), vendor_client(mosquitto.port) as vendor:
        topic = f"{topic_prefix}/vendor/barrier/G01/heartbeat"
        await vendor.publish(topic, heartbeat, qos=1)
        await wait_until(lambda: bool(rec.readings("g1")), what="the heartbeat")
        await clock.advance_and_settle(29.9)
        assert rec.events("g1", EventType.COMM_LOST) == [], "not before its grace"
        await clock.advance_and_settle(collector.watchdog.tick_s())  # the watchdog looks again: past its grace
        assert len(rec.events("g1", EventType.COMM_LOST)) == 1
        await clock.advance_and_settle(40.0)  # longer than the grace again: still reported only once
        assert len(rec.events("g1", EventType.COMM_LOST)) == 1
        await vendor.publish(topic, heartbeat, qos=1)
        await wait_until(lambda: len(rec.events("g1", EventType.COMM_RESTORED)) == 2, what="comm_restored")
    lost_at = rec.out.index(rec.events("g1", EventType.COMM_LOST)[0])
    assert isinstance(rec.out[lost_at - 1], Reading), "lost after the first heartbeat, not before"
    first, lost, restored = comm()
    assert first == (EventType.COMM_RESTORED, "talking", {FIRST_CONTACT: True})
    assert lost[0] is EventType.COMM_LOST
    assert restored == (EventType.COMM_RESTORED, "talking again", {}), "a restore is not a first contact"


async def test_first_message_is_announced_once_and_retained_ones_do_not_count(
    mosquitto: Mosquitto, topic_prefix: str
) -> None:
    rec = Recorder()
    collector = make_collector(mosquitto.port, topic_prefix, [GATE, CAMERA], rec)
    state = json.dumps({"position": "raised", "loop_occupied": False})
    topic = f"{topic_prefix}/vendor/barrier/G01/state"
    async with vendor_client(mosquitto.port) as vendor:
        # The broker's memory of the gate, from before the collector started: not the gate speaking now.
        await vendor.publish(topic, state, qos=1, retain=True)
        async with collecting(collector):
            await wait_until(lambda: bool(rec.readings("g1")), what="the retained state")
            assert rec.events("g1", *COMM) == []
            for _ in range(3):
                await vendor.publish(topic, state, qos=1)
            await wait_until(lambda: len(rec.readings("g1")) == 4, what="three live states")
        await vendor.publish(topic, b"", qos=1, retain=True)  # clear the retained message
    [first] = rec.events("g1", *COMM)
    assert (first.type, first.message, first.data) == (EventType.COMM_RESTORED, "talking", {FIRST_CONTACT: True})
    assert rec.out.index(first) == rec.out.index(rec.readings("g1")[1]) - 1, "announced with its first live message"
    assert rec.events("c1") == [], "a camera not heard from is not announced"


COMM = (EventType.COMM_LOST, EventType.COMM_RESTORED)


async def test_reconnects_when_the_broker_comes_back(
    mosquitto_factory: Callable[[], Mosquitto], topic_prefix: str
) -> None:
    broker = mosquitto_factory()
    rec, metrics = Recorder(), Counters()
    collector = make_collector(broker.port, topic_prefix, [GATE], rec, metrics=metrics)
    state = json.dumps({"position": "raised", "loop_occupied": False})
    async with collecting(collector):
        await asyncio.to_thread(broker.stop)
        await wait_until(lambda: not collector.connected.is_set(), what="the collector to notice")
        await wait_until(lambda: metrics.get("mqtt_disconnects") >= 3, what="a few failed attempts, backing off")
        await asyncio.to_thread(broker.start)
        await wait_until(collector.connected.is_set, what="the collector to resubscribe", timeout_s=10)
        async with vendor_client(broker.port) as vendor:
            await vendor.publish(f"{topic_prefix}/vendor/barrier/G01/state", state, qos=1)
            await wait_until(lambda: bool(rec.readings("g1")), what="a reading after reconnecting")
    assert metrics.get("mqtt_connects") >= 2
    assert metrics.get("mqtt_disconnects") >= 1


async def test_two_devices_may_not_share_a_vendor_id() -> None:
    with pytest.raises(ValueError, match="already another device's"):
        make_collector(1, "", [GATE, mqtt_device("g2", "barrier-a", "G01")], Recorder())
