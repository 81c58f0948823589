"""What the operations commands share: the database the settings name, and how they fail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from facmon.shell.ops.database import Database
from facmon.shell.settings import Settings

StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]


def database(state_dir: Path | None) -> Database:
    """The work-order database of the settings (FACMON_DB_URL, else SQLite in the state folder)."""
    settings = Settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    return Database(settings.database_url())


def fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)
