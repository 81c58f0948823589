"""The fire panels' point tables in the database (`fire_points`, rules.tables.FirePoint): the points the site files
list, the points the panels report, and decommissioning by a person.

A point enters the table once, from the site file (`add_listed_points`, when the rules worker starts and when the
API is asked about a site) or from its panel's first reading (`save`), and never leaves it: a point that is no
longer there is decommissioned, with who, when and why (`decommission`), and can be recommissioned (`recommission`).
The rules worker keeps what the panels last said of each point (`save`), so that the API can show it and a worker
that starts knows it at once (`stored_points`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from rules.fire_intact import Pending, PointKey, StoredPoint
from rules.pipeline import upsert
from rules.tables import FirePoint, FirePointSource

_T = TypeVar("_T")
# Points per IN (...) list: well under the bound-parameter limits of SQLite and PostgreSQL.
_CHUNK = 500


def listed_points(site: Site) -> Iterator[tuple[str, str]]:
    """(device, point) for every point the site file lists for its fire panels."""
    for _, device in site.devices():
        if device.kind == DeviceKind.FIRE_PANEL:
            for point in device.fire_points:
                yield device.id, point


def add_listed_points(session: Session, site: Site, now: datetime) -> int:
    """Put the points the site file lists that the table does not have yet into it; how many were added."""
    listed = list(listed_points(site))
    if not listed:
        return 0
    known = set(session.execute(select(FirePoint.device, FirePoint.point).where(FirePoint.site == site.id)))
    missing = [(device, point) for device, point in listed if (device, point) not in known]
    for chunk in _chunks(missing):
        rows = [
            {"site": site.id, "device": d, "point": p, "source": FirePointSource.SITE_FILE.value, "first_seen_at": now}
            for d, p in chunk
        ]
        session.execute(upsert(session, FirePoint).values(rows).on_conflict_do_nothing())
    return len(missing)


def add_all_listed(engine: Engine, sites: Sequence[Site], now: datetime) -> int:
    with Session(engine) as session, session.begin():
        return sum(add_listed_points(session, site, now) for site in sites)


def stored_points(engine: Engine, sites: Collection[str] | None) -> list[StoredPoint]:
    """The rows of `sites` (None: all), as the worker's book takes them."""
    query = select(
        FirePoint.site,
        FirePoint.device,
        FirePoint.point,
        FirePoint.decommissioned_at,
        FirePoint.state,
        FirePoint.intact,
        FirePoint.state_since,
        FirePoint.heard_at,
    )
    if sites is not None:
        query = query.where(FirePoint.site.in_(sites))
    with Session(engine) as session:
        return [
            StoredPoint((site, device, point), decommissioned is None, state, intact, since, heard)
            for site, device, point, decommissioned, state, intact, since, heard in session.execute(query)
        ]


def commissioning(engine: Engine, sites: Collection[str] | None) -> list[StoredPoint]:
    """Which points exist and which are commissioned (what can change behind the worker's back: the API)."""
    query = select(FirePoint.site, FirePoint.device, FirePoint.point, FirePoint.decommissioned_at)
    if sites is not None:
        query = query.where(FirePoint.site.in_(sites))
    with Session(engine) as session:
        rows = session.execute(query)
        return [StoredPoint((site, device, point), at is None) for site, device, point, at in rows]


def save(engine: Engine, pending: Pending) -> None:
    """Points first heard of, their state changes and their latest reading times, in one transaction."""
    with Session(engine) as session, session.begin():
        for chunk in _chunks(sorted(pending.new.items())):
            rows = [
                {
                    "site": site,
                    "device": device,
                    "point": point,
                    "source": FirePointSource.REPORTED.value,
                    "first_seen_at": at,
                }
                for (site, device, point), at in chunk
            ]
            session.execute(upsert(session, FirePoint).values(rows).on_conflict_do_nothing())
        for (site, device, point), report in sorted(pending.states.items()):
            session.execute(
                update(FirePoint)
                .where(FirePoint.site == site, FirePoint.device == device, FirePoint.point == point)
                .values(
                    state=report.state,
                    intact=report.intact,
                    state_since=report.at,
                    reported_at=func.coalesce(FirePoint.reported_at, report.at),
                )
            )
        for (site, device, at), points in sorted(_by_reading(pending.heard.items()).items()):
            for names in _chunks(sorted(points)):
                session.execute(
                    update(FirePoint)
                    .where(FirePoint.site == site, FirePoint.device == device, FirePoint.point.in_(names))
                    .where((FirePoint.heard_at.is_(None)) | (FirePoint.heard_at < at))
                    .values(heard_at=at)
                )


def _by_reading(heard: Iterable[tuple[PointKey, datetime]]) -> dict[tuple[str, str, datetime], list[str]]:
    """The points heard of grouped by panel and reading time: a panel's snapshot of every point is one UPDATE."""
    groups: dict[tuple[str, str, datetime], list[str]] = defaultdict(list)
    for (site, device, point), at in heard:
        groups[(site, device, at)].append(point)
    return groups


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- the API's side --------------------------------------------------------------------------------------------------


class PointNotFound(LookupError):
    pass


class PointConflict(ValueError):
    """Decommissioning a point that is decommissioned already, or recommissioning one that is not."""


def list_points(session: Session, site: str, device: str | None = None) -> list[FirePoint]:
    query = select(FirePoint).where(FirePoint.site == site)
    if device is not None:
        query = query.where(FirePoint.device == device)
    return list(session.scalars(query.order_by(FirePoint.device, FirePoint.point)))


def _point(session: Session, site: str, device: str, point: str) -> FirePoint:
    row = session.get(FirePoint, (site, device, point), with_for_update=True)
    if row is None:
        raise PointNotFound(f"no point {point!r} in the point table of {site}/{device}")
    return row


@dataclass(frozen=True)
class Commissioning:
    """A point's commissioning before and after a change, for the audit log."""

    before: dict[str, str | None]
    after: dict[str, str | None]


def _commissioning(row: FirePoint) -> dict[str, str | None]:
    return {
        "decommissioned_at": None if row.decommissioned_at is None else row.decommissioned_at.isoformat(),
        "decommissioned_by": row.decommissioned_by,
        "decommission_reason": row.decommission_reason,
    }


def decommission(
    session: Session, site: str, device: str, point: str, *, actor: str, reason: str, now: datetime
) -> tuple[FirePoint, Commissioning]:
    """Take a point out of the intact rate from `now` on; the caller commits (with its audit entry)."""
    row = _point(session, site, device, point)
    if row.decommissioned_at is not None:
        raise PointConflict(
            f"{device} {point} was decommissioned at {row.decommissioned_at.isoformat()} by {row.decommissioned_by}"
        )
    before = _commissioning(row)
    row.decommissioned_at, row.decommissioned_by, row.decommission_reason = now, actor, reason
    session.flush()
    return row, Commissioning(before, _commissioning(row))


def recommission(session: Session, site: str, device: str, point: str) -> tuple[FirePoint, Commissioning]:
    """Count a decommissioned point again (an undo); the caller commits (with its audit entry, which keeps why)."""
    row = _point(session, site, device, point)
    if row.decommissioned_at is None:
        raise PointConflict(f"{device} {point} is commissioned")
    before = _commissioning(row)
    row.decommissioned_at, row.decommissioned_by, row.decommission_reason = None, None, None
    session.flush()
    return row, Commissioning(before, _commissioning(row))
