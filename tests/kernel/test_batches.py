"""The backbone's batches of readings: what the gateway packs, a consumer reads back exactly; what is not a batch, or
a reading of a batch that cannot be used, is refused with a reason naming it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from facmon.kernel.batches import (
    MAX_BATCH_READINGS,
    batch_of,
    batch_topic,
    decode_batch,
    decode_state,
    encode_batch,
)
from facmon.kernel.model import DeviceKind, DeviceRef, Identifier, Reading
from facmon.kernel.topics import state_topic, subscription
from gateway.batching import outgoing
from gateway.outbox import OutboxMessage

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _reading(n: int, device: str = "g1", kind: DeviceKind = DeviceKind.GATE, site: str = "s1") -> Reading:
    ref = DeviceRef(site=site, building="b1", device=device, kind=kind, model="barrier-a")
    values = {"cycles": n, "temperature_c": 21.5 + n, "position": "raised 起", "loop": n % 2 == 0}
    return Reading(ref=ref, ts=T0 + timedelta(microseconds=n), values=values)


def _row(id_: int, message: Reading) -> OutboxMessage:
    return OutboxMessage(id_, state_topic(message.ref), message.model_dump_json().encode(), 1)


def test_a_batch_round_trips_every_reading_with_its_identity_and_timestamp() -> None:
    readings = [_reading(n, device=f"g{n % 3}") for n in range(50)]
    payload = encode_batch([r.model_dump_json().encode() for r in readings])
    decoded = decode_state(batch_topic("s1", "gate"), payload)
    assert decoded.readings == readings
    assert decoded.refused == []
    assert json.loads(payload)["v"] == 1


def test_the_batch_topic_fits_the_tree_and_no_device_can_take_it() -> None:
    topic = batch_topic("s1", "gate")
    assert topic == "facmon/v1/s1/gate/_batch/state"
    assert batch_of(topic) == ("s1", "gate")
    assert batch_of(state_topic(_reading(1).ref)) is None
    # A subscription to the site's or the kind's states hears batches.
    assert subscription("s1", "gate", "state").replace("+", "_batch") == topic
    # A site file's device id starts with a letter or a digit.
    with pytest.raises(ValidationError, match="pattern"):
        TypeAdapter(Identifier).validate_python("_batch")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", 'invalid batch: not an object of "v" and "readings"'),
        (b'{"v": 2, "readings": [{}]}', "invalid batch: version '2', this consumer reads 1"),
        (b'{"v": true, "readings": [{}]}', "invalid batch: version"),
        (b'{"v": 1, "readings": []}', "invalid batch: readings must be a list of 1 to"),
        (b'{"v": 1, "readings": {}}', "invalid batch: readings must be a list"),
        (b'{"v": 1, "readings": [], "x": 1}', "invalid batch: not an object"),
    ],
)
def test_what_is_not_a_batch_is_refused_whole_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(")):
        decode_batch(payload, "s1", "gate")


def test_bad_readings_of_a_batch_are_refused_by_place_and_the_good_ones_kept() -> None:
    good = [_reading(n) for n in range(3)]
    items = [json.loads(r.model_dump_json()) for r in good]
    wrong_kind = json.loads(_reading(9, kind=DeviceKind.CAMERA).model_dump_json())
    wrong_site = json.loads(_reading(9, site="other").model_dump_json())
    huge = json.loads(good[0].model_dump_json()) | {"values": {"cycles": 10**30}}
    event = json.loads(good[0].model_dump_json()) | {"type": "comm_lost"}
    del event["values"]
    payload = json.dumps({"v": 1, "readings": [items[0], 7, wrong_kind, items[1], huge, wrong_site, event, items[2]]})
    decoded = decode_batch(payload.encode(), "s1", "gate")
    assert decoded.readings == good
    reasons = [reason for _, reason in decoded.refused]
    assert reasons == [
        "readings.1 is not a JSON object",
        "topic_mismatch: readings.2 is of s1/camera",
        "invalid reading: readings.4.values.cycles: 1000000000000000000000000000000 is out of range",
        "topic_mismatch: readings.5 is of other/gate",
        "invalid batch: readings.6 is an event",
    ]


def test_a_single_reading_on_its_own_topic_is_still_read_and_one_on_another_is_refused() -> None:
    reading = _reading(1)
    assert decode_state(state_topic(reading.ref), reading.model_dump_json()).readings == [reading]
    with pytest.raises(ValueError, match=r"^topic_mismatch: payload belongs on facmon/v1/s1/gate/g1/state"):
        decode_state("facmon/v1/s1/gate/g2/state", reading.model_dump_json())


def test_the_publisher_packs_readings_by_site_and_kind_and_keeps_events_in_their_place() -> None:
    gates = [_reading(n) for n in range(5)]
    cameras = [_reading(n, device="c1", kind=DeviceKind.CAMERA) for n in range(2)]
    event = OutboxMessage(99, "facmon/v1/s1/gate/g1/event", b"{}", 1, retain=True)
    rows = [_row(1, gates[0]), _row(2, cameras[0]), _row(3, gates[1]), event, _row(4, gates[2]), _row(5, cameras[1])]
    sent = outgoing(rows)
    assert [(p.topic, p.ids, p.retain) for p in sent] == [
        ("facmon/v1/s1/gate/_batch/state", (1, 3), False),
        ("facmon/v1/s1/camera/_batch/state", (2,), False),
        ("facmon/v1/s1/gate/g1/event", (99,), True),
        ("facmon/v1/s1/gate/_batch/state", (4,), False),
        ("facmon/v1/s1/camera/_batch/state", (5,), False),
    ]
    assert decode_state(sent[0].topic, sent[0].payload).readings == [gates[0], gates[1]]


def test_a_batch_never_holds_more_than_its_bound() -> None:
    rows = [_row(n + 1, _reading(n)) for n in range(MAX_BATCH_READINGS * 2 + 5)]
    sent = outgoing(rows)
    assert [len(p.ids) for p in sent] == [MAX_BATCH_READINGS, MAX_BATCH_READINGS, 5]
    assert [i for p in sent for i in p.ids] == [r.id for r in rows]
