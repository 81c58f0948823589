"""Which work-order database the settings name, which schema revision it is at, and upgrading it to the newest.

Written for SQLite and PostgreSQL alike: revisions are read through Alembic's own migration context, and upgrades
are serialised across processes (systemd starts rules, notifier and API together, each upgrading first).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import MIGRATIONS, create_schema

# Any fixed number: the key of the PostgreSQL advisory lock that one `facmon db upgrade` holds at a time.
_PG_UPGRADE_LOCK = 0x6661636D6F6E


class OpsError(Exception):
    """Something an operator has to fix; the message says what, and how."""


@dataclass(frozen=True)
class Database:
    url: str

    @property
    def backend(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def display(self) -> str:
        """The URL without its password, for output."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def sqlite_file(self) -> Path | None:
        """The file of an SQLite database; None for other backends and in-memory ones."""
        if self.backend != "sqlite":
            return None
        name = make_url(self.url).database
        return Path(name).resolve() if name and name != ":memory:" else None


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError("the migrations have no head revision")
    return head


def is_known_revision(revision: str) -> bool:
    """Whether this facmon's migrations contain `revision` (a backup from a newer facmon holds one they do not)."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def refuse_foreign_owner(path: Path) -> None:
    """As root, refuse to touch an SQLite database that belongs to another user (the services' own).

    SQLite creates its -wal and -shm files beside the database as whoever opens it; files left behind by root would
    lock the services out of their own database.
    """
    if os.geteuid() != 0:
        return
    probe = path if path.exists() else path.parent
    if not probe.exists():
        return
    owner = probe.stat().st_uid
    if owner == 0:
        return
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    raise OpsError(
        f"{probe} belongs to user {name!r}: run this as that user (e.g. `sudo -u {name} facmon ...`), or files "
        "SQLite creates beside the database would belong to root and lock the services out"
    )


@contextlib.contextmanager
def _one_upgrade_at_a_time(engine: Engine, database: Database) -> Iterator[None]:
    """Hold a lock that every `facmon db upgrade` on this database takes: two Alembic runs racing on an empty
    database would both try to create the same tables."""
    path = database.sqlite_file
    if path is not None:
        with open(path.with_name(f"{path.name}.upgrade-lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_UPGRADE_LOCK})
                connection.commit()
    else:
        yield


def read_revision(database: Database) -> str | None:
    """The revision without creating anything: a missing SQLite file is an empty database, not a new one."""
    path = database.sqlite_file
    if path is not None and not path.exists():
        return None
    engine = make_engine(database.url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def upgrade(database: Database) -> tuple[str | None, str | None]:
    """Bring the database to the newest schema; (revision before, revision after)."""
    path = database.sqlite_file
    if path is not None:
        refuse_foreign_owner(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database.url)
    try:
        with _one_upgrade_at_a_time(engine, database):
            before = current_revision(engine)
            if before is not None and not is_known_revision(before):
                raise OpsError(
                    f"the database is at schema revision {before}, which this facmon does not know: it was upgraded "
                    f"by a newer facmon (this one's newest is {head_revision()}); run that version"
                )
            create_schema(engine)
            return before, current_revision(engine)
    finally:
        engine.dispose()
