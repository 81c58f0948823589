"""`facmon backup FILE` and `facmon restore FILE`: the work-order database (accounts and audit log included).

SQLite only: a PostgreSQL database is backed up with its own tools, which do it better than a copy could.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from facmon.kernel.clock import SystemClock
from facmon.shell.ops.database import Database, OpsError, refuse_foreign_owner, upgrade
from facmon.shell.ops.options import StateOption, database, fail
from facmon.shell.ops.sqlite_backup import Snapshot, backup, restore

app = typer.Typer()

FileArgument = Annotated[Path, typer.Argument(help="the backup file", dir_okay=False)]


def _sqlite_file(db: Database) -> Path:
    """The database's file, or exit 2 saying which tools do it for other databases."""
    path = db.sqlite_file
    if path is not None:
        return path
    if db.backend == "postgresql":
        fail(
            f"the work-order database is PostgreSQL ({db.display}); facmon backup and restore copy SQLite files. "
            "Use PostgreSQL's own tools: `pg_dump --format=custom --file=facmon.dump DBNAME` while the services run, "
            "`pg_restore --clean --if-exists --dbname=DBNAME facmon.dump` with them stopped, then `facmon db upgrade`"
        )
    fail(f"facmon backup and restore copy SQLite files; {db.display} is not one: use its own tools")


def _counts(snapshot: Snapshot) -> str:
    return (
        f"schema revision {snapshot.revision}, {snapshot.work_orders} work order(s) ({snapshot.open_work_orders} "
        f"open), {snapshot.users} user(s)"
    )


@app.command("backup")
def backup_command(
    file: FileArgument,
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE if it exists")] = False,
    state_dir: StateOption = None,
) -> None:
    """Copy the work-order database to FILE while the services run (SQLite's online backup API: one consistent
    state), then check the copy: integrity, schema revision, counts."""
    source = _sqlite_file(database(state_dir))
    clock = SystemClock()
    started = clock.monotonic()
    try:
        refuse_foreign_owner(source)
        snapshot = backup(source, file, overwrite=force)
    except OpsError as exc:
        fail(str(exc))
    elapsed = clock.monotonic() - started
    typer.echo(f"backed up {source} to {file}: {snapshot.size_bytes} bytes in {elapsed:.2f} s")
    typer.echo(f"checked: integrity ok, {_counts(snapshot)}")


@app.command("restore")
def restore_command(
    file: FileArgument,
    force: Annotated[
        bool, typer.Option("--force", help="restore even over a database with newer activity or one that is damaged")
    ] = False,
    state_dir: StateOption = None,
) -> None:
    """Put a backup in place of the work-order database, with the services stopped. The backup is checked first;
    the database it replaces is kept as <name>.before-restore-<time>; the restored one is upgraded to the newest
    schema."""
    db = database(state_dir)
    target = _sqlite_file(db)
    try:
        refuse_foreign_owner(target)
        restored = restore(file, target, now=SystemClock().now(), force=force)
    except OpsError as exc:
        fail(str(exc))
    typer.echo(f"checked {file}: integrity ok, {_counts(restored.snapshot)}")
    if restored.kept is not None:
        typer.echo(f"kept the database it replaces as {restored.kept}")
    try:
        before, after = upgrade(db)
    except (OpsError, SQLAlchemyError) as exc:
        fail(f"restored to {target}, but upgrading it failed: {exc}")
    typer.echo(f"restored to {target}; schema revision {before} -> {after}")
