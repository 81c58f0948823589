"""The heartbeat watchdog on a fake clock: the first word since start announced, lost once after the grace, restored
on the next word, per device."""

from __future__ import annotations

import pytest

from collectors.mqtt.watchdog import HeartbeatWatchdog
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import FIRST_CONTACT, DeviceKind, DeviceRef, Event, EventType, Reading


def _ref(device: str) -> DeviceRef:
    return DeviceRef(site="s", building="b", device=device, kind=DeviceKind.CAMERA, model="camera-a")


class Harness:
    def __init__(self, **graces: float) -> None:
        self.clock = FakeClock()
        self.out: list[Event] = []
        self.dog = HeartbeatWatchdog([(_ref(d), g) for d, g in graces.items()], emit=self.emit, clock=self.clock)

    async def emit(self, message: Reading | Event) -> None:
        assert isinstance(message, Event)
        self.out.append(message)

    async def after(self, seconds: float) -> list[tuple[str, EventType]]:
        """Let `seconds` pass, check, and return what was emitted since the last call."""
        self.clock.advance(seconds)
        await self.dog.check()
        new, self.out = self.out, []
        return [(e.ref.device, e.type) for e in new]


async def test_the_first_message_since_start_is_announced_once() -> None:
    h = Harness(cam=90.0, gate=30.0)
    h.dog.restart()
    await h.dog.heard("cam")
    (first,) = h.out
    assert (first.ref.device, first.type, first.message) == ("cam", EventType.COMM_RESTORED, "talking")
    assert first.data == {FIRST_CONTACT: True}
    assert first.ts == h.clock.now()
    for _ in range(5):
        h.clock.advance(30)
        await h.dog.heard("cam")
    assert len(h.out) == 1, "later messages announce nothing"
    h.out.clear()
    await h.dog.heard("gate")
    assert [(e.ref.device, e.data) for e in h.out] == [("gate", {FIRST_CONTACT: True})], "each device its own"


async def test_a_restart_announces_the_next_message_again() -> None:
    h = Harness(cam=90.0)
    await h.dog.heard("cam")
    h.dog.restart()
    await h.dog.heard("cam")
    assert [e.data for e in h.out] == [{FIRST_CONTACT: True}, {FIRST_CONTACT: True}]


async def test_lost_once_after_the_grace_and_restored_on_the_next_message() -> None:
    h = Harness(cam=90.0)
    await h.dog.heard("cam")
    h.out.clear()  # the first contact
    assert await h.after(89.9) == []
    assert await h.after(0.1) == [("cam", EventType.COMM_LOST)]
    assert h.dog.lost("cam")
    assert await h.after(1000) == [], "reported once, however long the silence"
    await h.dog.heard("cam")
    assert [(e.ref.device, e.type, e.message, e.data) for e in h.out] == [
        ("cam", EventType.COMM_RESTORED, "talking again", {})
    ], "a restore is not a first contact"
    assert not h.dog.lost("cam")
    h.out.clear()
    # The grace starts again from the last message.
    assert await h.after(89) == []
    assert await h.after(1) == [("cam", EventType.COMM_LOST)]


async def test_standing_by_judges_no_silence_and_resuming_gives_every_grace_afresh() -> None:
    h = Harness(cam=90.0)
    await h.dog.heard("cam")
    h.out.clear()
    h.dog.stand_by()  # another gateway of the site holds the vendor session: this one hears nothing
    assert await h.after(1000) == []
    h.dog.resume()
    assert await h.after(89.9) == [], "the grace runs from the resumption"
    assert await h.after(0.1) == [("cam", EventType.COMM_LOST)]
    await h.dog.heard("cam")
    assert [(e.type, e.data) for e in h.out] == [(EventType.COMM_RESTORED, {})], "known before: no first contact"


async def test_a_device_that_never_speaks_is_reported_too() -> None:
    h = Harness(cam=30.0)
    h.clock.advance(500)
    h.dog.restart()  # the collector starting: graces run from now, not from construction
    assert await h.after(29) == []
    assert await h.after(1) == [("cam", EventType.COMM_LOST)]
    await h.dog.heard("cam")
    assert [(e.type, e.message, e.data) for e in h.out] == [
        (EventType.COMM_RESTORED, "talking again", {FIRST_CONTACT: True})
    ], "lost before it ever spoke: one event, both a restore and the first contact"


async def test_each_device_has_its_own_grace() -> None:
    h = Harness(gate=30.0, cam=90.0)
    assert await h.after(30) == [("gate", EventType.COMM_LOST)]
    await h.dog.heard("gate")
    assert [(e.type, e.message) for e in h.out] == [(EventType.COMM_RESTORED, "talking again")]
    h.out.clear()
    assert await h.after(60) == [("gate", EventType.COMM_LOST), ("cam", EventType.COMM_LOST)]


async def test_events_carry_the_clock_time_and_the_silence() -> None:
    h = Harness(cam=10.0)
    h.clock.advance(12)
    await h.dog.check()
    (lost,) = h.out
    assert lost.ts == h.clock.now()
    assert lost.message == "no message for 12.0 s (grace 10 s)"


def test_tick_is_a_tenth_of_the_shortest_grace_within_bounds() -> None:
    assert Harness(a=5.0, b=90.0).dog.tick_s() == 0.5
    assert Harness(a=300.0).dog.tick_s() == 1.0
    assert Harness(a=0.05).dog.tick_s() == 0.01


def test_a_grace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Harness(a=0.0)
