from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from facmon.historian.service import Historian
from facmon.kernel.batches import batch_topic
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import DEAD_LETTER, event_topic, state_topic
from tests.conftest import influxql
from tests.gateway.conftest import Subscriber, eventually, reading, running

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_bad_payloads_are_counted_and_dead_lettered_and_the_good_ones_land(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    ref = DeviceRef(site=topic_prefix, building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    state, event = state_topic(ref), event_topic(ref)
    good_reading = reading(topic_prefix, "e1", ts=T0, seq=0).model_dump()
    event_payload = Event(ref=ref, ts=T0, type=EventType.FAULT_RAISED, code="2").model_dump_json().encode()
    bad: list[tuple[str, bytes, str]] = [
        (state, b"{not json", "not_json"),
        (state, b"\xff\xfe\x00garbage", "not_json"),
        (state, b"[1, 2, 3]", "not_object"),
        (state, b"", "not_json"),
        (state, json.dumps({**good_reading, "values": {"floor": [1, 2]}}, default=str).encode(), "invalid_reading"),
        (state, json.dumps({**good_reading, "ts": "2026-03-01T00:00:00"}, default=str).encode(), "invalid_reading"),
        (event, json.dumps({**json.loads(event_payload), "type": "exploded"}).encode(), "invalid_event"),
        (state, event_payload, "topic_mismatch"),
        (state, json.dumps({**good_reading, "values": {}}, default=str).encode(), "no_fields"),
        # A field name line protocol cannot carry (a backslash before a comma).
        (state, json.dumps({**good_reading, "values": {"a\\,b": 1}}, default=str).encode(), "unstorable"),
    ]
    metrics = Counters()
    historian = Historian(
        mqtt=MqttSettings("127.0.0.1", mosquitto.port, client_id=f"historian-{topic_prefix}"),
        influx=InfluxSettings(influxd.url, influx_db),
        state_dir=tmp_path,
        metrics=metrics,
        site=topic_prefix,
        flush_interval_s=0.1,
    )
    dead = Subscriber(mosquitto.port, DEAD_LETTER, f"dead-{uuid.uuid4().hex[:8]}")
    good_count = 0

    def dead_letters() -> list[dict[str, str]]:
        records = [json.loads(payload) for _, payload in dead.received]
        return [r for r in records if r["topic"].startswith(f"facmon/v1/{topic_prefix}/")]

    async with running(historian.run(), "historian"), running(dead.run(), "dead-letters"):
        await eventually(historian.subscribed.is_set, what="the historian's subscription")
        await eventually(dead.subscribed.is_set, what="the dead-letter subscription")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for n in range(30):
                good = reading(topic_prefix, "e1", ts=T0 + timedelta(seconds=n), seq=n)
                await client.publish(state, good.model_dump_json(), qos=1)
                good_count += 1
                if n < len(bad):
                    topic, payload, _ = bad[n]
                    await client.publish(topic, payload, qos=1)
            await client.publish(event, event_payload, qos=1)

        def all_good_written() -> bool:
            readings = influxql(influxd.url, influx_db, "SELECT count(seq) FROM elevator")
            events = influxql(influxd.url, influx_db, "SELECT count(event_id) FROM events")
            return bool(readings and events) and readings[0]["values"][0][1] == good_count  # type: ignore[index]

        await eventually(all_good_written, what="the good readings and the event in InfluxDB")
        await eventually(lambda: len(dead_letters()) == len(bad), what="every bad payload on the dead-letter topic")

    records = dead_letters()
    assert [r["reason_code"] for r in records] == [label for _, _, label in bad]
    assert records[0]["payload"] == "{not json"
    assert records[0]["reason"].startswith("not JSON")
    assert "payload_base64" in records[1]
    assert "floor" in records[4]["reason"]
    assert records[7]["reason"] == f"payload belongs on {event}"
    for label in {label for _, _, label in bad}:
        assert metrics.get("historian_rejected", reason=label) == sum(1 for *_, b in bad if b == label)
    assert metrics.get("historian_rejected") == len(bad)
    assert metrics.get("historian_received") == good_count + 1 + len(bad)


async def test_a_batch_stores_its_good_readings_and_parks_each_bad_one_and_a_broken_batch_whole(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = batch_topic(topic_prefix, "elevator")
    good = [reading(topic_prefix, f"e{n}", ts=T0 + timedelta(seconds=n), seq=n) for n in range(3)]
    items = [json.loads(r.model_dump_json()) for r in good]
    items.insert(1, {**items[0], "values": {"seq": [1]}})
    metrics = Counters()
    historian = Historian(
        mqtt=MqttSettings("127.0.0.1", mosquitto.port, client_id=f"historian-{topic_prefix}"),
        influx=InfluxSettings(influxd.url, influx_db),
        state_dir=tmp_path,
        metrics=metrics,
        site=topic_prefix,
        flush_interval_s=0.1,
    )
    dead = Subscriber(mosquitto.port, DEAD_LETTER, f"dead-{uuid.uuid4().hex[:8]}")
    async with running(historian.run(), "historian"), running(dead.run(), "dead-letters"):
        await eventually(historian.subscribed.is_set, what="the historian's subscription")
        await eventually(dead.subscribed.is_set, what="the dead-letter subscription")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(topic, json.dumps({"v": 1, "readings": items}), qos=1)
            await client.publish(topic, json.dumps({"v": 9, "readings": items}), qos=1)

        def stored() -> bool:
            rows = influxql(influxd.url, influx_db, "SELECT count(seq) FROM elevator")
            return bool(rows) and rows[0]["values"][0][1] == len(good)  # type: ignore[index]

        await eventually(stored, what="the batch's good readings in InfluxDB")
        await eventually(lambda: len(dead.received) == 2, what="two dead letters")
    records = [json.loads(payload) for _, payload in dead.received]
    assert [(r["topic"], r["reason_code"]) for r in records] == [(topic, "invalid_reading"), (topic, "invalid_batch")]
    assert records[0]["reason"].startswith("invalid reading: readings.1.values.seq")
    assert json.loads(records[0]["payload"])["values"] == {"seq": [1]}
    assert "version '9', this consumer reads 1" in records[1]["reason"]
    assert metrics.get("historian_rejected") == 2
    assert metrics.get("historian_readings_received") == len(good)
