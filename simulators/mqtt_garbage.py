"""Malformed vendor payloads, made from a device's real ones, for the `garbage` step.

Each is wrong in exactly one way the collector must catch: text that is not JSON, a field of the wrong JSON type, a
field the driver does not know, a value outside its range or enum, a message type the device does not have. They
take turns, so any `count` of five or more exercises every way; the choices within each come from a seeded stream.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

from collectors.mqtt.driver import FieldSpec, JsonType, MqttDriver
from facmon.kernel.model import Value

_WRONG_TYPE: dict[JsonType, Any] = {
    JsonType.BOOLEAN: "yes",
    JsonType.INTEGER: "12",
    JsonType.NUMBER: [1.5],
    JsonType.STRING: 123,
}


def _out_of_range(spec: FieldSpec) -> Any | None:
    """A value of the right type that the field does not allow; None when every value of its type is legal."""
    if spec.max is not None:
        return int(spec.max) + 1 if spec.type is JsonType.INTEGER else spec.max + 1.5
    if spec.min is not None:
        return int(spec.min) - 1 if spec.type is JsonType.INTEGER else spec.min - 1.5
    if spec.enum is not None:
        return "no_such_value" if spec.type is JsonType.STRING else max(map(int, spec.enum)) + 1
    return None


def garbage_payloads(
    driver: MqttDriver, samples: Mapping[str, Mapping[str, Value]], count: int, rng: random.Random
) -> Iterator[tuple[str, bytes]]:
    """`count` (message, payload) pairs, each malformed; `samples` are good payloads of some messages to spoil."""
    usable = {m: dict(v) for m, v in samples.items() if v}
    if not usable:
        raise ValueError(f"{driver.model}: no sample payload to make garbage from")
    for i in range(count):
        message = rng.choice(sorted(usable))
        good = usable[message]
        fields = driver.fields_of(message)
        kind = i % 5
        if kind == 0:
            text = json.dumps(good)
            yield message, text[: rng.randrange(1, len(text))].encode()
        elif kind == 1:
            name = rng.choice(sorted(good))
            yield message, json.dumps({**good, name: _WRONG_TYPE[fields[name].type]}).encode()
        elif kind == 2:
            yield message, json.dumps({**good, "debug_dump": rng.randrange(1000)}).encode()
        elif kind == 3:
            ranged = sorted(n for n in good if _out_of_range(fields[n]) is not None)
            if not ranged:  # nothing to push out of range in this message: spoil its type instead
                name = rng.choice(sorted(good))
                yield message, json.dumps({**good, name: _WRONG_TYPE[fields[name].type]}).encode()
                continue
            name = rng.choice(ranged)
            yield message, json.dumps({**good, name: _out_of_range(fields[name])}).encode()
        else:
            yield f"undocumented_{rng.randrange(100)}", json.dumps(good).encode()
