"""Backing up and restoring an SQLite work-order database, checked before and after.

A backup goes through SQLite's online backup API in one step: one read transaction, so the copy is a single
committed state of the database however many transactions the services commit meanwhile (WAL lets them go on).
Stepping through the pages in slices would restart the copy after every write by another connection.

A restore happens with the services stopped. It checks the backup first (integrity, a schema revision this facmon
knows), refuses a database that a process still has open, and refuses to discard work-order activity newer than the
backup unless forced. The database it replaces is kept beside it as `<name>.before-restore-<UTC time>`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from facmon.shell.ops.database import OpsError, is_known_revision
from facmon.workorders.tables import OPEN_WHERE_SQL

_HEADER = b"SQLite format 3\x00"
# Services hold the database for milliseconds at a time; wait that long for a lock, not forever.
_BUSY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    """What a work-order database file holds, after its integrity was checked."""

    path: Path
    size_bytes: int
    revision: str | None
    work_orders: int
    open_work_orders: int
    users: int
    # The latest work-order timeline entry or processed event: when the rules or a person last changed something.
    last_activity: datetime | None


@contextlib.contextmanager
def _open(path: Path, mode: str = "ro") -> Iterator[sqlite3.Connection]:
    """A connection that never creates the file (mode ro or rw), closed afterwards."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=_BUSY_TIMEOUT_S)
    try:
        yield connection
    finally:
        connection.close()


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _scalar(connection: sqlite3.Connection, sql: str) -> object:
    row = connection.execute(sql).fetchone()
    return None if row is None else row[0]


def _count(connection: sqlite3.Connection, sql: str) -> int:
    value = _scalar(connection, sql)
    return value if isinstance(value, int) else 0


def _last_activity(connection: sqlite3.Connection) -> datetime | None:
    # facmon stores naive UTC text in SQLite (facmon.kernel.db.UtcDateTime), which sorts as time does.
    value = _scalar(
        connection,
        "SELECT max(t) FROM (SELECT max(at) AS t FROM work_order_events "
        "UNION ALL SELECT max(processed_at) FROM processed_events)",
    )
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if isinstance(value, str) else None


def inspect(path: Path) -> Snapshot:
    """Check a work-order database file (SQLite integrity and foreign keys, facmon's tables) and count what is in
    it; OpsError naming the first problem."""
    if not path.is_file():
        raise OpsError(f"{path}: no such file")
    with open(path, "rb") as file:
        if file.read(len(_HEADER)) != _HEADER:
            raise OpsError(f"{path}: not an SQLite database")
    try:
        with _open(path) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise OpsError(f"{path} fails SQLite's integrity check: " + "; ".join(problems[:5]))
            broken = connection.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise OpsError(f"{path} has rows whose references are missing: {broken[:5]}")
            missing = {"alembic_version", "work_orders", "work_order_events", "processed_events", "users"}
            missing -= _tables(connection)
            if missing:
                raise OpsError(f"{path} is not a facmon work-order database (no table {', '.join(sorted(missing))})")
            revision = _scalar(connection, "SELECT version_num FROM alembic_version")
            return Snapshot(
                path=path,
                size_bytes=path.stat().st_size,
                revision=revision if isinstance(revision, str) else None,
                work_orders=_count(connection, "SELECT count(*) FROM work_orders"),
                open_work_orders=_count(connection, f"SELECT count(*) FROM work_orders WHERE {OPEN_WHERE_SQL}"),
                users=_count(connection, "SELECT count(*) FROM users"),
                last_activity=_last_activity(connection),
            )
    except sqlite3.DatabaseError as exc:
        raise OpsError(f"{path}: {exc}") from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, target: Path, *, mode: str) -> None:
    """`source` into a new file `target` through the online backup API, as a self-contained file on disk."""
    target.unlink(missing_ok=True)
    with _open(source, mode) as src:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, see the module's docstring
            # The copy inherits WAL mode; outside WAL it needs no -wal file beside it to be complete.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    _fsync(target)


def backup(source: Path, dest: Path, *, overwrite: bool = False) -> Snapshot:
    """Copy the live database `source` to `dest` while services use it; the checked copy's snapshot."""
    if not source.is_file():
        raise OpsError(f"no work-order database at {source}")
    if dest.resolve() == source.resolve():
        raise OpsError(f"{dest} is the database itself")
    if dest.exists() and not overwrite:
        raise OpsError(f"{dest} exists; give another name, or --force to overwrite it")
    if not dest.parent.is_dir():
        raise OpsError(f"{dest.parent}: no such folder")
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        # Read-write: reading a database in WAL mode takes locks in its -shm file.
        _copy(source, partial, mode="rw")
        snapshot = inspect(partial)
        os.replace(partial, dest)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise OpsError(f"backing up {source} to {dest}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    _fsync(dest.parent)
    return replace(snapshot, path=dest)


def in_use(path: Path) -> bool:
    """Whether a process has the database open: an exclusive lock is refused while any connection is open in WAL
    mode, idle ones included (they keep a shared lock on it)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.DatabaseError as exc:
        # Anything else (not a database, damaged) is for the checks that follow to name.
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        connection.close()


@dataclass(frozen=True)
class Restored:
    snapshot: Snapshot
    # Where the database that was replaced now is; None when there was none.
    kept: Path | None


def check_backup(path: Path) -> Snapshot:
    snapshot = inspect(path)
    if snapshot.revision is None:
        raise OpsError(f"{path} records no schema revision; it is not a backup facmon made")
    if not is_known_revision(snapshot.revision):
        raise OpsError(
            f"{path} is at schema revision {snapshot.revision}, which this facmon does not know: it was taken by a "
            "newer facmon; restore it with that version"
        )
    return snapshot


def _when(at: datetime | None) -> str:
    return "never" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _refuse_to_replace(target: Path, incoming: Snapshot) -> str | None:
    """Why replacing `target` with the backup would lose something; None when it would not."""
    try:
        current = inspect(target)
    except OpsError as exc:
        return f"the database there cannot be read as a work-order database ({exc})"
    if current.last_activity is None:
        return None
    if incoming.last_activity is None or current.last_activity > incoming.last_activity:
        return (
            f"the database there has newer activity ({current.work_orders} work order(s), last change "
            f"{_when(current.last_activity)}) than the backup ({incoming.work_orders}, last change "
            f"{_when(incoming.last_activity)}); restoring discards it"
        )
    return None


def _set_aside(target: Path, now: datetime) -> Path:
    """Move the database (with a -wal SQLite left, if any) to `<name>.before-restore-<time>`."""
    # Fold the write-ahead log into the file, so the kept copy is complete on its own; a database too broken for
    # that is kept as it is, its -wal beside it.
    with contextlib.suppress(sqlite3.DatabaseError), _open(target, "rw") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    kept = target.with_name(f"{target.name}.before-restore-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    if kept.exists():
        raise OpsError(f"{kept} exists already; try again in a second")
    os.rename(target, kept)
    for suffix in ("-wal", "-shm"):
        companion = target.with_name(target.name + suffix)
        if companion.exists():
            # Named after the kept file, SQLite pairs them again if it is ever opened.
            os.rename(companion, kept.with_name(kept.name + suffix))
    return kept


def restore(backup_file: Path, target: Path, *, now: datetime, force: bool = False) -> Restored:
    """Put `backup_file` in place of the database `target` (services stopped)."""
    incoming = check_backup(backup_file)
    if target.exists():
        if in_use(target):
            raise OpsError(
                f"{target} is open in a running process: stop the facmon services first (systemctl stop facmon.target,"
                " or docker compose stop), then restore"
            )
        reason = _refuse_to_replace(target, incoming)
        if reason is not None and not force:
            raise OpsError(f"not restoring over {target}: {reason}. --force restores anyway (the database is kept)")
    staging = target.with_name(f".{target.name}.restoring")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(backup_file, staging, mode="ro")
        check_backup(staging)
        kept = None
        if target.exists():
            old = target.stat()
            if os.geteuid() == 0:
                os.chown(staging, old.st_uid, old.st_gid)
            os.chmod(staging, old.st_mode & 0o777)
            kept = _set_aside(target, now)
        os.replace(staging, target)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise OpsError(f"restoring {backup_file} to {target}: {exc}") from exc
    finally:
        staging.unlink(missing_ok=True)
    _fsync(target.parent)
    return Restored(snapshot=replace(incoming, path=target), kept=kept)
