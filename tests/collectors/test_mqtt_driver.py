"""The MQTT driver format: registered drivers load, broken driver files are refused naming what is wrong, topics
match, and what the simulator encodes the collector decodes to the same values."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.mqtt.codec import PayloadError, Problem, encode, interpret, parse
from collectors.mqtt.driver import JsonType, MqttDriver
from collectors.registry import MQTT_DRIVERS, mqtt_driver
from facmon.kernel.model import DeviceKind, EventType
from tests.collectors.mqtt_strategies import bad_payload, payload

MINIMAL: dict[str, Any] = {
    "model": "t",
    "kind": "gate",
    "topic": "v/{vendor_id}/{message}",
    "heartbeat": {"message": "hb", "interval_s": 5},
    "messages": {
        "hb": {"fields": {"n": {"type": "integer", "min": 0}}, "reading": ["n"]},
        "card": {
            "fields": {
                "card": {"type": "string"},
                "granted": {"type": "boolean"},
                "direction": {"type": "string", "enum": ["in", "out"]},
            },
            "event": {"type": "card_read", "data": ["card", "granted", "direction"]},
        },
        "alarm": {
            "fields": {"what": {"type": "string", "enum": ["a", "b"]}, "on": {"type": "string", "enum": ["y", "n"]}},
            "condition": {
                "code": "what", "active": "on", "active_value": "y",
                "codes": {"a": {"message": "A"}, "b": {"code": "bee", "message": "B", "event": "status"}},
            },
        },
    },
}  # fmt: skip


def _with(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with one setting changed (path a.b.c; value None deletes it)."""
    raw = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return raw


def test_registered_drivers_load_with_their_kind() -> None:
    kinds = {model: mqtt_driver(model).kind for model in MQTT_DRIVERS}
    assert kinds == {"barrier-a": DeviceKind.GATE, "camera-a": DeviceKind.CAMERA}


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("topic", "v/{vendor_id}", "needs {vendor_id} and {message}"),
        ("topic", "v/x{vendor_id}/{message}", "needs {vendor_id} and {message}"),
        ("topic", "v/+/{vendor_id}/{message}", "must be plain text"),
        ("heartbeat.message", "beat", "heartbeat message 'beat' is not among the messages"),
        ("messages.hb.reading", ["n", "m"], "refers to unknown field 'm'"),
        ("messages.hb.fields.n.max", -1, "min 0.0 is above max -1.0"),
        ("messages.hb.fields.n.pattern", "x", "pattern applies to string fields"),
        ("messages.hb.fields.n.enum", ["a"], "enum values of a integer field must all be integers"),
        ("messages.card.fields.card.min", 1, "min/max apply to numeric fields"),
        ("messages.card.fields.granted", {"type": "string"}, "card is a string and granted a boolean"),
        ("messages.card.event.data", ["card", "granted"], "carries data [card, granted, direction]"),
        ("messages.card.fields.direction.enum", ["up", "down"], "direction is an enum of 'in' and 'out'"),
        ("messages.alarm.condition.codes.b", None, "must be exactly the enum of 'what'"),
        ("messages.alarm.condition.active_value", "maybe", "active_value must be one of the enum of 'on'"),
        ("messages.alarm.fields.on.required", False, "condition field 'on' must be required"),
        ("messages.hb.fields.n.colour", "red", "Extra inputs are not permitted"),
        ("messages.Bad", {"fields": {}}, "message name 'Bad' must match"),
    ],
)
def test_a_broken_driver_is_refused_naming_the_problem(path: str, value: Any, error: str) -> None:
    MqttDriver.model_validate(MINIMAL)  # the base is good
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("{", r"\{").replace("+", r"\+")):
        MqttDriver.model_validate(_with(path, value))


def test_topics_with_and_without_a_prefix() -> None:
    driver = mqtt_driver("barrier-a")
    assert driver.subscription() == "vendor/barrier/+/+"
    assert driver.subscription("estate-7/in") == "estate-7/in/vendor/barrier/+/+"
    assert driver.topic_for("G01", "card", "estate-7") == "estate-7/vendor/barrier/G01/card"
    assert driver.match("vendor/barrier/G01/card") == ("G01", "card")
    assert driver.match("estate-7/vendor/barrier/G01/card", "estate-7") == ("G01", "card")
    assert driver.match("estate-8/vendor/barrier/G01/card", "estate-7") is None
    assert driver.match("vendor/barrier/G01/card/extra") is None
    assert driver.match("vendor/ipc/G01/card") is None


def test_conditions_both_ways() -> None:
    driver = MqttDriver.model_validate(MINIMAL)
    assert driver.conditions() == ["a", "bee"]
    assert driver.condition_payload("bee", True) == ("alarm", {"what": "b", "on": "y"})
    assert driver.condition_payload("bee", False) == ("alarm", {"what": "b", "on": "n"})
    meaning = interpret(driver, "alarm", parse(driver, "alarm", b'{"what": "b", "on": "n"}'))
    assert meaning.condition is not None
    assert (meaning.condition.code, meaning.condition.active, meaning.condition.meaning.event) == (
        "bee",
        False,
        "status",
    )
    barrier = mqtt_driver("barrier-a")
    assert barrier.condition_payload("limit_timeout", False) == ("fault", {"code": "limit_timeout", "active": False})
    with pytest.raises(KeyError, match="no condition 'smoke'"):
        barrier.condition_payload("smoke", True)


def test_encode_refuses_what_the_collector_would_reject() -> None:
    driver = mqtt_driver("barrier-a")
    with pytest.raises(ValueError, match="no field 'plate'"):
        encode(driver, "card", {"card": "ABCD", "granted": True, "direction": "in", "plate": "x"})
    with pytest.raises(ValueError, match="missing required fields"):
        encode(driver, "card", {"card": "ABCD", "granted": True})
    with pytest.raises(PayloadError, match=r"card.direction: \"up\" is not one of in, out"):
        encode(driver, "card", {"card": "ABCD", "granted": True, "direction": "up"})
    with pytest.raises(KeyError, match="no message 'reboot'"):
        encode(driver, "reboot", {})


MESSAGES = [(model, message) for model in sorted(MQTT_DRIVERS) for message in mqtt_driver(model).messages]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), which=st.sampled_from(MESSAGES))
def test_what_is_encoded_decodes_to_the_same_values(data: st.DataObject, which: tuple[str, str]) -> None:
    model, message = which
    driver = mqtt_driver(model)
    spec = driver.messages[message]
    good = data.draw(payload(spec))
    values = parse(driver, message, encode(driver, message, good))
    assert values == good
    for name, value in values.items():
        # Numbers come back as floats whatever the JSON held, so their InfluxDB type never changes.
        expected = float if spec.fields[name].type is JsonType.NUMBER else type(good[name])
        assert type(value) is expected
    meaning = interpret(driver, message, values)
    assert set(meaning.values) <= set(spec.reading)
    if spec.event is not None and spec.event.type is EventType.CARD_READ:
        assert meaning.event is not None
        assert meaning.event[3] == {k: good[k] for k in ("card", "granted", "direction")}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), which=st.sampled_from(MESSAGES))
def test_a_payload_wrong_in_one_way_is_rejected_for_that_reason(data: st.DataObject, which: tuple[str, str]) -> None:
    model, message = which
    driver = mqtt_driver(model)
    problem, raw = data.draw(bad_payload(driver.messages[message]))
    with pytest.raises(PayloadError) as caught:
        parse(driver, message, raw)
    assert caught.value.problem is problem, caught.value.detail


def test_an_unknown_message_type_is_rejected_before_its_payload_is_read() -> None:
    with pytest.raises(PayloadError) as caught:
        parse(mqtt_driver("camera-a"), "snapshot", b"\xff\xd8")
    assert caught.value.problem is Problem.UNKNOWN_MESSAGE
    assert caught.value.detail == "unknown message type 'snapshot' (known: alarm, heartbeat)"
