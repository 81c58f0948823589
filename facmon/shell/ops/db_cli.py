"""`facmon db upgrade` and `facmon db current`: the work-order database's schema, for installs and upgrades.

Every service that uses the database can run `facmon db upgrade` before it starts (systemd's ExecStartPre, the
compose file's one-shot `migrate` service); it is a no-op at the newest revision.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from facmon.shell.ops.database import OpsError, head_revision, is_known_revision, read_revision, upgrade
from facmon.shell.ops.options import StateOption, database, fail

app = typer.Typer(help="The work-order database's schema (FACMON_DB_URL).", no_args_is_help=True)


def _name(revision: str | None) -> str:
    if revision is None:
        return "none (empty database)"
    return f"{revision} (newest)" if revision == head_revision() else revision


@app.command("upgrade")
def upgrade_command(state_dir: StateOption = None) -> None:
    """Bring the work-order database to the newest schema (Alembic upgrade head), printing the revision before and
    after. Creates an SQLite database that does not exist yet."""
    db = database(state_dir)
    typer.echo(f"database: {db.display}")
    try:
        before, after = upgrade(db)
    except OpsError as exc:
        fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot upgrade {db.display}: {exc}")
    typer.echo(f"before: {_name(before)}")
    typer.echo(f"after: {_name(after)}")


@app.command("current")
def current_command(
    state_dir: StateOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="exit 1 unless the database is at the newest revision")
    ] = False,
) -> None:
    """Print the schema revision of the work-order database and the newest this facmon knows."""
    db = database(state_dir)
    typer.echo(f"database: {db.display}")
    try:
        revision = read_revision(db)
    except SQLAlchemyError as exc:
        fail(f"cannot read {db.display}: {exc}")
    head = head_revision()
    typer.echo(f"revision: {_name(revision)}")
    if revision is not None and not is_known_revision(revision):
        typer.echo(f"newest this facmon knows: {head}; the database was upgraded by a newer facmon")
        if check:
            raise typer.Exit(1)
    elif revision != head:
        typer.echo(f"newest: {head} (`facmon db upgrade` brings it there)")
        if check:
            raise typer.Exit(1)
