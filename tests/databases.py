"""The work-order database of a test, on SQLite or on the real PostgreSQL server of the test worker.

Every test that asks for `engine`, `db_url` or `databases` gets a database of its own at the newest schema: a SQLite
file in its temporary folder, or a PostgreSQL database copied from the migrated template (a tenth of a second) and
dropped at the end. Which one is `db_backend`: SQLite everywhere, except in the folders whose conftest.py runs their
suites on both (`pytest_generate_tests = on_both_databases`), where each such test runs twice, with ids `[sqlite]`
and `[postgresql]`. A test that is SQLite by nature (a file, a missing folder, sqlite_master) is marked
`@pytest.mark.sqlite_only("why")` and runs once.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from facmon.kernel.daemons import Postgres
from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema

BACKENDS = ("sqlite", "postgresql")


def on_both_databases(metafunc: pytest.Metafunc) -> None:
    """A folder's `pytest_generate_tests`: each test that reaches a database runs on SQLite and on PostgreSQL."""
    if "db_backend" not in metafunc.fixturenames:
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    backends = BACKENDS[:1] if only_sqlite else BACKENDS
    # Module scope, so a module's shared database (scope="module" fixtures) can depend on it too.
    metafunc.parametrize("db_backend", backends, ids=list(backends), indirect=True, scope="module")


class Databases:
    """Fresh databases for one test (or one module) on `backend`; `close` drops the PostgreSQL ones."""

    def __init__(self, backend: str, folder: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.folder = folder
        self.request = request
        self.created: list[str] = []

    @property
    def server(self) -> Postgres:
        server: Postgres = self.request.getfixturevalue("postgres")
        return server

    def url(self, *, migrated: bool = True) -> str:
        """The URL of a new database: at the newest schema, or empty (for a test that migrates it itself)."""
        number = len(self.created)
        self.created.append(f"t_{uuid.uuid4().hex[:12]}")
        if self.backend == "postgresql":
            template = self.request.getfixturevalue("postgres_template") if migrated else None
            return self.server.create_database(self.created[-1], template=template)
        url = f"sqlite:///{self.folder / ('facmon.db' if number == 0 else f'facmon-{number}.db')}"
        if migrated:
            engine = make_engine(url)
            create_schema(engine)
            engine.dispose()
        return url

    def copy_of(self, url: str) -> str:
        """A new database with the content of `url` (made by this or another `Databases` on the same backend, and no
        longer in use): a copy of the file, or a PostgreSQL database with it as template."""
        number = len(self.created)
        self.created.append(f"t_{uuid.uuid4().hex[:12]}")
        if self.backend == "postgresql":
            return self.server.create_database(self.created[-1], template=url.rpartition("/")[2])
        path = self.folder / ("facmon.db" if number == 0 else f"facmon-{number}.db")
        shutil.copyfile(url.removeprefix("sqlite:///"), path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        if self.backend == "postgresql":
            for name in self.created:
                self.server.drop_database(name)
