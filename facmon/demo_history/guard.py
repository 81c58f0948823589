"""History goes into a fresh database once: a marker says it is there, and a database with work of its own is refused.

The marker is a row of `rule_watermarks` (name `demo_history`, at = the end of the history), the table the rules
worker keeps its timers' progress in: no table of its own, no migration, and it goes wherever the database goes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from facmon.workorders.tables import WorkOrder
from rules.maintenance_models import MaintenanceVisit
from rules.tables import FireAlarm, FireCheck, ProcessedEvent, RuleWatermark

MARKER = "demo_history"


class HistoryRefused(RuntimeError):
    """The database holds work orders (or visits, checks, alarms) that are not a generated history."""


def generated_until(engine: Engine) -> datetime | None:
    """The end of the history generated into this database, or None when none was."""
    with Session(engine) as session:
        marker = session.get(RuleWatermark, MARKER)
        return None if marker is None else marker.at


def check_fresh(engine: Engine) -> None:
    """Refuse a database that already holds the site's own records, or that a rules worker has run on: a history
    would mix with them."""
    with Session(engine) as session:
        found = {
            name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in (
                ("work orders", WorkOrder),
                ("maintenance visits", MaintenanceVisit),
                ("fire alarms", FireAlarm),
                ("fire checks", FireCheck),
                # A rules worker that ran on this database: its device states are newer than any history.
                ("events processed", ProcessedEvent),
            )
        }
    held = [f"{count} {name}" for name, count in found.items() if count]
    if held:
        raise HistoryRefused(
            f"the database already holds {', '.join(held)}: a generated history goes only into a fresh database "
            "(a new --state-dir, or another FACMON_DB_URL)"
        )


def mark(engine: Engine, until: datetime) -> None:
    with Session(engine) as session, session.begin():
        session.add(RuleWatermark(name=MARKER, at=until))
