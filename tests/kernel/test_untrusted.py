"""Poison for the parsers of the house: `decode_message` and `parse_json` refuse it with a ValueError naming what is
wrong, and a `DeadLetter` of anything at all can be serialised and gives back the input it was made from."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facmon.kernel.model import MAX_PAYLOAD_BYTES, MAX_REASON_CHARS, DeadLetter, DeviceKind, DeviceRef, decode_message
from facmon.kernel.untrusted import JsonRejected, parse_json, printable
from tests.kernel.poison import poison

TS = datetime(2026, 3, 1, tzinfo=UTC)
REF = DeviceRef(site="s1", building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
EVENT = {"ref": REF.model_dump(mode="json"), "ts": TS.isoformat(), "type": "fault_raised", "code": "2"}


# Text as a Python str may hold it after json.loads of "\ud800": lone surrogates among the other characters.
TEXT = st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))).map("".join)


def _storable(text: str) -> bool:
    text.encode("utf-8")  # raises on a lone surrogate
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=poison(EVENT))
def test_decode_message_refuses_poison_with_a_value_error(case: tuple[str, bytes]) -> None:
    kind, payload = case
    with pytest.raises(ValueError, match=r"^(not JSON: |payload is not a JSON object|invalid event: )") as caught:
        decode_message(payload)
    reason = str(caught.value)
    assert _storable(reason), kind
    assert len(reason) <= 400, kind


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
        (b'{"a": "\\ud800"}', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'"\\ud800"', "surrogate"),
        (b'["\\ud800"]', "surrogate"),
        (b'{"a": ["\\udc00"]}', "surrogate"),
        (b"\xff", "not_utf8"),
        (b'{"a": NaN}', "not_finite"),
        (b'{"a": -Infinity}', "not_finite"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "too_long"),
        (b'{"a": {"b": [["\\udbff"]]}}', "surrogate"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b"x" * 101, "too_large"),
        (b"{", "bad_json"),
    ],
)
def test_parse_json_names_the_problem(payload: bytes, problem: str) -> None:
    with pytest.raises(JsonRejected) as caught:
        parse_json(payload, max_bytes=100 if problem == "too_large" else 1_000_000)
    assert caught.value.problem == problem


def test_parse_json_keeps_good_json_and_valid_surrogate_pairs() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00", "b": [1, 2.5, null, true]}', max_bytes=100) == {
        "a": "\U0001f600",
        "b": [1, 2.5, None, True],
    }
    # Numbers' ranges are the caller's: 1e400 parses as infinity, for it to refuse naming its field.
    assert parse_json(b"[1e400, 100000000000000000000]", max_bytes=100) == [float("inf"), 10**20]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "9" * 30, "-9" + "9" * 20])
def test_decode_message_refuses_a_number_no_store_can_hold(number: str) -> None:
    payload = json.dumps({**EVENT, "type": "card_read", "data": {"card": "x"}}).replace('"x"', number)
    with pytest.raises(ValueError, match=r"^invalid event: data\.card: .* is out of range$"):
        decode_message(payload)


def test_a_good_event_still_decodes() -> None:
    assert decode_message(json.dumps(EVENT)).code == "2"


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(st.binary(max_size=300), TEXT), reason=TEXT | st.text(min_size=400, max_size=2_000))
def test_a_dead_letter_of_anything_serialises_and_keeps_the_input(payload: bytes | str, reason: str) -> None:
    letter = DeadLetter.of(site="s1", ref=REF, ts=TS, source="mqtt", reason=reason, payload=payload, topic="t")
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again == letter
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
    kept = letter.payload.encode() if letter.payload is not None else base64.b64decode(letter.payload_base64 or "")
    assert kept == raw
    assert len(letter.reason) <= MAX_REASON_CHARS
    assert letter.reason == printable(reason, MAX_REASON_CHARS)


def test_a_dead_letter_built_directly_is_storable_too() -> None:
    letter = DeadLetter(site="s1", ref=None, ts=TS, source="mqtt", reason="bad \ud800", payload='{"a": "\ud800"}')
    assert letter.reason == "bad \\ud800"
    assert (letter.payload, letter.payload_base64) == (None, base64.b64encode(b'{"a": "\xed\xa0\x80"}').decode())
    letter.model_dump_json()


def test_a_dead_letter_of_a_flood_keeps_its_head_and_size() -> None:
    letter = DeadLetter.of(site="s1", ref=None, ts=TS, source="mqtt", reason="big", payload="é" * 50_000)
    assert letter.payload_size == 100_000
    assert letter.payload == "é" * (MAX_PAYLOAD_BYTES // 2)
    # Cut inside a character: the half character goes, the text before it stays text.
    odd = DeadLetter.of(site="s1", ref=None, ts=TS, source="mqtt", reason="big", payload=b"a" + "é".encode() * 40_000)
    assert odd.payload == "a" + "é" * ((MAX_PAYLOAD_BYTES - 1) // 2)
    binary = DeadLetter.of(site="s1", ref=None, ts=TS, source="mqtt", reason="big", payload=b"\xff" * 70_000)
    assert (binary.payload, binary.payload_size) == (None, 70_000)
    assert base64.b64decode(binary.payload_base64 or "") == b"\xff" * MAX_PAYLOAD_BYTES
