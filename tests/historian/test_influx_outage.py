"""THE promise of the historian: InfluxDB (or the historian itself) goes away under load, and afterwards every
point is there, with its own timestamp."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from facmon.historian.service import Historian
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Reading
from facmon.kernel.mqtt import MqttSettings
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from tests.conftest import influxql
from tests.gateway.conftest import eventually, reading, running

DEVICES = 20
# Ticks of load, 200 ms apart in the readings' time: a quarter before the outage, half during it, a quarter after.
TICKS = 40


def _historian(mosquitto: Mosquitto, url: str, db: str, site: str, state_dir: Path, metrics: Counters) -> Historian:
    return Historian(
        mqtt=MqttSettings("127.0.0.1", mosquitto.port, client_id=f"historian-{site}"),
        influx=InfluxSettings(url, db),
        state_dir=state_dir,
        metrics=metrics,
        site=site,
        flush_interval_s=0.2,
        backoff_max_s=1.0,
    )


def _publisher(outbox: Outbox, mosquitto: Mosquitto) -> Publisher:
    return Publisher(
        outbox,
        mqtt=MqttSettings("127.0.0.1", mosquitto.port),
        client_id=f"gw-{uuid.uuid4().hex[:8]}",
        metrics=Counters(),
        backoff_max_s=0.5,
    )


def _stored(url: str, db: str, site: str) -> dict[tuple[str, int], int]:
    """(device, timestamp in ns) -> seq of every point of the site in InfluxDB."""
    series = influxql(url, db, f"SELECT seq FROM elevator WHERE site = '{site}' GROUP BY device")
    return {
        (s["tags"]["device"], row[0]): row[1]  # type: ignore[index]
        for s in series
        for row in s["values"]  # type: ignore[attr-defined]
    }


def _expected(sent: list[Reading]) -> dict[tuple[str, int], int]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {(r.ref.device, (r.ts - epoch) // timedelta(microseconds=1) * 1000): r.values["seq"] for r in sent}  # type: ignore[misc]


async def test_every_point_survives_an_influxdb_outage_under_load(
    mosquitto: Mosquitto, influxd_factory: Callable[[], Influxd], topic_prefix: str, tmp_path: Path
) -> None:
    influx = influxd_factory()
    metrics = Counters()
    historian = _historian(mosquitto, influx.url, "facmon", topic_prefix, tmp_path / "historian", metrics)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sent: list[Reading] = []

    def load(ticks: range) -> None:
        for tick in ticks:
            ts = start + timedelta(milliseconds=tick * 200 + 7, microseconds=tick)
            batch = [
                reading(topic_prefix, f"e{d}", ts=ts, seq=tick, load_pct=tick / 3, door_open=tick % 2 == 0)
                for d in range(DEVICES)
            ]
            outbox.put_many(batch)
            sent.extend(batch)

    async def a_failed_write() -> None:
        failed = metrics.get("historian_write_errors", reason="unreachable")
        await eventually(
            lambda: metrics.get("historian_write_errors", reason="unreachable") > failed,
            what="a failed write during the outage",
            timeout_s=15,
        )

    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        publisher = _publisher(outbox, mosquitto)
        async with running(historian.run(), "historian"), running(publisher.run(), "publisher"):
            await eventually(historian.subscribed.is_set, what="the historian's subscription")
            load(range(0, TICKS // 4))
            await eventually(lambda: metrics.get("historian_points_written") >= 100, what="points before outage")
            await asyncio.to_thread(influx.stop)
            # The load keeps arriving through an outage long enough for a few failed writes: a share before each.
            for part in range(4):
                load(range(TICKS // 4 + part * TICKS // 8, TICKS // 4 + (part + 1) * TICKS // 8))
                await a_failed_write()
            assert historian.buffer.pending() > 0, "the load kept arriving while InfluxDB was away"
            written_during_outage = metrics.get("historian_points_written")
            await asyncio.to_thread(influx.start)
            load(range(3 * TICKS // 4, TICKS))  # and on while InfluxDB comes back

            expected = _expected(sent)
            await eventually(
                lambda: len(_stored(influx.url, "facmon", topic_prefix)) >= len(expected),
                what=f"all {len(expected)} points in InfluxDB",
                timeout_s=20,
            )

    assert len(sent) == TICKS * DEVICES
    assert _stored(influx.url, "facmon", topic_prefix) == expected
    count = influxql(influx.url, "facmon", f"SELECT count(seq) FROM elevator WHERE site = '{topic_prefix}'")
    assert count[0]["values"][0][1] == len(sent)  # type: ignore[index]
    assert metrics.get("historian_write_errors", reason="unreachable") > 0
    assert metrics.get("historian_points_written") > written_during_outage
    assert metrics.get("historian_rejected") == 0
    # A few exact ones, values and all.
    first = influxql(
        influx.url, "facmon", f"SELECT seq, load_pct, door_open FROM elevator WHERE site = '{topic_prefix}' LIMIT 1"
    )
    epoch_ns = (start + timedelta(milliseconds=7) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert first[0]["values"][0] == [epoch_ns * 1000, 0, 0.0, True]  # type: ignore[index]


async def test_nothing_is_lost_while_the_historian_is_down(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    """What the first historian could not write stays in its buffer; what was sent while no historian ran waits
    in the broker's persistent session. The next historian, on the same state folder and client id, writes both."""
    state_dir = tmp_path / "historian"
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    sent = [reading(topic_prefix, f"e{n % 5}", ts=t0 + timedelta(seconds=n), seq=n) for n in range(200)]
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        publisher = _publisher(outbox, mosquitto)
        async with running(publisher.run(), "publisher"):
            no_influx = f"http://127.0.0.1:{free_port()}"
            first = _historian(mosquitto, no_influx, influx_db, topic_prefix, state_dir, Counters())
            async with running(first.run(), "historian"):
                await eventually(first.subscribed.is_set, what="the first historian's subscription")
                outbox.put_many(sent[:100])
                await eventually(lambda: first.buffer.pending() == 100, what="the first half in the buffer")

            outbox.put_many(sent[100:])
            await eventually(lambda: outbox.size() == 0, what="the second half at the broker")

            second = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, Counters())
            async with running(second.run(), "historian-again"):
                await eventually(
                    lambda: len(_stored(influxd.url, influx_db, topic_prefix)) == 200, what="both halves in InfluxDB"
                )
    assert _stored(influxd.url, influx_db, topic_prefix) == _expected(sent)


async def test_broker_restart_loses_nothing(
    restartable_mosquitto: Callable[[], Mosquitto], influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Gateway and historian both reconnect; the broker restores the historian's session from its persistence."""
    broker = restartable_mosquitto()
    metrics = Counters()
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    sent = [reading(topic_prefix, f"e{n % 5}", ts=t0 + timedelta(seconds=n), seq=n) for n in range(300)]
    historian = _historian(broker, influxd.url, influx_db, topic_prefix, tmp_path / "historian", metrics)
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        publisher = _publisher(outbox, broker)
        async with running(historian.run(), "historian"), running(publisher.run(), "publisher"):
            await eventually(historian.subscribed.is_set, what="the historian's subscription")
            outbox.put_many(sent[:100])
            await eventually(lambda: len(_stored(influxd.url, influx_db, topic_prefix)) == 100, what="first third")

            await asyncio.to_thread(broker.stop)
            await eventually(lambda: not historian.subscribed.is_set(), what="the historian noticing")
            outbox.put_many(sent[100:200])
            await asyncio.to_thread(broker.start)
            outbox.put_many(sent[200:])
            await eventually(
                lambda: len(_stored(influxd.url, influx_db, topic_prefix)) == 300, what="all of it", timeout_s=20
            )
    assert _stored(influxd.url, influx_db, topic_prefix) == _expected(sent)
    assert metrics.get("historian_mqtt_disconnects") >= 1
