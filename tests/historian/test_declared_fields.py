"""The historian stores only what the site files' drivers declare (real Mosquitto, real influxd)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from facmon.estate.site import Site
from facmon.historian.service import Historian
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Reading
from facmon.kernel.mqtt import MqttSettings
from facmon.kernel.topics import DEAD_LETTER, event_topic, state_topic
from facmon.shell.declared import declared_fields
from tests.conftest import influxql
from tests.gateway.conftest import Subscriber, eventually, running

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FORGED_FIELDS = 2001


def _site(site_id: str) -> Site:
    address = {"host": "127.0.0.1", "port": 1502, "unit": 1}
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {"id": "b1", "devices": [{"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": address}]}
            ],
        }
    )


async def test_undeclared_fields_and_unknown_devices_are_not_stored(
    mosquitto_factory: Callable[[], Mosquitto], influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    # A broker of its own: the historian hears every site here, and the shared broker keeps other tests' retained
    # events, which this test would count.
    mosquitto = mosquitto_factory()
    site = _site(topic_prefix)
    ref = site.ref("e1")
    forged = {f"x{n}": n for n in range(FORGED_FIELDS)}
    mixed = Reading(ref=ref, ts=T0, values={"floor": 3, **forged})
    only_forged = Reading(ref=ref, ts=T0.replace(second=1), values={"evil": 1.0})
    ghost = DeviceRef(site=topic_prefix, building="b1", device="ghost", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    ghost_reading = Reading(ref=ghost, ts=T0, values={"floor": 9})
    ghost_event = Event(ref=ghost, ts=T0, type=EventType.FAULT_RAISED, code="15")
    other = ref.model_copy(update={"site": f"{topic_prefix}-nowhere"})
    nowhere = Reading(ref=other, ts=T0, values={"floor": 1})
    # Last: a legal event, so once it is in InfluxDB everything before it has been through the historian.
    marker = Event(ref=ref, ts=T0, type=EventType.FAULT_RAISED, code="2")

    metrics = Counters()
    historian = Historian(
        mqtt=MqttSettings("127.0.0.1", mosquitto.port, client_id=f"historian-{topic_prefix}"),
        influx=InfluxSettings(influxd.url, influx_db),
        state_dir=tmp_path,
        metrics=metrics,
        flush_interval_s=0.1,
        declared=declared_fields([site]),
    )
    dead = Subscriber(mosquitto.port, DEAD_LETTER, f"dead-{uuid.uuid4().hex[:8]}")
    async with running(historian.run(), "historian"), running(dead.run(), "dead-letters"):
        await eventually(historian.subscribed.is_set, what="the historian's subscription")
        await eventually(dead.subscribed.is_set, what="the dead-letter subscription")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for message in (mixed, only_forged, ghost_reading, nowhere):
                await client.publish(state_topic(message.ref), message.model_dump_json(), qos=1)
            for event in (ghost_event, marker):
                await client.publish(event_topic(event.ref), event.model_dump_json(), qos=1)

        def marker_written() -> bool:
            q = f"SELECT count(event_id) FROM events WHERE site = '{topic_prefix}'"
            return bool(influxql(influxd.url, influx_db, q))

        await eventually(marker_written, what="the legal event in InfluxDB")
        await eventually(lambda: len(dead.received) >= 5, what="a dead letter for each refused message")

    keys = influxql(influxd.url, influx_db, "SHOW FIELD KEYS FROM elevator")
    stored_fields = {row[0] for series in keys for row in series["values"]}  # type: ignore[attr-defined]
    assert "floor" in stored_fields
    assert not stored_fields & {*forged, "evil"}, "an undeclared field reached InfluxDB's schema"
    rows = influxql(influxd.url, influx_db, f"SELECT floor, device FROM elevator WHERE site = '{topic_prefix}'")
    assert [row[1:] for row in rows[0]["values"]] == [[3, "e1"]]  # type: ignore[index]
    assert not influxql(influxd.url, influx_db, f"SELECT * FROM elevator WHERE site = '{other.site}'")
    q = f"SELECT event_id, code, device FROM events WHERE site = '{topic_prefix}'"
    events = influxql(influxd.url, influx_db, q)
    assert [row[2:] for row in events[0]["values"]] == [["2", "e1"]]  # type: ignore[index]
    assert metrics.get("historian_fields_refused") == FORGED_FIELDS + 1 + 1 + 1
    assert metrics.get("historian_rejected", reason="undeclared_fields") == 2
    assert metrics.get("historian_rejected", reason="unknown_device") == 3


def test_whole_says_exactly_when_screening_keeps_all_of_a_message() -> None:
    """`whole`, the historian's quick look, is true exactly for what `screen` would keep untouched."""
    declared = declared_fields([_site("s1")])
    ref = _site("s1").ref("e1")
    declared_field = next(iter(declared.devices[("s1", "e1")].fields))
    messages: list[Reading | Event] = [
        Reading(ref=ref, ts=T0, values={declared_field: 1}),
        Reading(ref=ref, ts=T0, values={declared_field: 1, "forged": 2}),
        Reading(ref=ref, ts=T0, values={declared_field: 1}, point="1-001"),  # no point fields declared
        Event(ref=ref, ts=T0, type=EventType.FAULT_RAISED, code="2"),
        Reading(ref=ref.model_copy(update={"device": "ghost"}), ts=T0, values={declared_field: 1}),
        Reading(ref=ref.model_copy(update={"building": "b2"}), ts=T0, values={declared_field: 1}),
        Reading(ref=ref.model_copy(update={"model": "elev-st-b"}), ts=T0, values={declared_field: 1}),
        Reading(ref=ref.model_copy(update={"kind": DeviceKind.FIRE_PANEL}), ts=T0, values={declared_field: 1}),
        Event(ref=ref.model_copy(update={"site": "s2"}), ts=T0, type=EventType.COMM_LOST),
    ]
    for message in messages:
        screened = declared.screen(message)
        assert declared.whole(message) == (screened.message is message and not screened.label), message
    assert [declared.whole(m) for m in messages] == [True, False, False, True, False, False, False, False, False]
