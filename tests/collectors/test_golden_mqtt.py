"""Golden cases of the MQTT drivers: every `testcases/<case>/` folder of every registered driver, one runner.

`input.yaml` lists the case's devices (`id`, optional `vendor_id` and `comm_grace_s`) and a sequence of messages
(`topic` with `payload` as YAML, `raw` text or `base64` bytes, optional `retained`) and pauses (`advance_s`: a fake
clock moves on and the heartbeat watchdog looks). `expected.yaml` lists what comes out, in order: `reading`, `event`
and `rejected` entries. A new regression test is a new folder.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from collectors.mqtt.collector import BrokerSettings, MqttCollector, MqttDevice
from collectors.registry import MQTT_DRIVERS, mqtt_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Event, Reading
from gateway.mqtt_devices import HEARTBEATS_OF_GRACE

SITE = "golden"


def _cases() -> list[tuple[str, Path]]:
    return [
        (model, folder)
        for model, path in sorted(MQTT_DRIVERS.items())
        for folder in sorted((path.parent / "testcases").glob("*/"))
    ]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _payload(step: dict[str, Any]) -> bytes:
    if "raw" in step:
        return str(step["raw"]).encode()
    if "base64" in step:
        return base64.b64decode(step["base64"])
    return json.dumps(step["payload"]).encode()


def _normalise(message: Reading | Event | DeadLetter) -> dict[str, Any]:
    """What a golden file states about an output: everything but timestamps and ids, empty parts left out."""
    if isinstance(message, DeadLetter):
        return {"rejected": {"device": message.ref.device if message.ref else None, "reason": message.reason}}
    if isinstance(message, Reading):
        return {"reading": {"device": message.ref.device, "values": message.values}}
    event: dict[str, Any] = {"device": message.ref.device, "type": message.type.value}
    if message.code is not None:
        event["code"] = message.code
    if message.message:
        event["message"] = message.message
    if message.data:
        event["data"] = message.data
    return {"event": event}


async def _run(model: str, folder: Path) -> tuple[list[Reading | Event | DeadLetter], Counters]:
    driver = mqtt_driver(model)
    case = _load(folder / "input.yaml")
    devices = [
        MqttDevice(
            DeviceRef(site=SITE, building="b1", device=d["id"], kind=driver.kind, model=model),
            driver,
            d.get("vendor_id", d["id"]),
            float(d.get("comm_grace_s", HEARTBEATS_OF_GRACE * driver.heartbeat.interval_s)),
        )
        for d in case["devices"]
    ]
    out: list[Reading | Event | DeadLetter] = []

    async def emit(message: Reading | Event) -> None:
        out.append(message)

    async def reject(letter: DeadLetter) -> None:
        out.append(letter)

    clock, metrics = FakeClock(), Counters()
    collector = MqttCollector(
        SITE, devices, BrokerSettings("unused", 1), emit=emit, reject=reject, clock=clock, metrics=metrics
    )
    for step in case["messages"]:
        if "advance_s" in step:
            clock.advance(float(step["advance_s"]))
            await collector.watchdog.check()
            continue
        payload = _payload(step)
        before = len(out)
        await collector.handle(step["topic"], payload, retained=bool(step.get("retained", False)))
        for letter in out[before:]:
            if isinstance(letter, DeadLetter):
                # A dead letter keeps the input as it came: the topic, and the payload as text or base64.
                assert letter.topic == step["topic"]
                kept = letter.payload.encode() if letter.payload is not None else None
                assert kept or base64.b64decode(letter.payload_base64 or "") == payload
                assert kept is None or kept == payload
    return out, metrics


def _types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _types(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_types(v) for v in node]
    return type(node).__name__


def test_every_driver_has_golden_cases() -> None:
    for model, path in MQTT_DRIVERS.items():
        folder = path.parent / "testcases"
        cases = [c for c in folder.glob("*/") if (c / "input.yaml").is_file() and (c / "expected.yaml").is_file()]
        assert len(cases) >= 3, f"{model}: at least 3 golden cases in {folder}"


@pytest.mark.parametrize(("model", "folder"), _cases(), ids=[f"{m}/{f.name}" for m, f in _cases()])
async def test_golden_case(model: str, folder: Path) -> None:
    out, metrics = await _run(model, folder)
    expected = _load(folder / "expected.yaml") or []
    got = [_normalise(m) for m in out]
    assert got == expected
    # 23 == 23.0 == True in Python, but not in InfluxDB: the types must be the golden file's too.
    assert _types(got) == _types(expected)
    rejected = sum(isinstance(m, DeadLetter) for m in out)
    assert metrics.get("mqtt_rejected") == rejected, "every rejection is counted"
