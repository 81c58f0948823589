"""The durable queue's contract, tested once on the queue itself and on each of its users (the gateway outbox and the
historian's line buffer): FIFO order, batches taken and acked, survival of a reopen and of a SIGKILL mid-write, the
capacity, a producer and a consumer at once, a clear error for a locked file, and a damaged file moved aside. What
only one user does (the outbox's events and metrics, the buffer's rejected lines) is tested beside that user."""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facmon.kernel.sqlite_queue import Capacity, Column, QueueFull, QueueLocked, SqliteQueue
from tests.kernel.queue_subjects import SUBJECTS, Opener, Subject

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=sorted(SUBJECTS))
def opener(request: pytest.FixtureRequest) -> Opener:
    opener: Opener = SUBJECTS[request.param]
    return opener


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "queue.sqlite"


@pytest.fixture
def subject(opener: Opener, path: Path) -> Iterator[Subject]:
    opened = opener(path, None, 5.0)
    yield opened
    opened.close()


def _ns(subject: Subject) -> list[int]:
    return [n for _, n in subject.peek(1_000_000)]


def test_fifo_order_and_ack_removes(subject: Subject) -> None:
    subject.put([0])
    subject.put([1, 2, 3])
    subject.put([4])
    peeked = subject.peek(10)
    ids = [i for i, _ in peeked]
    assert [n for _, n in peeked] == [0, 1, 2, 3, 4]
    assert ids == sorted(set(ids))
    assert subject.peek(2) == peeked[:2]
    assert subject.size() == 5

    subject.ack(ids[:2])
    assert subject.size() == 3
    assert _ns(subject) == [2, 3, 4]
    subject.ack([ids[0], 999_999])  # already gone or never there: ignored
    assert subject.size() == 3
    subject.put([])
    assert _ns(subject) == [2, 3, 4]


def test_batches_are_taken_oldest_first_and_stay_until_acked(subject: Subject) -> None:
    subject.put(range(100))
    taken: list[int] = []
    sizes: list[int] = []
    while batch := subject.peek(30):
        assert subject.peek(30) == batch, "a peek hands out the same items until they are acked"
        taken += [n for _, n in batch]
        subject.ack(i for i, _ in batch)
        sizes.append(subject.size())
    assert taken == list(range(100))
    assert sizes == [70, 40, 10, 0]


def test_contents_survive_reopening_and_ids_are_never_reused(opener: Opener, path: Path) -> None:
    subject = opener(path, None, 5.0)
    subject.put(range(5))
    first = subject.peek(1)[0][0]
    subject.ack([first])
    subject.close()

    subject = opener(path, None, 5.0)
    assert subject.size() == 4
    assert _ns(subject) == [1, 2, 3, 4]
    subject.ack(i for i, _ in subject.peek(10))
    assert subject.size() == 0
    subject.close()

    subject = opener(path, None, 5.0)
    # An ack arriving late for the old ids must not be able to hit a new item.
    subject.put([9])
    assert subject.peek(1)[0][0] > first + 4
    subject.close()


def test_a_process_killed_mid_write_loses_nothing_committed(opener: Opener, path: Path) -> None:
    name = next(key for key, value in SUBJECTS.items() if value is opener)
    command = [sys.executable, "-m", "tests.kernel.queue_subjects", name, str(path)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None
        try:
            committed = 0
            while committed < 300:
                line = writer.stdout.readline()
                assert line, f"the writer ended early (exit {writer.poll()})"
                committed = int(line)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
        committed = max([committed, *(int(line) for line in writer.stdout.read().split())])
    assert writer.returncode == -signal.SIGKILL

    subject = opener(path, None, 5.0)
    kept = _ns(subject)
    assert len(kept) >= committed, "every batch reported as committed is there"
    assert kept == list(range(len(kept))), "in order, without gaps or doubles"
    assert len(kept) % 10 == 0, "a batch is stored whole or not at all"
    assert subject.size() == len(kept)
    subject.put([len(kept)])
    assert _ns(subject)[-1] == len(kept)
    subject.close()


def test_capacity_drops_the_oldest_and_holds_after_reopening(opener: Opener, path: Path) -> None:
    subject = opener(path, 5, 5.0)
    for n in range(3):
        subject.put([n])
    subject.put([3, 4, 5, 6, 7])
    assert subject.size() == 5
    assert _ns(subject) == [3, 4, 5, 6, 7]
    subject.close()

    subject = opener(path, 5, 5.0)
    subject.put([8])
    assert subject.size() == 5
    assert _ns(subject) == [4, 5, 6, 7, 8]
    subject.close()


def test_a_producer_and_a_consumer_on_two_threads(subject: Subject) -> None:
    total = 2000
    received: list[int] = []
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            n = 0
            while n < total:
                size = 1 + n % 7
                subject.put(range(n, min(n + size, total)))
                n += size
        except BaseException as exc:
            failures.append(exc)

    def consume() -> None:
        try:
            while len(received) < total and not failures:
                batch = subject.peek(50)
                received.extend(n for _, n in batch)
                subject.ack(i for i, _ in batch)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert received == list(range(total))
    assert subject.size() == 0


def test_a_locked_file_gives_a_clear_error(opener: Opener, path: Path) -> None:
    subject = opener(path, None, 0.1)
    subject.put([0])
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(QueueLocked, match=f"{path}: locked by another connection"):
            subject.put([1])
        with pytest.raises(QueueLocked):
            subject.ack(i for i, _ in subject.peek(1))
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert subject.size() == 1
    subject.put([1])
    assert _ns(subject) == [0, 1]
    subject.close()


def _garbage_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096, "enough pages to damage the middle"
    data[2 * 4096 : 6 * 4096] = random.Random(7).randbytes(4 * 4096)
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"these are not the pages of a SQLite database\n" * 200)


@pytest.mark.parametrize("damage", [_garbage_pages, _truncated, _not_a_database])
def test_a_damaged_file_is_moved_aside_and_a_fresh_queue_started(
    opener: Opener, path: Path, damage: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    subject = opener(path, None, 5.0)
    subject.put(range(3000))
    subject.close()
    damage(path)
    damaged = path.read_bytes()
    subject = opener(path, None, 5.0)  # no exception: a fresh queue
    try:
        assert subject.size() == 0
        subject.put([1, 2])
        assert _ns(subject) == [1, 2]
    finally:
        subject.close()
    [aside] = path.parent.glob(f"{path.name}.damaged-*")
    assert re.fullmatch(rf"{re.escape(path.name)}\.damaged-\d{{8}}T\d{{12}}Z", aside.name)
    assert aside.read_bytes() == damaged  # kept as it was, for whoever wants to salvage it
    [line] = [line for line in capsys.readouterr().out.splitlines() if "damaged" in line]
    assert str(path) in line
    assert str(aside) in line


def test_a_full_disk_holds_items_in_memory_in_order_until_acks_free_room(opener: Opener, path: Path) -> None:
    subject = opener(path, None, 5.0)
    try:
        subject.put(range(500))
        # SQLITE_FULL as a full disk gives it: the file may not grow past the pages it has.
        subject.limit_size(path.stat().st_size)
        n = 500
        while subject.memory_size() == 0:  # the next pages' worth of puts do not fit
            subject.put(range(n, n + 50))
            n += 50
            assert n < 20_000, "the file never filled"
        on_disk = subject.size()
        subject.put(range(n, n + 50))  # behind what waits in memory, never before it
        n += 50
        assert subject.size() == on_disk
        assert subject.memory_size() > 50
        assert _ns(subject) == list(range(on_disk))
        # Acks delete rows, their pages are free, and what waited in memory goes to the file at once, in order.
        subject.ack(i for i, _ in subject.peek(400))
        assert subject.memory_size() == 0
        assert _ns(subject) == list(range(400, n))
        subject.put([n])  # and the file takes new items again
        assert _ns(subject)[-1] == n
    finally:
        subject.close()


def test_the_memory_bound_drops_the_oldest_held_items(path: Path) -> None:
    columns = (Column("n", "INTEGER NOT NULL"),)
    queue = SqliteQueue(path, table="items", columns=columns, item=lambda i, row: (i, *row), memory_max_items=5)
    with queue:
        queue.put_many([(n,) for n in range(200)])
        queue.limit_size(path.stat().st_size)
        n, dropped = 200, 0
        while queue.memory_size() == 0:
            dropped += queue.put_many([(n,)]).memory_dropped
            n += 1
        put = queue.put_many([(m,) for m in range(n, n + 7)])
        assert queue.full is not None
        assert "full" in queue.full
        assert (put.in_memory, put.memory_dropped) == (5, 3)
    # Without a memory, a full disk is the caller's to handle.
    with SqliteQueue(path, table="items", columns=columns, item=lambda i, row: row) as plain:
        plain.limit_size(path.stat().st_size)
        with pytest.raises(QueueFull, match="full"):
            plain.put_many([(n,) for n in range(10_000)])


# The queue's own parts that its users reach through their own API.


def _queue(path: Path, columns: tuple[Column, ...], capacity: Capacity | None = None) -> SqliteQueue[tuple[Any, ...]]:
    return SqliteQueue(path, table="items", columns=columns, item=lambda i, row: (i, *row), capacity=capacity)


def test_peek_after_an_id_skips_what_is_in_flight(path: Path) -> None:
    with _queue(path, (Column("n", "INTEGER NOT NULL"),)) as queue:
        ids = queue.put_many([(n,) for n in range(5)]).ids
        assert [row[1] for row in queue.peek(2, after=ids[1])] == [2, 3]


def test_work_done_with_an_ack_commits_or_rolls_back_with_it(path: Path) -> None:
    with _queue(path, (Column("n", "INTEGER NOT NULL"),)) as queue:
        queue.put_many([(1,), (2,)])
        [(first, _), (second, _)] = queue.peek(2)

        def fail(db: sqlite3.Connection) -> None:
            raise RuntimeError("bookkeeping failed")

        with pytest.raises(RuntimeError):
            queue.ack([first], also=fail)
        assert queue.size() == 2
        assert [row[0] for row in queue.peek(2)] == [first, second]
        assert queue.ack([first], also=lambda db: db.execute("SELECT 1")) == 1
        assert queue.size() == 1


def test_kept_items_are_never_dropped(path: Path) -> None:
    columns = (Column("n", "INTEGER NOT NULL"), Column("keep", "INTEGER NOT NULL"))
    with _queue(path, columns, Capacity(2, keep="keep")) as queue:
        put = queue.put_many([(1, 1), (2, 0), (3, 1), (4, 1)])
        assert put.dropped == 1
        assert [row[1] for row in queue.peek(10)] == [1, 3, 4]


def test_a_column_declared_later_is_added_to_an_older_file(path: Path) -> None:
    with _queue(path, (Column("n", "INTEGER NOT NULL"),)) as queue:
        queue.put_many([(1,)])
    with _queue(path, (Column("n", "INTEGER NOT NULL"), Column("note", "TEXT NOT NULL DEFAULT ''"))) as queue:
        queue.put_many([(2, "new")])
        assert [row[1:] for row in queue.peek(10)] == [(1, ""), (2, "new")]


def test_names_and_capacity_are_checked(path: Path) -> None:
    with pytest.raises(ValueError, match="identifiers"):
        _queue(path, (Column("n; DROP TABLE x", "INTEGER"),))
    with pytest.raises(ValueError, match="keep column"):
        _queue(path, (Column("n", "INTEGER"),), Capacity(3, keep="other"))
    with pytest.raises(ValueError, match="at least 1"):
        Capacity(0)


def test_the_ids_a_put_returns_are_the_ids_its_rows_got(path: Path) -> None:
    """Also after the newest rows were acked (an AUTOINCREMENT id is never given again) and after drops."""
    capacity = Capacity(8)
    with _queue(path, (Column("n", "INTEGER NOT NULL"),), capacity) as queue:
        first = queue.put_many([(n,) for n in range(5)]).ids
        queue.ack(first[2:])
        second = queue.put_many([(n,) for n in range(5, 12)])
        assert second.ids == list(range(first[-1] + 1, first[-1] + 8))
        assert second.dropped == 1
        assert {row[0]: row[1] for row in queue.peek(100)} == {
            first[1]: 1,
            **{id_: n for id_, n in zip(second.ids, range(5, 12), strict=True)},
        }
