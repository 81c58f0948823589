"""Two historians side by side on an MQTT 5 shared subscription (FACMON_HISTORIAN_SHARE_GROUP), each `facmon
historian` a process of its own on a real Mosquitto 2: each stores a share of a stream of batches, together every
point; one killed mid-stream (SIGKILL) and started again under its own FACMON_INSTANCE, and every point is stored.

Mosquitto 2.0.11 keeps a member that is away with its persistent session in the group: the messages the broker
gives to its turn wait in its session until it is back (checked below), as does what it had received and not
acknowledged when it died.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from facmon.kernel.batches import batch_topic, encode_batch
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.model import DeviceKind, DeviceRef, Reading
from facmon.kernel.mqtt import MqttSettings, mqtt_client
from tests.conftest import influxql
from tests.gateway.conftest import eventually
from tests.system.processes import FacmonProcesses, Started

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DEVICES = 20
PER_BATCH = 50
# Batches of each part of the stream: before the kill, around it, while the killed one is away.
PART = 60
GROUP = "historians"


def _site_file(path: Path, site: str) -> Path:
    gates = [{"id": f"g{d:03d}", "kind": "gate", "model": "barrier-a"} for d in range(DEVICES)]
    path.write_text(yaml.safe_dump({"site": {"id": site}, "buildings": [{"id": "b1", "devices": gates}]}))
    return path


def _batches(site: str, first: int, count: int) -> Iterator[tuple[bytes, list[tuple[str, int]]]]:
    """Batches `first`..`first + count - 1` of the stream: their payloads and each reading's (device, cycles)."""
    for b in range(first, first + count):
        readings, points = [], []
        for r in range(PER_BATCH):
            n = b * PER_BATCH + r
            device = f"g{n % DEVICES:03d}"
            ref = DeviceRef(site=site, building="b1", device=device, kind=DeviceKind.GATE, model="barrier-a")
            reading = Reading(ref=ref, ts=T0 + timedelta(milliseconds=n), values={"cycles": n})
            readings.append(reading.model_dump_json().encode())
            points.append((device, n))
        yield encode_batch(readings), points


async def _publish(
    port: int, site: str, first: int, count: int, between: Callable[[int], None]
) -> set[tuple[str, int]]:
    """Publish batches (QoS 1, each acknowledged by the broker); `between(n)` after the n-th of them."""
    sent: set[tuple[str, int]] = set()
    async with mqtt_client(MqttSettings("127.0.0.1", port)) as client:
        for n, (payload, points) in enumerate(_batches(site, first, count)):
            await client.publish(batch_topic(site, "gate"), payload, qos=1)
            sent.update(points)
            between(n)
    return sent


def _stored(url: str, db: str) -> set[tuple[str, int]]:
    stored: set[tuple[str, int]] = set()
    for series in influxql(url, db, "SELECT device, cycles FROM gate"):
        columns = list(series["columns"])  # type: ignore[call-overload]
        device, cycles = columns.index("device"), columns.index("cycles")
        stored.update((str(row[device]), int(row[cycles])) for row in series["values"])  # type: ignore[attr-defined]
    return stored


def _received(port: int) -> int:
    """The readings a historian took from the broker, from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(r"^facmon_historian_readings_received_total (\S+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


@pytest.fixture
def broker(mosquitto_factory: Callable[[], Mosquitto]) -> Mosquitto:
    """A broker of the test's own: the historians' persistent sessions go with it."""
    return mosquitto_factory()


async def test_two_historians_share_the_stream_and_a_killed_one_restarted_loses_nothing(
    broker: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    site = _site_file(tmp_path / "site.yaml", topic_prefix)
    env = {
        "FACMON_MQTT_HOST": "127.0.0.1",
        "FACMON_MQTT_PORT": str(broker.port),
        "FACMON_INFLUX_URL": influxd.url,
        "FACMON_INFLUX_DB": influx_db,
        "FACMON_HISTORIAN_SHARE_GROUP": GROUP,
    }
    ports = {name: free_port() for name in ("a", "b")}

    def start(facmon: FacmonProcesses, name: str) -> Started:
        # Each historian its own instance (its session at the broker) and its own state folder (its buffer).
        facmon.env = env | {"FACMON_INSTANCE": name, "FACMON_STATE_DIR": str(tmp_path / f"state-{name}")}
        started = facmon.start(
            f"historian-{name}", "historian", "--site", str(site), "--metrics-port", str(ports[name])
        )
        facmon.wait_healthy(started, f"http://127.0.0.1:{ports[name]}/health")
        return started

    with FacmonProcesses(tmp_path, env) as facmon:
        a, b = start(facmon, "a"), start(facmon, "b")
        sent = await _publish(broker.port, topic_prefix, 0, PART, lambda n: None)
        await eventually(lambda: _stored(influxd.url, influx_db) == sent, what="the first part stored", timeout_s=60)
        shares = {name: _received(port) for name, port in ports.items()}
        # Each took a share, and no reading went to both.
        assert all(shares.values()), shares
        assert sum(shares.values()) == len(sent), shares

        def kill_a_half_way(n: int) -> None:
            if n == PART // 2:
                facmon.kill(a)

        sent |= await _publish(broker.port, topic_prefix, PART, PART, kill_a_half_way)
        sent |= await _publish(broker.port, topic_prefix, 2 * PART, PART, lambda n: None)
        # While `a` is away, the broker keeps its turn of the group's messages in its session: `b` takes its own
        # share and no more, so part of the stream waits.
        await eventually(lambda: _received(ports["b"]) >= shares["b"] + PART * PER_BATCH // 2, what="b's share")
        await asyncio.sleep(2.0)  # b has had time to take more, had the broker offered it more
        stored_while_away = _stored(influxd.url, influx_db)
        assert stored_while_away < sent, "a's turn of the stream waits in its session while it is away"
        assert _received(ports["b"]) - shares["b"] < 2 * PART * PER_BATCH

        start(facmon, "a")
        await eventually(lambda: _stored(influxd.url, influx_db) == sent, what="every point stored", timeout_s=60)
    assert len(sent) == 3 * PART * PER_BATCH
    assert not b.proc.returncode, b.output()
