"""Every migration, one at a time, from an empty database to the newest schema and back down to nothing, on SQLite
and on the real PostgreSQL server; the newest schema is exactly the models on both; and `facmon db upgrade` brings an
empty PostgreSQL database to it."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from facmon.kernel.db import Base, make_engine
from facmon.shell.migrations.schema import MIGRATIONS, create_schema
from tests.databases import BACKENDS, Databases
from tests.rules.support import head_revision
from tests.shell.ops.support import run

pytestmark = pytest.mark.parametrize("db_backend", BACKENDS, indirect=True)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    return [s.revision for s in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))]


def _downgrade(engine: Engine, revision: str) -> None:
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_every_migration_runs_up_and_down_and_head_is_the_models(databases: Databases) -> None:
    engine = make_engine(databases.url(migrated=False))
    try:
        revisions = _revisions()
        assert revisions[-1] == head_revision()
        seen: list[set[str]] = []
        for revision in revisions:
            create_schema(engine, revision)
            seen.append(_tables(engine))
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        for revision, tables in zip(reversed(revisions[:-1]), reversed(seen[:-1]), strict=True):
            _downgrade(engine, revision)
            assert _tables(engine) == tables, revision
        _downgrade(engine, "base")
        assert _tables(engine) == set()
        create_schema(engine)  # and up again in one go
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
    finally:
        engine.dispose()


def test_db_upgrade_brings_an_empty_database_to_the_newest_schema(databases: Databases) -> None:
    url = databases.url(migrated=False)
    state = databases.folder / "state"
    assert run("db", "current", "--check", state=state, db_url=url).exit_code == 1
    upgraded = run("db", "upgrade", state=state, db_url=url)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"after: {head_revision()} (newest)" in upgraded.stdout
    again = run("db", "upgrade", state=state, db_url=url)
    assert f"before: {head_revision()} (newest)" in again.stdout
    current = run("db", "current", "--check", state=state, db_url=url)
    assert current.exit_code == 0, current.output
