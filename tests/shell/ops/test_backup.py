"""`facmon backup` while another process keeps opening work orders through the store: every backup is one
committed state of the database (each transaction's rows all there or all absent), and the writer is not held up
while the copy runs."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema
from facmon.shell.ops.database import head_revision
from facmon.shell.ops.sqlite_backup import backup
from tests.shell.ops.support import ROOT, facmon, seed_history, sqlite_rows, wait_until

# Closed work orders already in the database: about a year of an estate, 26 MB.
HISTORY = 20_000


class Inserter:
    """tests/shell/ops/inserter.py in its own process, its commits as (work order id, monotonic time)."""

    def __init__(self, url: str) -> None:
        self.commits: list[tuple[int, float]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.shell.ops.inserter", url], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                self.ready.set()
                continue
            work_order_id, at = line.split()
            self.commits.append((int(work_order_id), float(at)))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def _whole_transactions(path: Path, clocks_per_order: int) -> int:
    """Check that every transaction of the inserter is in the backup whole or not at all; the last work order id."""
    assert sqlite_rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(path, f"SELECT count(*) FROM work_orders WHERE id <= {HISTORY}") == [(HISTORY,)]
    ids = [row[0] for row in sqlite_rows(path, f"SELECT id FROM work_orders WHERE id > {HISTORY} ORDER BY id")]
    assert ids, "the backup holds work orders the inserter opened"
    last = ids[-1]
    assert isinstance(last, int)
    assert ids == list(range(HISTORY + 1, last + 1)), "the committed work orders are a gap-free prefix"
    # One transaction wrote: the processed event, the device's status, the work order, its clocks and its timeline.
    opened = sqlite_rows(
        path,
        f"SELECT work_order_id, json_extract(detail, '$.event_id') FROM work_order_events "
        f"WHERE work_order_id > {HISTORY} AND type = 'opened' ORDER BY work_order_id",
    )
    assert [row[0] for row in opened] == ids, "each work order has its 'opened' entry"
    processed = {row[0] for row in sqlite_rows(path, "SELECT id FROM processed_events")}
    assert processed == {row[1] for row in opened}, "each processed event has its work order, and only those"
    clocks = sqlite_rows(
        path,
        f"SELECT work_order_id, count(*) FROM work_order_clocks WHERE work_order_id > {HISTORY} "
        "GROUP BY work_order_id ORDER BY work_order_id",
    )
    assert clocks == [(i, clocks_per_order) for i in ids], "each work order has all its SLA clocks"
    devices = sqlite_rows(path, "SELECT count(*) FROM device_status WHERE device LIKE 'lift-%'")
    assert devices == [(len(ids),)], "each device touched has its status row"
    return last


def test_a_backup_under_load_is_one_committed_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    database = state / "facmon.db"
    engine = make_engine(f"sqlite:///{database}")
    create_schema(engine)
    seed_history(engine, HISTORY)
    engine.dispose()

    inserter = Inserter(f"sqlite:///{database}")
    try:
        wait_until(lambda: len(inserter.commits) >= 50, 60, "the inserter's first 50 work orders")
        # The command as an operator runs it, while the writer goes on.
        first = tmp_path / "first.db"
        commits_before = len(inserter.commits)
        ran = facmon("backup", str(first), env={"FACMON_STATE_DIR": str(state)})
        commits_after = len(inserter.commits)
        assert ran.returncode == 0, ran.stderr
        assert f"to {first}" in ran.stdout
        assert f"integrity ok, schema revision {head_revision()}" in ran.stdout
        # The copy step itself, timed against the writer's commits: some commit began and ended inside it.
        second = tmp_path / "second.db"
        for _attempt in range(5):
            t0 = time.monotonic()
            snapshot = backup(database, second, overwrite=True)
            t1 = time.monotonic()
            stamps = [at for _, at in inserter.commits]
            inside = sum(1 for before, at in itertools.pairwise(stamps) if before > t0 and at < t1)
            if inside:
                break
        wait_until(lambda: len(inserter.commits) >= commits_after + 20, 60, "20 more work orders after the backups")
    finally:
        code = inserter.stop()
    assert code == 0

    one = HISTORY + 1
    per_order = sqlite_rows(database, f"SELECT count(*) FROM work_order_clocks WHERE work_order_id = {one}")[0][0]
    assert isinstance(per_order, int)
    assert per_order >= 1
    last_first = _whole_transactions(first, per_order)
    assert HISTORY + commits_before <= last_first <= HISTORY + commits_after
    last_second = _whole_transactions(second, per_order)
    assert last_second > last_first
    assert snapshot.work_orders == last_second
    assert inside >= 1, "the writer committed while the copy ran"
    assert sqlite_rows(first, "PRAGMA journal_mode") == [("delete",)], "a backup is one file, no -wal beside it"
    total = len(inserter.commits)
    print(
        f"\nbackup of {snapshot.size_bytes / 1e6:.1f} MB ({HISTORY} + {last_second - HISTORY} work orders) copied and "
        f"checked in {(t1 - t0) * 1000:.0f} ms while {inside} work order(s) were opened; {total} opened in all, "
        f"{commits_after - commits_before} during the CLI's run, which said: {ran.stdout.splitlines()[0]}"
    )
