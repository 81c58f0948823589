"""Work orders: list and detail (with SLA compliance, the timeline and who is on it); the changes are in
api.routes.work_order_actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json
from sqlalchemy import Engine, Row
from sqlalchemy.orm import Session

from api.auth import Principal
from api.auth import PrincipalDep as CurrentUserDep
from api.deps import ClockDep, DatabaseWorkDep, EngineDep, SessionDep, SitesDep
from api.schemas import (
    ActorPublic,
    FollowUpPublic,
    IdPath,
    Offset,
    PeoplePublic,
    PersonRefPublic,
    ProblemError,
    TimelineEntryPublic,
    WorkOrderDetailPublic,
    WorkOrderPagePublic,
    WorkOrderPublic,
    problem_response,
)
from facmon.estate.entries import Technician
from facmon.estate.on_call import DISCIPLINE_OF_WORK_ORDER_KIND, on_call_for_work_order
from facmon.estate.site import Site
from facmon.workorders.queries import Filters, WorkOrderRows, get_work_order, list_work_order_rows
from facmon.workorders.sla import StoredClock, compliance, overall
from facmon.workorders.tables import Category, Priority, WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import NEXT

router = APIRouter(prefix="/work-orders", tags=["work orders"])

# Transitions and follow-ups made through this API are recorded with this source.
API_SOURCE = "api"


WorkOrderId = IdPath

NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: problem_response("no such work order")}
NOT_FOUND_OR_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    status.HTTP_403_FORBIDDEN: problem_response("a technician asking about another site's work order"),
}


def not_found(work_order_id: int) -> ProblemError:
    return ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order with id {work_order_id}")


# What an audit entry keeps of a work order, before and after a change.
_AUDITED = ("status", "assignee", "acknowledged_at", "on_site_at", "resolved_at", "closed_at", "cancelled_at")


def snapshot(work_order: WorkOrder) -> dict[str, object]:
    return {name: getattr(work_order, name) for name in _AUDITED}


def visible(session: Session, user: Principal, work_order_id: int) -> WorkOrder:
    """The work order, if `user` may see it: everyone but technicians any, technicians those of their sites."""
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise not_found(work_order_id)
    if not user.sees_site(work_order.site):
        raise ProblemError(
            status.HTTP_403_FORBIDDEN, "Not yours to see", f"{user.username} does not work at {work_order.site}"
        )
    return work_order


def changeable(session: Session, user: Principal, work_order_id: int) -> WorkOrder:
    """The work order, if `user` may change it: engineers any, technicians theirs or unassigned ones at their sites."""
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise not_found(work_order_id)
    if not user.may_change_work_order(work_order.site, work_order.assignee):
        if not user.sees_site(work_order.site):
            why = f"{user.username} does not work at {work_order.site}"
        else:
            why = f"work order {work_order_id} is assigned to {work_order.assignee}"
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to change", why)
    return work_order


# The answers below are built as plain dicts and validated once, with the page or the detail they are part of:
# building a model for each clock and deadline first cost more than the rest of a page.


def _sla(profile: str | None, stored: Sequence[StoredClock], now: datetime) -> dict[str, object]:
    """SlaPublic's fields."""
    clocks = compliance(stored, now)
    return {"profile": profile, "state": overall(clocks), "clocks": [vars(c) for c in clocks]}


def earliest_running(clocks: Sequence[StoredClock], now: datetime) -> dict[str, object] | None:
    """NextDeadlinePublic's fields: the earliest deadline of these clocks still running, passed or not."""
    running = [c for c in clocks if c.met_at is None and c.cancelled_at is None]
    if not running:
        return None
    clock = min(running, key=lambda c: (c.due_at, c.name))
    return {
        "name": clock.name,
        "milestone": clock.milestone,
        "due_at": clock.due_at,
        "time_left_s": (clock.due_at - now).total_seconds(),
    }


# The fields of WorkOrderPublic that are columns of work_orders, as they are.
_COLUMNS = tuple(name for name in WorkOrderPublic.model_fields if name in WorkOrder.__table__.c)


def _fields(work_order: WorkOrder, clocks: Sequence[StoredClock], now: datetime) -> dict[str, object]:
    """WorkOrderPublic's fields of a work order and its clocks."""
    return {name: getattr(work_order, name) for name in _COLUMNS} | {
        "sla": _sla(work_order.sla_profile, clocks, now),
        "next_statuses": NEXT[WorkOrderStatus(work_order.status)],
        "next_deadline": earliest_running(clocks, now),
    }


# WorkOrderPublic's fields in order, each a column of work_orders (True) or worked out (False).
_LISTED = tuple((name, name in WorkOrder.__table__.c) for name in WorkOrderPublic.model_fields)
_NEXT_BY_VALUE = {status.value: targets for status, targets in NEXT.items()}


def _listed(row: Row[Any], clocks: Sequence[StoredClock], now: datetime) -> dict[str, object]:
    """WorkOrderPublic of a row of work_orders and its clocks, as the plain values it serializes to, with its fields
    in the model's order: what `page_json` writes without validating it again."""
    mapping = row._mapping
    extra = {
        "next_deadline": earliest_running(clocks, now),
        "sla": _sla(row.sla_profile, clocks, now),
        "next_statuses": _NEXT_BY_VALUE[row.status],
    }
    return {name: mapping[name] if column else extra[name] for name, column in _LISTED}


def page_json(rows: WorkOrderRows, now: datetime, limit: int, offset: int) -> bytes:
    """A page of the work-order list as WorkOrderPagePublic's JSON. The values come from the database as the
    store wrote them, so they are not validated again: building the models and then serializing them took half
    of the list's time. pydantic-core's own serializer writes the body, so datetimes, enums and floats read
    exactly as the model's JSON would (tests/api/test_work_order_list_json.py compares the two)."""
    items = [_listed(row, rows.clocks[row.id], now) for row in rows.items]
    return to_json({"items": items, "total": rows.total, "limit": limit, "offset": offset})


# Timeline entries written by machines, not by a person acting on the work order.
_MACHINE_SOURCES = frozenset({"rules", "notifier"})


def find_site(sites: Sequence[Site], site_id: str) -> Site | None:
    return next((s for s in sites if s.id == site_id), None)


def technician_of(site: Site | None, technician_id: str) -> Technician | None:
    if site is None:
        return None
    return next((t for t in site.technicians if t.id == technician_id), None)


def _person(site: Site | None, technician_id: str) -> PersonRefPublic:
    known = technician_of(site, technician_id)
    return PersonRefPublic(id=technician_id, name=known.name if known else None, phone=known.phone if known else None)


def _people(work_order: WorkOrder, site: Site | None, now: datetime) -> PeoplePublic:
    on_call: list[PersonRefPublic] = []
    if site is not None and work_order.kind in DISCIPLINE_OF_WORK_ORDER_KIND:
        chain = on_call_for_work_order(site, work_order.kind, now)
        if chain.on_call is not None:
            on_call.append(_person(site, chain.on_call.technician.id))
    acted: dict[str, datetime] = {}
    for entry in work_order.timeline:
        if entry.actor and entry.source not in _MACHINE_SOURCES:
            acted[entry.actor] = max(entry.at, acted.get(entry.actor, entry.at))
    return PeoplePublic(
        assignee=None if work_order.assignee is None else _person(site, work_order.assignee),
        on_call=on_call,
        acted=[
            ActorPublic(
                actor=actor,
                technician=_person(site, actor) if technician_of(site, actor) else None,
                last_at=last_at,
            )
            for actor, last_at in acted.items()
        ],
    )


def detail_of(work_order: WorkOrder, now: datetime, sites: Sequence[Site]) -> WorkOrderDetailPublic:
    return WorkOrderDetailPublic.model_validate(
        _fields(work_order, work_order.clocks, now)
        | {
            "timeline": [TimelineEntryPublic.model_validate(e) for e in work_order.timeline],
            "follow_ups": [FollowUpPublic.model_validate(f) for f in work_order.follow_ups],
            "people": _people(work_order, find_site(sites, work_order.site), now),
        }
    )


def invalid(location: str, field: str, message: str, value: object) -> RequestValidationError:
    # Same shape as FastAPI's own 422s, so a client reads every bad field the same way.
    return RequestValidationError([{"type": "value_error", "loc": (location, field), "msg": message, "input": value}])


WorkOrderSort = Literal["urgency", "detected_at", "-detected_at", "priority"]


@router.get("", response_model=WorkOrderPagePublic)
async def read_work_orders(
    engine: EngineDep,
    database: DatabaseWorkDep,
    clock: ClockDep,
    user: CurrentUserDep,
    status_: Annotated[
        list[WorkOrderStatus] | None, Query(alias="status", description="any of these statuses (repeatable)")
    ] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32, description="elevator, fire_panel, gate, camera, ...")] = None,
    priority: Priority | None = None,
    category: Category | None = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="a technician id, or `none` for unassigned work orders")
    ] = None,
    mine: Annotated[bool | None, Query(description="technicians: assigned to me, or unassigned at my sites")] = None,
    breached: Annotated[bool | None, Query(description="true: an SLA clock is breached; false: none is")] = None,
    sort: Annotated[
        WorkOrderSort,
        Query(
            description="urgency (default): the earliest running SLA deadline first, overdue ones leading, then "
            "work orders with no running clock, newest first; detected_at (oldest first); -detected_at (newest "
            "first); priority (emergencies first, then by urgency)"
        ),
    ] = "urgency",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> Response:
    """Work orders matching every filter; technicians only ever see those of their sites."""
    if mine and user.technician is None:
        raise invalid("query", "mine", f"{user.username} is not a technician (no technician id)", mine)
    now = clock.now()
    filters = Filters(
        statuses=[s.value for s in status_] if status_ else None,
        site=site,
        sites=user.sites,
        building=building,
        device=device,
        kind=kind,
        priority=priority.value if priority else None,
        category=category.value if category else None,
        assignee=None if assignee in (None, "none") else assignee,
        unassigned=assignee == "none",
        mine=user.technician if mine else None,
        breached=breached,
        now=now,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    # One hop to the thread pool for the queries and the body together: each hop costs, and under load the hops of
    # many requests contend for the interpreter.
    body = await database.run(_read_page, engine, filters, now)
    return Response(body, media_type="application/json")


def _read_page(engine: Engine, filters: Filters, now: datetime) -> bytes:
    with Session(engine) as session:
        rows = list_work_order_rows(session, **filters)
    return page_json(rows, now, filters["limit"], filters["offset"])


@router.get("/{work_order_id}", responses=NOT_FOUND_OR_NOT_YOURS)
def read_work_order(
    session: SessionDep, sites: SitesDep, clock: ClockDep, user: CurrentUserDep, work_order_id: WorkOrderId
) -> WorkOrderDetailPublic:
    """One work order with its SLA clocks, timeline, follow-ups and the people on it."""
    return detail_of(visible(session, user, work_order_id), clock.now(), sites)
