"""Checkpoints of a SQLite file's write-ahead log in a thread of their own, not in the commit that fills the log.

SQLite copies the WAL back into the database file (a checkpoint) in whichever commit takes the log past
`wal_autocheckpoint` pages, and a checkpoint syncs the file to disk: tens to hundreds of milliseconds on a busy disk,
spent in the commit of an event loop's thread. In the gateway that commit is an outbox put or ack, and every poll due
meanwhile starts that much late; these stalls were the gateway's worst poll lateness at 1,000 devices a second.

`WalCheckpointer` turns the connection's automatic checkpoints off and runs a PASSIVE checkpoint on a connection of
its own every `interval_s`, from a thread: a passive checkpoint waits for no reader or writer, and SQLite's module lets
other threads run while it syncs, so commits go on meanwhile and the log starts again from its beginning after a
checkpoint that copied all of it. What is durable does not change: with `synchronous=NORMAL` a commit is safe from a
crash of the process once it is in the log, checkpointed or not (a power cut may lose the last commits either way);
if the thread stops checkpointing, the log only grows until the next checkpoint (SQLite's own at close included).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CHECKPOINT_INTERVAL_S = 1.0


class WalCheckpointer:
    def __init__(
        self, path: Path, *, turn_off_auto: Callable[[str], object], interval_s: float = CHECKPOINT_INTERVAL_S
    ) -> None:
        """`turn_off_auto(sql)` runs a statement on the writing connection (the queue's), to stop its own checkpoints.

        Call `start` to begin and `stop` before closing the writing connection."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0
        self._turn_off_auto = turn_off_auto
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._turn_off_auto("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name=f"checkpoint-{self.path.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the checkpoint it may be in) and close its connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=1.0, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval_s):
                self.checkpoint(db)
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # A full disk or a file moved aside: the log grows until a checkpoint succeeds; the writer says the rest.
            log.warning("WAL checkpoint failed", path=str(self.path), error=str(exc))
