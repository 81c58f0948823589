from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from facmon.historian.buffer import LineBuffer
from facmon.historian.writer import RETRY_WAIT_MAX_S, InfluxWriter
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from tests.conftest import influxql
from tests.gateway.conftest import eventually, running

T0_NS = 1_772_353_815_000_000_000


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[LineBuffer]:
    with LineBuffer(tmp_path / "buffer.sqlite") as buf:
        yield buf


def _writer(url: str, db: str, buffer: LineBuffer, metrics: Counters, **options: object) -> InfluxWriter:
    settings: dict[str, object] = {"flush_interval_s": 0.1, "backoff_max_s": 0.3, **options}
    return InfluxWriter(InfluxSettings(url, db), buffer=buffer, metrics=metrics, **settings)  # type: ignore[arg-type]


def _count(url: str, db: str, query: str) -> int:
    series = influxql(url, db, query)
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]


async def _post(url: str, **kwargs: Any) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(url, **kwargs)).raise_for_status()


def _lines(site: str, n: int, start: int = 0) -> list[str]:
    return [f"elevator,site={site},device=e{i % 3} floor={i}i {T0_NS + i * 1_000_000}" for i in range(start, start + n)]


async def test_batches_land_with_their_timestamps(influxd: Influxd, influx_db: str, buffer: LineBuffer) -> None:
    metrics = Counters()
    buffer.append(_lines("s1", 12_000))
    writer = _writer(influxd.url, influx_db, buffer, metrics, batch_size=5000)
    async with running(writer.run(), "writer"):
        await eventually(lambda: buffer.pending() == 0, what="an empty buffer")
    assert list(writer.recent_batch_sizes) == [5000, 5000, 2000]
    assert _count(influxd.url, influx_db, "SELECT count(floor) FROM elevator") == 12_000
    rows = influxql(influxd.url, influx_db, "SELECT floor FROM elevator WHERE device = 'e1' AND floor < 10")
    assert rows[0]["values"] == [[T0_NS + i * 1_000_000, i] for i in (1, 4, 7)]
    assert metrics.get("historian_points_written") == 12_000
    assert metrics.get("historian_write_batches") == 3


async def test_missing_database_is_created(influxd: Influxd, buffer: LineBuffer) -> None:
    db = f"new_{uuid.uuid4().hex[:10]}"
    buffer.append(_lines("s1", 10))
    try:
        async with running(_writer(influxd.url, db, buffer, Counters()).run(), "writer"):
            await eventually(lambda: buffer.pending() == 0, what="an empty buffer")
        assert _count(influxd.url, db, "SELECT count(floor) FROM elevator") == 10

        # Dropped while the writer runs (404 database not found): created again, nothing lost.
        metrics = Counters()
        async with running(_writer(influxd.url, db, buffer, metrics).run(), "writer"):
            buffer.append(_lines("s1", 1, start=10))
            await eventually(lambda: buffer.pending() == 0, what="the writer under way")
            await _post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})
            buffer.append(_lines("s1", 10, start=11))
            await eventually(lambda: buffer.pending() == 0, what="an empty buffer")
        assert _count(influxd.url, db, "SELECT count(floor) FROM elevator") == 10
        assert metrics.get("historian_write_errors", reason="database_not_found") == 1
    finally:
        await _post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})


async def test_refused_lines_are_parked_and_the_rest_written(
    influxd: Influxd, influx_db: str, buffer: LineBuffer
) -> None:
    # `floor` becomes an integer field; a float `floor` later is a field type conflict.
    seed = f"elevator,site=s1,device=e0 floor=1i {T0_NS - 1}"
    await _post(f"{influxd.url}/write", params={"db": influx_db}, content=seed.encode())
    good = _lines("s1", 1000)
    conflicting = f"elevator,site=s1,device=e9 floor=2.5 {T0_NS}"
    garbage = "elevator,site=s1 this is not line protocol"
    buffer.append([*good[:300], conflicting, *good[300:700], garbage, *good[700:]])

    metrics = Counters()
    writer = _writer(influxd.url, influx_db, buffer, metrics, batch_size=5000)
    async with running(writer.run(), "writer"):
        await eventually(lambda: buffer.pending() == 0, what="an empty buffer")

    assert _count(influxd.url, influx_db, "SELECT count(floor) FROM elevator") == 1 + len(good)
    parked = {r.line: r.reason for r in buffer.rejected()}
    assert set(parked) == {conflicting, garbage}
    assert "field type conflict" in parked[conflicting]
    assert "unable to parse" in parked[garbage]
    assert metrics.get("historian_lines_rejected") == 2
    assert metrics.get("historian_points_written") == len(good)


async def test_outage_keeps_the_batch_until_influxdb_is_back(
    influxd_factory: Callable[[], Influxd], buffer: LineBuffer
) -> None:
    server = influxd_factory()
    await asyncio.to_thread(server.stop)
    metrics = Counters()
    buffer.append(_lines("s1", 500))
    async with running(_writer(server.url, "db1", buffer, metrics).run(), "writer"):
        await eventually(lambda: metrics.get("historian_write_errors") >= 3, what="failed attempts")
        assert buffer.pending() == 500
        await asyncio.to_thread(server.start)
        buffer.append(_lines("s1", 500, start=500))
        await eventually(lambda: buffer.pending() == 0, what="an empty buffer", timeout_s=15)
    rows = influxql(server.url, "db1", "SELECT floor FROM elevator WHERE floor = 777")
    assert rows[0]["values"] == [[T0_NS + 777 * 1_000_000, 777]]
    assert _count(server.url, "db1", "SELECT count(floor) FROM elevator") == 1000


async def test_cancel_is_not_lost_when_a_wakeup_lands_in_the_same_tick(
    influxd: Influxd, influx_db: str, buffer: LineBuffer
) -> None:
    # A wake-up and a cancel in the same loop iteration: asyncio.wait_for on Python 3.11 returns the wake-up and
    # drops the cancel, and the writer never stops. Shutting down must not depend on that timing.
    writer = _writer(influxd.url, influx_db, buffer, Counters(), flush_interval_s=30.0)
    task = asyncio.create_task(writer.run())
    for _ in range(20):
        await asyncio.wait_for(writer.idle.wait(), 10)  # the writer is parked, waiting for lines
        writer.notify()
        await asyncio.sleep(0)  # the wake-up completes; the writer has not resumed yet
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the writer did not stop after a cancel that met a wake-up"
        assert task.cancelled()
        assert not writer.idle.is_set()
        task = asyncio.create_task(writer.run())
    task.cancel()
    await asyncio.wait({task}, timeout=2)


async def test_idle_is_set_only_while_the_writer_waits_for_lines(
    influxd: Influxd, influx_db: str, buffer: LineBuffer
) -> None:
    metrics = Counters()
    writer = _writer(influxd.url, influx_db, buffer, metrics, batch_size=10, flush_interval_s=30.0)
    assert not writer.idle.is_set(), "not running"
    async with running(writer.run(), "writer"):
        await asyncio.wait_for(writer.idle.wait(), 10)
        buffer.append(_lines("s1", 4))
        writer.notify()
        await asyncio.sleep(0)
        # Woken, it found less than a batch, none of it old: it waits again, for more lines.
        await asyncio.wait_for(writer.idle.wait(), 10)
        assert buffer.pending() == 4
        buffer.append(_lines("s1", 6, start=4))
        writer.notify()
        await eventually(lambda: buffer.pending() == 0 and writer.idle.is_set(), what="the batch written, idle again")
        assert metrics.get("historian_points_written") == 10
    assert not writer.idle.is_set(), "stopped"


async def test_retries_are_at_most_4_s_apart_so_a_returning_influxdb_is_written_within_5_s(
    influxd_factory: Callable[[], Influxd], buffer: LineBuffer
) -> None:
    # A cap of 30 s asked for: the writer still tries every 4 s at most, on its clock, not wall time.
    server = influxd_factory()
    await asyncio.to_thread(server.stop)
    clock = FakeClock()
    metrics = Counters()
    buffer.append(_lines("s1", 50))
    writer = _writer(server.url, "db1", buffer, metrics, backoff_max_s=30.0, clock=clock)
    assert writer.backoff_max_s == RETRY_WAIT_MAX_S <= 4.0

    async def next_wait() -> float:
        deadlines = await eventually(
            lambda: [d for d in clock.sleeping if d > clock.monotonic()], what="the writer backing off"
        )
        return deadlines[0] - clock.monotonic()

    async with running(writer.run(), "writer"):
        waits = []
        for _ in range(10):  # uncapped, 0.1 s doubling would reach 51 s by the 10th try
            waits.append(await next_wait())
            clock.advance(waits[-1])
        assert metrics.get("historian_write_errors") >= 10
        assert max(waits) <= RETRY_WAIT_MAX_S
        assert waits[-1] >= RETRY_WAIT_MAX_S / 2  # the cap is reached, with its jitter
        await asyncio.to_thread(server.start)
        # InfluxDB is back: the next try, at most 4 s of the writer's clock away, creates the database and writes.
        wait = await next_wait()
        assert wait <= RETRY_WAIT_MAX_S
        clock.advance(wait)
        await eventually(lambda: metrics.get("historian_write_batches") == 0 and writer.idle.is_set(), what="ready")
        clock.advance(0.1)  # the flush interval, on the writer's clock too
        await eventually(lambda: buffer.pending() == 0, what="an empty buffer", timeout_s=15)
    assert _count(server.url, "db1", "SELECT count(floor) FROM elevator") == 50
