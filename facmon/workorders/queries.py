"""Reading work orders back: pages filtered and sorted by urgency (the nearest SLA deadline first), one work order
with its timeline, clocks and follow-ups, and counts per device. Shared by the API, the notifier and the reports."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import ColumnElement, Row, Select, TextClause, and_, exists, func, or_, select, text, true
from sqlalchemy.orm import Session, selectinload

from facmon.workorders.tables import (
    OPEN_STATUSES,
    OPEN_WHERE_SQL,
    Priority,
    WorkOrder,
    WorkOrderClock,
)


@dataclass(frozen=True)
class WorkOrderPage:
    items: list[WorkOrder]
    total: int


@dataclass(frozen=True)
class WorkOrderRows:
    """A page as plain rows (the columns of work_orders) and each work order's clocks (rows of work_order_clocks, in
    the order of WorkOrder.clocks): what a list shows, without building ORM objects, which cost several times more
    than the rows themselves."""

    items: list[Row[Any]]
    clocks: dict[int, list[Row[Any]]]
    total: int


# How a list of work orders can be sorted (list_work_orders).
SORTS = ("urgency", "detected_at", "-detected_at", "priority")
_PRIORITY_ORDER = (Priority.EMERGENCY.value, Priority.URGENT.value)


def breached_clock(now: datetime) -> ColumnElement[bool]:
    """A clock that is breached at `now` (as facmon.workorders.sla.clock_compliance decides): met late, cancelled
    after its
    deadline, or still running past it."""
    c = WorkOrderClock
    return or_(
        and_(c.met_at.is_not(None), c.met_at > c.due_at),
        and_(c.met_at.is_(None), c.cancelled_at.is_not(None), c.cancelled_at > c.due_at),
        and_(c.met_at.is_(None), c.cancelled_at.is_(None), c.due_at < now),
    )


def running_clock() -> ColumnElement[bool]:
    """A clock still running: not met, not cancelled (ix_work_order_clocks_running holds exactly these)."""
    return and_(WorkOrderClock.met_at.is_(None), WorkOrderClock.cancelled_at.is_(None))


def next_due_subquery() -> Any:
    """(work_order_id, next_due): the earliest deadline of each work order's clocks still running (not met, not
    cancelled), passed or not."""
    c = WorkOrderClock
    return (
        select(c.work_order_id.label("work_order_id"), func.min(c.due_at).label("next_due"))
        .where(running_clock())
        .group_by(c.work_order_id)
        .subquery("next_clock")
    )


class Filters(TypedDict, total=False):
    """What list_work_orders and list_work_order_rows take after the session."""

    statuses: Collection[str] | None
    site: str | None
    sites: Collection[str] | None
    building: str | None
    device: str | None
    kind: str | None
    priority: str | None
    category: str | None
    assignee: str | None
    unassigned: bool
    mine: str | None
    breached: bool | None
    now: datetime | None
    sort: str
    limit: int
    offset: int


def list_work_orders(session: Session, **filters: Unpack[Filters]) -> WorkOrderPage:
    """Work orders matching every given filter, one page of them in `sort` order, and how many match in all.

    Filters (all optional): `statuses`, `site`, `sites` (a technician's scope; empty: none), `building`, `device`,
    `kind`, `priority`, `category`, `assignee`, `unassigned`, `mine` (a technician id; assigned to them or
    unassigned at `sites`), `breached` (with (True) or without (False) a clock breached at `now`); then `now`,
    `sort`, `limit` (50) and `offset` (0).

    Sorts: `urgency` (the API's default) the earliest deadline of a clock still running first (passed ones are
    the most overdue, so they lead), then work orders with no running clock, newest first; `detected_at` oldest
    first, `-detected_at` newest first (the default here); `priority` emergencies first, each priority in urgency
    order. Sorting and paging are done by the database, each from an index (see `_segments`).
    """
    items, total = _page(session, False, **filters)
    return WorkOrderPage(items=items, total=total)


def list_work_order_rows(session: Session, **filters: Unpack[Filters]) -> WorkOrderRows:
    """The page of `list_work_orders` as rows, with the clocks of its work orders read in one more query."""
    items, total = _page(session, True, **filters)
    clocks: dict[int, list[Row[Any]]] = {row.id: [] for row in items}
    if clocks:
        c = WorkOrderClock.__table__.c
        # The columns a listed clock shows (StoredClock's): each datetime read is parsed, so the others are not read.
        shown = (c.work_order_id, c.name, c.milestone, c.due_at, c.met_at, c.cancelled_at)
        query: Select[Any] = select(*shown).where(c.work_order_id.in_(list(clocks)))
        for clock in session.execute(query.order_by(c.work_order_id, c.due_at, c.name)):
            clocks[clock.work_order_id].append(clock)
    return WorkOrderRows(items=items, clocks=clocks, total=total)


def _page(
    session: Session,
    rows: bool,
    *,
    statuses: Collection[str] | None = None,
    site: str | None = None,
    sites: Collection[str] | None = None,
    building: str | None = None,
    device: str | None = None,
    kind: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    mine: str | None = None,
    breached: bool | None = None,
    now: datetime | None = None,
    sort: str = "-detected_at",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Any], int]:
    """The page (ORM objects with their clocks loaded, or `rows`) and the total, for both functions above."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, not {sort!r}")
    equal = {"building": building, "device": device, "kind": kind}
    equal |= {"priority": priority, "category": category, "assignee": assignee}
    conditions = [
        *_matching(statuses, site, sites, equal),
        *_whose(sites, unassigned, mine),
        *_breached(breached, now),
    ]
    total = session.execute(select(func.count()).select_from(WorkOrder).where(*conditions)).scalar_one()
    items: list[Any] = []
    wanted = max(0, min(limit, total - offset))
    for segment in _segments(sort, rows):
        if len(items) == wanted:
            break
        query = segment.where(*conditions).limit(wanted - len(items)).offset(offset)
        found = len(items)
        if rows:
            items += session.execute(query).all()
        else:
            items += session.execute(query.options(selectinload(WorkOrder.clocks))).scalars()
        if len(items) > found:
            offset = 0
        elif offset:
            # The page starts after this whole segment: count it only then, to know where the next one starts.
            counted = segment.where(*conditions).order_by(None).subquery()
            offset -= session.execute(select(func.count()).select_from(counted)).scalar_one()
    return items, total


_OPEN = frozenset(s.value for s in OPEN_STATUSES)


def _matching(
    statuses: Collection[str] | None, site: str | None, sites: Collection[str] | None, equal: dict[str, str | None]
) -> list[ColumnElement[bool] | TextClause]:
    """The filters by status, site and columns equal to a value."""
    conditions: list[ColumnElement[bool] | TextClause] = []
    if statuses and frozenset(statuses) == _OPEN:
        # Said as uq_work_orders_open_fault's own condition, so the database reads the open work orders from that
        # partial index (a device's: a handful) instead of every open work order by status.
        conditions.append(text(OPEN_WHERE_SQL))
    elif statuses:
        conditions.append(WorkOrder.status.in_(list(statuses)))
    if site is not None:
        conditions.append(WorkOrder.site == site)
    if sites is not None:
        conditions.append(WorkOrder.site.in_(list(sites)))
    conditions += [getattr(WorkOrder, name) == value for name, value in equal.items() if value is not None]
    return conditions


def _whose(sites: Collection[str] | None, unassigned: bool, mine: str | None) -> list[ColumnElement[bool]]:
    """The filters by assignee: nobody's, or a technician's own and the unassigned ones at their sites."""
    conditions: list[ColumnElement[bool]] = []
    if unassigned:
        conditions.append(WorkOrder.assignee.is_(None))
    if mine is not None:
        mine_sites = WorkOrder.site.in_(list(sites)) if sites is not None else true()
        conditions.append(or_(WorkOrder.assignee == mine, and_(WorkOrder.assignee.is_(None), mine_sites)))
    return conditions


def _breached(breached: bool | None, now: datetime | None) -> list[ColumnElement[bool]]:
    if breached is None:
        return []
    if now is None:
        raise ValueError("the breached filter needs the time (now)")
    any_breached = exists().where(WorkOrderClock.work_order_id == WorkOrder.id, breached_clock(now))
    return [any_breached if breached else ~any_breached]


@functools.cache
def _segments(sort: str, rows: bool = False) -> tuple[Select[Any], ...]:
    """The sort order as consecutive segments, each a query ordered by an index, so the database reads only the
    rows of the page (ORDER BY ... LIMIT) instead of sorting every work order for each page.

    Urgency is two segments: the work orders with a clock still running, by their earliest deadline (the stored
    `next_due_at`, facmon.workorders.next_due, from ix_work_orders_next_due), then the others newest first
    (ix_work_orders_detected_at_id, read backwards). Priority is those two for each priority in turn. Built once per
    sort (statements are immutable, and building them cost more than running the first page's). `rows`: the columns
    of the table instead of the entity.
    """
    base: Select[Any] = select(WorkOrder.__table__) if rows else select(WorkOrder)
    newest = (WorkOrder.detected_at.desc(), WorkOrder.id.desc())
    if sort == "detected_at":
        return (base.order_by(WorkOrder.detected_at.asc(), WorkOrder.id.asc()),)
    if sort == "-detected_at":
        return (base.order_by(*newest),)
    due = WorkOrder.next_due_at
    running = base.where(due.is_not(None)).order_by(due, *newest)
    rest = base.where(due.is_(None)).order_by(*newest)
    if sort == "urgency":
        return (running, rest)
    known = list(_PRIORITY_ORDER)
    ranks = [WorkOrder.priority == p for p in known] + [WorkOrder.priority.not_in(known)]
    return tuple(segment.where(rank) for rank in ranks for segment in (running, rest))


def get_work_order(session: Session, work_order_id: int) -> WorkOrder | None:
    """One work order with its timeline (oldest entry first), clocks and follow-ups loaded."""
    query = (
        select(WorkOrder)
        .where(WorkOrder.id == work_order_id)
        .options(selectinload(WorkOrder.timeline), selectinload(WorkOrder.clocks), selectinload(WorkOrder.follow_ups))
    )
    return session.execute(query).scalar_one_or_none()


def open_work_order_counts(
    session: Session,
    *,
    site: str | None = None,
    sites: Collection[str] | None = None,
    devices: Collection[str] | None = None,
) -> dict[tuple[str, str], int]:
    """Open work orders per (site, device), of `site` or `sites` and of the `devices` named when given. The
    condition is the literal one of uq_work_orders_open_fault, so the database counts from that partial index (the
    open work orders only) instead of reading every work order."""
    query = (
        select(WorkOrder.site, WorkOrder.device, func.count())
        .where(text(OPEN_WHERE_SQL))
        .group_by(WorkOrder.site, WorkOrder.device)
    )
    if site is not None:
        query = query.where(WorkOrder.site == site)
    if sites is not None:
        query = query.where(WorkOrder.site.in_(list(sites)))
    if devices is not None:
        query = query.where(WorkOrder.device.in_(list(devices)))
    return {(row[0], row[1]): row[2] for row in session.execute(query)}
