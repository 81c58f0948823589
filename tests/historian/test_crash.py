"""The historian stopped at the worst moment, right after it resubscribed to a backlog and while the broker's burst
is arriving, loses nothing: a message is acknowledged only once its point (or its dead letter) is on disk."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from facmon.historian.buffer import LineBuffer
from facmon.historian.dead_letters import REASON_MAX_CHARS, dead_letter_record
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.topics import DEAD_LETTER
from gateway.outbox import Outbox
from tests.gateway.conftest import Subscriber, eventually, reading, running
from tests.historian.test_influx_outage import _expected, _historian, _publisher, _stored

T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Readings travel in batches of up to 1,000, and a burst of them is stored at once: enough of them that the
# historian is stopped in the middle.
BACKLOG = 30_000


async def test_stopped_right_after_resubscribing_to_a_backlog_three_times_it_loses_nothing(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "historian"
    sent = [reading(topic_prefix, f"e{n % 10}", ts=T0 + timedelta(milliseconds=n), seq=n) for n in range(BACKLOG)]

    first = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, Counters())
    async with running(first.run(), "historian"):
        await eventually(first.subscribed.is_set, what="the persistent session")
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        async with running(_publisher(outbox, mosquitto).run(), "publisher"):
            outbox.put_many(sent)
            await eventually(lambda: outbox.size() == 0, what="the backlog at the broker", timeout_s=30)
    received = []
    for attempt in range(3):
        metrics = Counters()
        again = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, metrics)
        async with running(again.run(), f"historian-{attempt}"):
            # Stopped (cancelled, nothing flushed on the way out) as soon as the burst has begun.
            await eventually(lambda m=metrics: m.get("historian_readings_received") >= 50, what="the burst beginning")
        received.append(metrics.get("historian_readings_received"))
    assert all(n < BACKLOG for n in received), "each was stopped in the middle of the backlog"
    last = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, Counters())
    async with running(last.run(), "historian-last"):
        await eventually(
            lambda: len(_stored(influxd.url, influx_db, topic_prefix)) >= BACKLOG,
            what=f"all {BACKLOG} points in InfluxDB",
            timeout_s=60,
        )
    assert _stored(influxd.url, influx_db, topic_prefix) == _expected(sent)


def test_a_dead_letter_can_always_be_stored() -> None:
    at = T0
    not_utf8 = dead_letter_record("facmon/v1/s/elevator/e1/state", b"\xff\xfe\x00", "not_json", "not JSON", at)
    assert json.loads(not_utf8)["payload_base64"] == "//4A"
    # Text with a lone surrogate: from a JSON escape ("\ud800") a reason may quote, or a str payload.
    surrogate = "\ud800"
    record = dead_letter_record(
        "facmon/v1/s/elevator/e1/state", surrogate.encode("utf-8", "surrogatepass"), "x", surrogate * 5000, at
    )
    decoded = json.loads(record.decode("utf-8"))  # strict UTF-8: no surrogate got through
    assert "payload" not in decoded
    assert decoded["payload_base64"]
    assert len(decoded["reason"]) <= len("\\ud800") * REASON_MAX_CHARS + 3
    assert decoded["reason"].startswith("\\ud800")


async def test_dead_letters_wait_in_the_buffer_file_until_the_broker_has_them(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "historian"
    state_dir.mkdir()
    topic = f"facmon/v1/{topic_prefix}/elevator/e1/state"
    records = [dead_letter_record(topic, f"bad {n}".encode(), "not_json", "not JSON", T0) for n in range(3)]
    # Kept by a historian that died before it could publish them.
    with LineBuffer(state_dir / "buffer.sqlite") as buffer:
        buffer.keep_dead_letters(records)
    dead = Subscriber(mosquitto.port, DEAD_LETTER, f"dead-{uuid.uuid4().hex[:8]}")
    metrics = Counters()
    historian = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, metrics)
    async with running(dead.run(), "dead-letters"):
        await eventually(dead.subscribed.is_set, what="the dead-letter subscription")
        async with running(historian.run(), "historian"):
            await eventually(lambda: metrics.get("historian_dead_lettered") == 3, what="three published")
            assert historian.buffer.dead_letters_waiting() == 0
        await eventually(
            lambda: [p for t, p in dead.received if json.loads(p)["topic"] == topic] == records,
            what="the three dead letters, in order",
        )


async def test_a_historian_whose_buffer_file_is_damaged_sets_it_aside_and_runs(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "historian"
    state_dir.mkdir()
    (state_dir / "buffer.sqlite").write_bytes(b"\x00garbage, not pages" * 1000)
    historian = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, Counters())
    [aside] = state_dir.glob("buffer.sqlite.damaged-*")
    sent = [reading(topic_prefix, "e1", ts=T0 + timedelta(seconds=n), seq=n) for n in range(20)]
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        async with running(historian.run(), "historian"), running(_publisher(outbox, mosquitto).run(), "publisher"):
            await eventually(historian.subscribed.is_set, what="the historian's subscription")
            outbox.put_many(sent)
            await eventually(lambda: len(_stored(influxd.url, influx_db, topic_prefix)) == 20, what="new points")
    assert aside.read_bytes().startswith(b"\x00garbage")


async def test_a_full_disk_holds_the_acknowledgements_so_a_crash_meanwhile_loses_nothing(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "historian"
    sent = [reading(topic_prefix, f"e{n % 5}", ts=T0 + timedelta(seconds=n), seq=n) for n in range(1000)]
    no_influx = f"http://127.0.0.1:{free_port()}"
    metrics = Counters()
    first = _historian(mosquitto, no_influx, influx_db, topic_prefix, state_dir, metrics)
    # The buffer's file may not grow: SQLite answers "database or disk is full", as on a full disk.
    first.buffer.limit_size(first.buffer.path.stat().st_size)
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        async with running(_publisher(outbox, mosquitto).run(), "publisher"):
            async with running(first.run(), "historian"):
                await eventually(first.subscribed.is_set, what="the historian's subscription")
                outbox.put_many(sent)
                await eventually(lambda: first.buffer.memory_size() > 0, what="lines held in memory")
                check = next(c for c in first.health().checks if c.name == "buffer")
                assert not check.ok
                assert "disk full" in check.detail
                assert metrics.get("historian_received") < len(sent), "the broker waits for the held acks"
            # Stopped while the disk was full: what was in memory was never acknowledged.
            again = _historian(mosquitto, influxd.url, influx_db, topic_prefix, state_dir, Counters())
            async with running(again.run(), "historian-again"):
                await eventually(
                    lambda: len(_stored(influxd.url, influx_db, topic_prefix)) == len(sent),
                    what="every point in InfluxDB",
                    timeout_s=30,
                )
    assert _stored(influxd.url, influx_db, topic_prefix) == _expected(sent)
