"""Alembic environment for the work-order database.

There is no alembic.ini: `facmon.shell.migrations.schema.create_schema(engine)` builds the configuration in code and
hands over an open connection, so migrations run with the caller's engine (its SQLite pragmas included) and never read
settings of their own. A new revision is made the same way, e.g.::

    config = Config(); config.set_main_option("script_location", str(facmon.shell.migrations.schema.MIGRATIONS))
    config.attributes["connection"] = connection  # to a database at head
    alembic.command.revision(config, message="...", autogenerate=True)
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from facmon.shell.migrations.schema import METADATA


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead. A no-op on PostgreSQL.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through facmon.shell.migrations.schema.create_schema(engine), which passes a connection"
        )
    run_migrations(connection)


main()
