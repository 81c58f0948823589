"""The schema of every table, owned by Alembic (this folder's versions): `create_schema(engine)` upgrades to head.

Importing this module puts every feature's tables in `Base.metadata`, which stays the description of what head looks
like; a test compares the two so they cannot drift.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

# Every feature's tables, so that `Base.metadata` is the whole schema: what the migrations build, and what a test
# compares them with.
from api.accounts import models as _accounts
from facmon.estate import asset_store as _assets
from facmon.kernel.db import Base
from facmon.notifier import tables as _notifier
from facmon.workorders import tables as _work_orders
from rules import maintenance_models as _maintenance
from rules import tables as _rules

TABLE_MODULES = (_accounts, _assets, _notifier, _work_orders, _maintenance, _rules)
METADATA = Base.metadata
MIGRATIONS = Path(__file__).resolve().parent


def create_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest schema (Alembic `upgrade head`); safe to call on every start.

    `revision` stops at an older one, for tests that upgrade a database holding data of an earlier schema.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A migration that rebuilds a table (SQLite's only way to change constraints) must run with foreign keys
            # off, or dropping the old copy deletes its rows and cascades into the tables referring to it. The
            # pragma does nothing inside a transaction, hence before it; the check below stands in for it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                # env.py uses this connection instead of opening its own, so callers' engines (and pragmas) are used.
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
