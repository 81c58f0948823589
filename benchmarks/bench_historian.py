"""How fast points travel gateway outbox -> MQTT -> historian -> InfluxDB, on real Mosquitto and influxd.

    python benchmarks/bench_historian.py [--points 50000] [--devices 100]

Starts its own Mosquitto and influxd in a temporary folder and prints:
  1. end to end: readings put into a gateway outbox until every point is queryable in InfluxDB, with the gateway's
     publisher and the historian sharing one process (and one core), as in `facmon up`;
  2. historian only: the same readings, queued meanwhile by the broker for a second historian's persistent session,
     drained by that historian alone into InfluxDB;
  3. writer only: lines already in the buffer until InfluxDB has them all (InfluxDB's share).
with the batch sizes the writer used. Each phase gives up after its time limit, so the whole run stays under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facmon.historian.buffer import LineBuffer
from facmon.historian.lines import reading_line
from facmon.historian.service import Historian
from facmon.historian.writer import InfluxWriter
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Reading
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.logs import configure
from gateway.outbox import Outbox
from gateway.publisher import Publisher

PHASE_LIMIT_S = 30.0
# The whole run gives up here, whatever phase it is in, so it stays under a minute.
TOTAL_LIMIT_S = 55.0
DEADLINE = time.monotonic() + TOTAL_LIMIT_S


def readings(site: str, points: int, devices: int) -> list[Reading]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    refs = [
        DeviceRef(site=site, building="b1", device=f"e{d}", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
        for d in range(devices)
    ]
    return [
        Reading(
            ref=refs[n % devices],
            ts=start + timedelta(milliseconds=n // devices * 100),
            values={"floor": n % 30, "load_pct": (n % 1000) / 10, "door_open": n % 2 == 0, "state": "running"},
        )
        for n in range(points)
    ]


async def count(http: httpx.AsyncClient, db: str) -> int:
    resp = await http.get("/query", params={"db": db, "q": "SELECT count(floor) FROM elevator"})
    series = resp.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


async def seconds_until(check: Callable[[], Awaitable[bool]], started: float) -> float | None:
    """Seconds from `started` until `check` holds; None past the phase's or the run's time limit."""
    while time.monotonic() - started < PHASE_LIMIT_S and time.monotonic() < DEADLINE:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


def rate(label: str, points: int, seconds: float | None, unit: str = "points/s") -> str:
    if seconds is None:
        return f"  {label:<26} NOT done within the time limit"
    return f"  {label:<26}{seconds:6.2f} s {points / seconds:9.0f} {unit}"


def describe(sizes: list[int]) -> str:
    if not sizes:
        return "none"
    return f"{len(sizes)} batches, min {min(sizes)}, median {int(statistics.median(sizes))}, max {max(sizes)}"


@contextlib.asynccontextmanager
async def background(*coros: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def historian(root: Path, mqtt: Mosquitto, influx: Influxd, name: str, metrics: Counters) -> Historian:
    return Historian(
        mqtt=MqttSettings("127.0.0.1", mqtt.port, client_id=name),
        influx=InfluxSettings(influx.url, name),
        state_dir=root / name,
        metrics=metrics,
    )


async def end_to_end(root: Path, mqtt: Mosquitto, influx: Influxd, points: int, devices: int) -> None:
    # The second historian subscribes once and leaves: from then on the broker queues everything for it.
    later = historian(root, mqtt, influx, "later", Counters())
    async with background(later.run()):
        await asyncio.wait_for(later.subscribed.wait(), 10)

    metrics = Counters()
    live = historian(root, mqtt, influx, "live", metrics)
    data = readings("bench", points, devices)
    with Outbox(root / "outbox.sqlite", metrics=metrics) as outbox:
        publisher = Publisher(outbox, mqtt=MqttSettings("127.0.0.1", mqtt.port), client_id="bench-gw", metrics=metrics)
        async with background(live.run(), publisher.run()), httpx.AsyncClient(base_url=influx.url) as http:
            await asyncio.wait_for(live.subscribed.wait(), 10)
            await asyncio.wait_for(publisher.connected.wait(), 10)
            started = time.monotonic()
            for i in range(0, points, 1000):
                outbox.put_many(data[i : i + 1000])
                await asyncio.sleep(0)  # the publisher runs alongside, as it would behind real collectors
            put_s = time.monotonic() - started

            async def acked() -> bool:
                return outbox.size() == 0

            async def stored() -> bool:
                return await count(http, "live") >= points

            published_s = await seconds_until(acked, started)
            done_s = await seconds_until(stored, started)
    print(f"1. end to end, {points} readings from {devices} devices: outbox -> MQTT QoS 1 -> historian -> influxd")
    print(rate("put into the outbox", points, put_s, "readings/s"))
    print(rate("acked by the broker", points, published_s, "readings/s"))
    print(rate("queryable in InfluxDB", points, done_s))
    print(f"  writer batch sizes: {describe(list(live.writer.recent_batch_sizes))}")

    later = historian(root, mqtt, influx, "later", Counters())
    async with background(later.run()), httpx.AsyncClient(base_url=influx.url) as http:
        started = time.monotonic()

        async def drained() -> bool:
            return await count(http, "later") >= points

        done_s = await seconds_until(drained, started)
    print(f"2. historian only: {points} readings queued at the broker for its persistent session -> influxd")
    print(rate("queryable in InfluxDB", points, done_s))
    print(f"  writer batch sizes: {describe(list(later.writer.recent_batch_sizes))}")


async def writer_only(root: Path, influx: Influxd, points: int, devices: int, batch_size: int) -> None:
    with LineBuffer(root / f"writer-{batch_size}.sqlite") as buffer:
        buffer.append([line for r in readings("bench", points, devices) if (line := reading_line(r))])
        db = f"writer{batch_size}"
        writer = InfluxWriter(InfluxSettings(influx.url, db), buffer=buffer, metrics=Counters(), batch_size=batch_size)
        async with background(writer.run()), httpx.AsyncClient(base_url=influx.url) as http:
            started = time.monotonic()

            async def stored() -> bool:
                return await count(http, db) >= points

            done_s = await seconds_until(stored, started)
    print(rate(f"batch_size {batch_size}", points, done_s))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=100)
    args = parser.parse_args()
    configure("ERROR")
    with tempfile.TemporaryDirectory(prefix="facmon-bench-") as tmp:
        root = Path(tmp)
        with Mosquitto(root / "mosquitto") as mqtt, Influxd(root / "influxd") as influx:
            assert isinstance(mqtt, Mosquitto)
            assert isinstance(influx, Influxd)
            await end_to_end(root, mqtt, influx, args.points, args.devices)
            print(f"3. writer only: {args.points} lines already in the buffer -> influxd")
            for batch_size in (1000, 5000):
                await writer_only(root, influx, args.points, args.devices, batch_size)


if __name__ == "__main__":
    asyncio.run(main())
