"""Readings travel the backbone in batches: many readings of one site and device kind in one MQTT message.

Topic: `facmon/v1/<site>/<kind>/_batch/state`. It fits the topic tree: a subscription to a site's or a kind's state
(`facmon/v1/<site>/<kind>/+/state`) receives the batches of that site and kind, and `_batch` cannot be a device,
whose id starts with a letter or a digit.

Payload, version 1: a JSON object `{"v": 1, "readings": [<reading>, ...]}` where each reading is exactly what a
reading's own message on its device's state topic carries (`Reading.model_dump_json()`), so every reading keeps its
device, its timestamp and its values. A batch holds readings of the topic's site and kind only, at least one, at
most `MAX_BATCH_READINGS` and `MAX_BATCH_BYTES`. A consumer that meets another `v` refuses the batch (a newer
gateway than the consumer), saying so.

Events (faults raised and cleared, comm lost and restored, status, card reads) stay one per message on their
device's event topic: they are rare, a rules worker acts on each alone, and comm events are retained per device.
Readings may still come one per message on the device's state topic (an older gateway, a test, a script);
`decode_state` takes both.

A batch is judged reading by reading: the good ones are used and each bad one is refused with a reason naming its
place (`readings.3.values.floor: ...`); an envelope that is not a batch at all refuses the whole message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from facmon.kernel.model import Event, Reading, decode_message, validate_message
from facmon.kernel.topics import ROOT, STATE
from facmon.kernel.untrusted import JsonRejected, parse_json

BATCH_DEVICE = "_batch"
BATCH_VERSION = 1
# A batch stays well under what brokers accept by default (Mosquitto: 256 MB; EMQX: 1 MB) and what a consumer holds.
MAX_BATCH_READINGS = 1000
MAX_BATCH_BYTES = 512 * 1024
# What a consumer parses at most: a batch and room for a gateway that packs differently.
MAX_BATCH_PAYLOAD = 2 * MAX_BATCH_BYTES

_HEAD = b'{"v":%d,"readings":[' % BATCH_VERSION
_TAIL = b"]}"


def batch_topic(site: str, kind: str) -> str:
    return f"{ROOT}/{site}/{kind}/{BATCH_DEVICE}/{STATE}"


def batch_of(topic: str) -> tuple[str, str] | None:
    """(site, kind) of a batch topic; None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[4] == BATCH_DEVICE and parts[5] == STATE and "/".join(parts[:2]) == ROOT:
        return parts[2], parts[3]
    return None


def encode_batch(readings: Sequence[bytes]) -> bytes:
    """A batch payload of readings already encoded as JSON (`Reading.model_dump_json().encode()`), in order."""
    if not readings:
        raise ValueError("a batch holds at least one reading")
    return _HEAD + b",".join(readings) + _TAIL


def batch_size(readings: int, payload_bytes: int) -> int:
    """The size of a batch payload of `readings` readings whose JSON takes `payload_bytes` together."""
    return len(_HEAD) + payload_bytes + max(0, readings - 1) + len(_TAIL)


@dataclass
class Decoded:
    """What a state message holds: the readings to use and, for each one refused, (its JSON, the reason)."""

    readings: list[Reading] = field(default_factory=list)
    refused: list[tuple[object, str]] = field(default_factory=list)


def decode_state(topic: str, payload: bytes | str) -> Decoded:
    """The readings of a message on a state topic: a batch, or one reading on its device's topic.

    Raises ValueError naming what is wrong when nothing of it can be used (not JSON, not a batch, another version,
    a reading that belongs on another topic); readings of a batch that cannot be used are in `refused`."""
    where = batch_of(topic)
    if where is None:
        message = _single(payload)
        if _own_topic(message) != topic:
            raise ValueError(f"topic_mismatch: payload belongs on {_own_topic(message)}")
        return Decoded([message])
    return decode_batch(payload, *where)


def decode_batch(payload: bytes | str, site: str, kind: str) -> Decoded:
    """The readings of a batch of `site` and `kind` (see the module); raises ValueError when it is no batch."""
    try:
        data = parse_json(payload, max_bytes=MAX_BATCH_PAYLOAD)
    except JsonRejected as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"v", "readings"}:
        raise ValueError('invalid batch: not an object of "v" and "readings"')
    if data["v"] != BATCH_VERSION or isinstance(data["v"], bool):
        raise ValueError(f"invalid batch: version {str(data['v'])[:20]!r}, this consumer reads {BATCH_VERSION}")
    items = data["readings"]
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH_READINGS:
        raise ValueError(f"invalid batch: readings must be a list of 1 to {MAX_BATCH_READINGS}")
    decoded = Decoded()
    for n, item in enumerate(items):
        try:
            message = validate_message(item, where=f"readings.{n}.")
        except ValueError as exc:
            decoded.refused.append((item, str(exc)))
            continue
        if not isinstance(message, Reading):
            decoded.refused.append((item, f"invalid batch: readings.{n} is an event"))
        elif (message.ref.site, message.ref.kind.value) != (site, kind):
            reason = f"topic_mismatch: readings.{n} is of {message.ref.site}/{message.ref.kind.value}"
            decoded.refused.append((item, reason))
        else:
            decoded.readings.append(message)
    return decoded


def _single(payload: bytes | str) -> Reading:
    message = decode_message(payload)
    if isinstance(message, Event):
        raise ValueError("invalid reading: an event on a state topic")
    return message


def _own_topic(message: Reading) -> str:
    ref = message.ref
    return f"{ROOT}/{ref.site}/{ref.kind.value}/{ref.device}/{STATE}"
