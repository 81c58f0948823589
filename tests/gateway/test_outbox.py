from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facmon.kernel.clock import FakeClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Reading, decode_message
from facmon.kernel.topics import topic_for
from gateway.outbox import Outbox
from tests.gateway.conftest import reading

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _event(site: str, n: int) -> Event:
    ref = DeviceRef(site=site, building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    return Event(ref=ref, ts=T0 + timedelta(seconds=n), type=EventType.FAULT_RAISED, code=str(n))


def _reading(n: int) -> Reading:
    return reading("s1", ts=T0 + timedelta(seconds=n), seq=n)


def _contents(outbox: Outbox) -> list[Reading | Event]:
    return [decode_message(m.payload) for m in outbox.peek(1000)]


def test_messages_keep_their_topic_qos_and_payload(tmp_path: Path) -> None:
    # Order, batches, acks and reopening are the durable queue's contract: tests/kernel/test_sqlite_queue.py.
    messages: list[Reading | Event] = [_reading(1), _event("s1", 2), _reading(3), _reading(4)]
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        ids = [outbox.put(m) for m in messages]
        peeked = outbox.peek(10)
        assert [m.id for m in peeked] == ids
        assert [m.topic for m in peeked] == [topic_for(m) for m in messages]
        assert [m.qos for m in peeked] == [1, 1, 1, 1]
        assert _contents(outbox) == messages
        # The publisher asks for what comes after the messages it already has in flight.
        assert [m.id for m in outbox.peek(10, after=ids[1])] == ids[2:]


def test_full_outbox_drops_oldest_readings_and_counts_them(tmp_path: Path) -> None:
    metrics = Counters()
    with Outbox(tmp_path / "outbox.sqlite", max_size=5, metrics=metrics) as outbox:
        e1, e2 = _event("s1", 100), _event("s1", 101)
        for message in [e1, _reading(1), _reading(2), e2, _reading(3), _reading(4), _reading(5), _reading(6)]:
            outbox.put(message)
        assert outbox.size() == 5
        assert _contents(outbox) == [e1, e2, _reading(4), _reading(5), _reading(6)]
        assert metrics.get("outbox_dropped", kind="reading") == 3
        assert metrics.get("outbox_put", kind="reading") == 6
        assert metrics.get("outbox_put", kind="event") == 2


def test_events_are_never_dropped_even_past_the_bound(tmp_path: Path) -> None:
    metrics = Counters()
    with Outbox(tmp_path / "outbox.sqlite", max_size=3, metrics=metrics) as outbox:
        events = [_event("s1", n) for n in range(5)]
        outbox.put_many(events)
        assert outbox.size() == 5
        assert metrics.get("outbox_dropped") == 0
        # With only events inside, a new reading is itself the oldest reading.
        outbox.put(_reading(1))
        assert _contents(outbox) == events
        assert metrics.get("outbox_dropped", kind="reading") == 1


def test_listeners_hear_every_put(tmp_path: Path) -> None:
    heard: list[int] = []
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        outbox.on_put(lambda: heard.append(outbox.size()))
        outbox.put(_reading(1))
        outbox.put_many([_reading(2), _reading(3)])
    assert heard == [1, 3]


def test_urgent_listeners_hear_puts_that_hold_an_event_or_a_dead_letter(tmp_path: Path) -> None:
    urgent: list[int] = []
    with Outbox(tmp_path / "outbox.sqlite", metrics=Counters()) as outbox:
        outbox.on_urgent_put(lambda: urgent.append(outbox.size()))
        outbox.put(_reading(1))
        outbox.put_many([_reading(2), _event("s1", 3)])
        outbox.put_many([_reading(4), _reading(5)])
        outbox.put(_event("s1", 6))
    assert urgent == [3, 6]


def test_comm_events_are_retained_and_nothing_else(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite")
    ref = DeviceRef(site="s1", building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    box.put_many(
        [
            reading("s1", floor=3),
            Event(ref=ref, ts=now, type=EventType.COMM_RESTORED, message="answering"),
            Event(ref=ref, ts=now, type=EventType.FAULT_RAISED, code="2"),
            Event(ref=ref, ts=now, type=EventType.COMM_LOST, message="silent"),
        ]
    )
    assert [m.retain for m in box.peek(10)] == [False, True, False, True]


def test_an_outbox_of_an_earlier_version_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        " qos INTEGER NOT NULL, is_event INTEGER NOT NULL);"
        "INSERT INTO outbox (topic, payload, qos, is_event) VALUES ('facmon/v1/s1/elevator/e1/state', x'7b7d', 1, 0);"
    )
    old.commit()
    old.close()
    box = Outbox(path)
    [kept] = box.peek(10)
    assert (kept.topic, kept.payload, kept.retain) == ("facmon/v1/s1/elevator/e1/state", b"{}", False)


def test_acknowledged_messages_are_kept_for_the_replay_window_and_no_longer(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Outbox(tmp_path / "outbox.sqlite", replay_window_s=60, clock=clock) as outbox:
        outbox.put_many([_reading(n) for n in range(3)])
        outbox.ack([m.id for m in outbox.peek(2)])
        clock.advance(30)
        outbox.ack([m.id for m in outbox.peek(1)])
        assert outbox.size() == 0
        assert [decode_message(m.payload) for m in outbox.recently_published()] == [_reading(n) for n in range(3)]
        clock.advance(31)  # the first two are past the window now
        assert [decode_message(m.payload) for m in outbox.recently_published()] == [_reading(2)]
    with Outbox(tmp_path / "outbox.sqlite", replay_window_s=60, clock=clock) as reopened:
        assert [decode_message(m.payload) for m in reopened.recently_published()] == [_reading(2)]
    with Outbox(tmp_path / "off.sqlite", replay_window_s=0, clock=clock) as off:
        off.put(_reading(1))
        off.ack([m.id for m in off.peek(1)])
        assert off.recently_published() == []
    with pytest.raises(ValueError, match="replay_window_s"):
        Outbox(tmp_path / "x.sqlite", replay_window_s=3601)


def test_the_replay_window_keeps_what_was_acknowledged_in_the_order_acknowledged(tmp_path: Path) -> None:
    # Acks come as runs of consecutive ids (a batch's PUBACK), with gaps and out of order (the PUBACKs of a loop
    # turn); the copies are exactly the acknowledged messages, in that order, with nothing of the gaps.
    with Outbox(tmp_path / "outbox.sqlite", replay_window_s=60, clock=FakeClock(T0)) as outbox:
        outbox.put_many([_reading(n) for n in range(10)])
        ids = [m.id for m in outbox.peek(10)]
        acked = [ids[4], ids[5], ids[6], ids[0], ids[1], ids[8]]
        outbox.ack(acked)
        assert [m.id for m in outbox.peek(10)] == [ids[2], ids[3], ids[7], ids[9]]
        kept = [decode_message(m.payload) for m in outbox.recently_published()]
    assert kept == [_reading(n) for n in (4, 5, 6, 0, 1, 8)]


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def test_checkpoints_in_a_thread_leave_puts_and_acks_without_them(tmp_path: Path) -> None:
    # SQLite checkpoints (and syncs) in the commit that takes the log past 1,000 pages; with the thread's checkpoints
    # started, puts and acks never do, and the thread copies the log back into the file.
    path = tmp_path / "outbox.sqlite"
    big = [reading("s1", ts=T0 + timedelta(seconds=n), seq=n, blob="x" * 3000) for n in range(3000)]
    with Outbox(path, metrics=Counters(), replay_window_s=0) as outbox:
        outbox.start_checkpoints(interval_s=3600)  # the thread waits an hour: only commits could checkpoint
        for chunk in range(0, 3000, 100):
            outbox.put_many(big[chunk : chunk + 100])
        assert _wal_pages(path) > 2000  # no commit checkpointed: the log holds every page written
        checkpointer = outbox._checkpointer
        assert checkpointer is not None
        with sqlite3.connect(path) as other:
            checkpointer.checkpoint(other)
        busy, log_frames, copied = sqlite3.connect(path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, copied) == (0, log_frames)  # everything in the log is in the file
        assert checkpointer.checkpoints == 1
        assert [m.id for m in outbox.peek(5000)] == list(range(1, 3001))
        outbox.stop_checkpoints()
        # SQLite's own checkpoints are back: the next commits that fill the log copy it themselves.
        outbox.ack(range(1, 3001))
        assert outbox.size() == 0


def test_the_checkpoint_thread_runs_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, metrics=Counters()) as outbox:
        outbox.start_checkpoints(interval_s=0.01)
        checkpointer = outbox._checkpointer
        assert checkpointer is not None
        outbox.put(_reading(1))
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.checkpoints >= 3
    # Closing the outbox stopped the thread first.
    assert not any(t.name == "checkpoint-outbox.sqlite" for t in threading.enumerate())
