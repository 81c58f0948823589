"""Leases in the database: a task that one process of many does at a time, whichever is alive.

Several rules workers run side by side on a shared subscription (rules.worker); most of what they do is per event
and shared among them, but the fire intact figures are made from every panel reading of the estate and written to
InfluxDB on a clock, so two writers would write every figure twice at different times. Each worker hears the
readings (its book stays warm), and only the holder of the lease `fire_intact` saves the point table and writes the
figures.

`Lease.hold(now)` takes the lease when it is free or has run out, or renews it when this process holds it already,
in one INSERT ... ON CONFLICT DO UPDATE ... WHERE: the database decides, two processes never both hold it (the row
is locked while one of them changes it). A holder that dies stops renewing; another takes over once `ttl` has run
out. A holder that loses the database keeps nothing: its next `hold` fails and it stops until it holds the lease
again. The time is each process's clock: their clocks must agree to well within `ttl` (NTP does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_
from sqlalchemy.orm import Session

from rules.pipeline import upsert
from rules.tables import Lease as LeaseRow

DEFAULT_TTL = timedelta(seconds=15)


@dataclass(frozen=True)
class Lease:
    """The lease `name` as `holder` (a name stable across its restarts: it holds the lease again at once) asks for
    it, for `ttl` from each renewal."""

    engine: Engine
    name: str
    holder: str
    ttl: timedelta = DEFAULT_TTL

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ValueError("a lease must last some time")

    def hold(self, now: datetime) -> bool:
        """Take or renew the lease at `now`; whether this holder holds it until `now + ttl`."""
        with Session(self.engine) as session, session.begin():
            stmt = upsert(session, LeaseRow).values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
            taken = session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[LeaseRow.name],
                    set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
                    where=or_(LeaseRow.holder == stmt.excluded.holder, LeaseRow.expires_at < now),
                ).returning(LeaseRow.holder)
            ).scalar_one_or_none()
        return taken is not None
