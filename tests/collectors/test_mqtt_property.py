"""Thousands of bad payloads between good ones, through a real Mosquitto into the collector.

Hypothesis draws batches of messages for a barrier and a camera: good payloads of every message type, and bad ones
wrong in exactly one way each (not UTF-8, not JSON, not an object, an unknown field, a missing one, a wrong type, a
value out of range or enum, an unknown message type, an unknown device). Every good one must come out as its
Reading or Event, every bad one as a dead letter with its payload, counted under the right reason, and every device
that sent anything, good or bad, is announced once as first contact — and nothing else may come out.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections import Counter as Multiset
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from collectors.mqtt.codec import Problem, interpret, parse
from collectors.mqtt.collector import MqttDevice
from facmon.kernel.daemons import Mosquitto
from facmon.kernel.metrics import Counters
from facmon.kernel.model import FIRST_CONTACT, DeadLetter, Event, EventType, Reading
from tests.collectors.mqtt_strategies import bad_payload, payload
from tests.collectors.mqtt_support import Recorder, collecting, make_collector, mqtt_device, vendor_client
from tests.simulators.support import wait_until

DEVICES = [mqtt_device("g1", "barrier-a", "G01"), mqtt_device("c1", "camera-a", "C01")]
# Known to the collector only, never drawn (no stranger id matches it): its card read closes every batch.
CLOSER = mqtt_device("closer", "barrier-a", "END")
CLOSING_CARD = json.dumps({"card": "E0E0", "granted": False, "direction": "in"}).encode()
BATCHES = 10
BAD_PER_BATCH = 110  # 10 batches: at least 1,100 bad payloads


@st.composite
def _message(draw: st.DrawFn, good: bool) -> tuple[str, bytes, Problem | None, str | None]:
    """(topic under the prefix, payload, the reason it must be rejected for or None, the device it names)."""
    device: MqttDevice = draw(st.sampled_from(DEVICES))
    driver = device.driver
    if not good and draw(st.integers(0, 20)) == 0:
        stranger = draw(st.from_regex(r"[A-Z][0-9]{2,4}", fullmatch=True).filter(lambda v: v not in ("G01", "C01")))
        return driver.topic_for(stranger, driver.heartbeat.message), b"{}", Problem.UNKNOWN_DEVICE, None
    if not good and draw(st.integers(0, 20)) == 0:
        message = draw(st.from_regex(r"[a-z]{3,8}", fullmatch=True).filter(lambda m: m not in driver.messages))
        return driver.topic_for(device.vendor_id, message), b"{}", Problem.UNKNOWN_MESSAGE, device.ref.device
    message = draw(st.sampled_from(sorted(driver.messages)))
    topic = driver.topic_for(device.vendor_id, message)
    if good:
        return topic, json.dumps(draw(payload(driver.messages[message]))).encode(), None, device.ref.device
    problem, raw = draw(bad_payload(driver.messages[message]))
    return topic, raw, problem, device.ref.device


@st.composite
def _batch(draw: st.DrawFn) -> list[tuple[str, bytes, Problem | None, str | None]]:
    bad = draw(st.lists(_message(good=False), min_size=BAD_PER_BATCH, max_size=BAD_PER_BATCH + 20))
    good = draw(st.lists(_message(good=True), min_size=20, max_size=40))
    return draw(st.permutations(bad + good))


def _expected(batch: list[tuple[str, bytes, Problem | None, str | None]]) -> Multiset[Any]:
    """What must come out of the good messages, worked out from the driver file, edges included."""
    by_device = {d.ref.device: d for d in DEVICES}
    active: dict[tuple[str, str], bool] = {}
    out: Multiset[Any] = Multiset()
    # Anything a device sends, good or bad, is a sign of life: its first message is announced once.
    for device in {device for _, _, _, device in batch if device is not None}:
        out[("event", device, EventType.COMM_RESTORED.value, None, _typed({FIRST_CONTACT: True}))] += 1
    for topic, raw, problem, device in batch:
        if problem is not None or device is None:
            continue
        driver = by_device[device].driver
        message = topic.rsplit("/", 1)[1]
        meaning = interpret(driver, message, parse(driver, message, raw))
        if meaning.values:
            out[("reading", device, _typed(meaning.values))] += 1
        if meaning.event is not None:
            out[("event", device, meaning.event[0].value, meaning.event[1], _typed(meaning.event[3]))] += 1
        change = meaning.condition
        # Conditions come out on their edges only; a topic keeps its order, so the edges are known.
        if change is not None and active.get((device, change.code)) != change.active:
            active[(device, change.code)] = change.active
            if change.meaning.event == "status":
                out[("event", device, "status", change.code, _typed({"active": change.active}))] += 1
            else:
                kind = EventType.FAULT_RAISED if change.active else EventType.FAULT_CLEARED
                out[("event", device, kind.value, change.code, ())] += 1
    return out


def _typed(values: dict[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    # 1 == 1.0 == True in Python; the types must match too.
    return tuple(sorted((k, type(v).__name__, v) for k, v in values.items()))


def _got(out: list[Reading | Event | DeadLetter]) -> Multiset[Any]:
    got: Multiset[Any] = Multiset()
    for m in out:
        if isinstance(m, Reading):
            got[("reading", m.ref.device, _typed(m.values))] += 1
        elif isinstance(m, Event):
            got[("event", m.ref.device, m.type.value, m.code, _typed(m.data))] += 1
    return got


async def _through_the_broker(
    port: int, prefix: str, batch: list[tuple[str, bytes, Problem | None, str | None]]
) -> None:
    rec, metrics = Recorder(), Counters()
    collector = make_collector(port, prefix, [*DEVICES, CLOSER], rec, metrics=metrics)
    expected = _expected(batch)
    bad = [(f"{prefix}/{t}", raw) for t, raw, problem, _ in batch if problem is not None]
    async with collecting(collector), vendor_client(port) as vendor:
        for topic, raw, _, _ in batch:
            await vendor.publish(f"{prefix}/{topic}", raw, qos=1)
        # A barrier: one last message from the same client at the same QoS. MQTT promises the order per topic; the
        # batch spans many topics, and Mosquitto (single-threaded, one outgoing queue per session) hands a
        # subscriber one client's messages in the order it read them whatever their topics, and the collector
        # takes them one at a time. So once the closing card is out, everything before it is out, extra included.
        closing_topic = CLOSER.driver.topic_for(CLOSER.vendor_id, "card")
        await vendor.publish(f"{prefix}/{closing_topic}", CLOSING_CARD, qos=1)
        await wait_until(lambda: bool(rec.events("closer", EventType.CARD_READ)), what="the batch's closing card")
    closer = [m for m in rec.out if isinstance(m, Reading | Event) and m.ref.device == "closer"]
    assert [m.type for m in closer if isinstance(m, Event)] == [EventType.COMM_RESTORED, EventType.CARD_READ]
    assert _got([m for m in rec.out if m not in closer]) == expected
    letters = rec.rejected()
    kept = Multiset((d.topic, d.payload.encode() if d.payload is not None else d.payload_base64) for d in letters)
    want = Multiset((t, raw if _is_text(raw) else base64.b64encode(raw).decode()) for t, raw in bad)
    assert kept == want, "every bad payload dead-lettered once, as it came"
    reasons = Multiset((device or "_unknown", problem.value) for _, _, problem, device in batch if problem is not None)
    for (device, reason), count in reasons.items():
        assert metrics.get("mqtt_rejected", device=device, reason=reason) == count, (device, reason)
    assert metrics.get("mqtt_rejected") == len(bad) == len(letters)


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_bad_payloads_between_good_ones(mosquitto: Mosquitto, topic_prefix: str) -> None:
    bad_seen: list[int] = []
    runs = itertools.count()

    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        # No shrinking: every example is a real broker round trip, and the comparison already names what differs.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(batch=_batch())
    def check(batch: list[tuple[str, bytes, Problem | None, str | None]]) -> None:
        # Each example gets a collector of its own, on a topic prefix of its own.
        asyncio.run(_through_the_broker(mosquitto.port, f"{topic_prefix}/{next(runs)}", batch))
        bad_seen.append(sum(problem is not None for _, _, problem, _ in batch))

    check()
    assert len(bad_seen) >= BATCHES, bad_seen
    assert sum(bad_seen) >= 1000, bad_seen
