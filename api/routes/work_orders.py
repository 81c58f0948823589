"""Work orders: list and detail (with SLA compliance and the timeline), status transitions and follow-up visits.

Transitions are one endpoint, POST /work-orders/{id}/transitions with {"to": ...}, rather than one per action: the
lifecycle is one table (rules.transitions), a refusal names the allowed `to` values, which are exactly what a client
sends next, and `next_statuses` on every work order lets the phone page draw its buttons from the same table.

The signed-in principal (api.auth) is the actor of every change. Technicians see and change only their sites' work
orders, and change only unassigned ones or those assigned to them; a technician who acknowledges or arrives at an
unassigned work order takes it. `POST /assign` gives a work order to a technician who works at its site and covers
its discipline (a technician can only take one for themselves), `POST /notes` adds a remark; both are on the
timeline and in the audit log.

The list sorts by urgency by default (the earliest running SLA deadline first) and every work order carries that
deadline as `next_deadline`, so a phone can count down; the detail adds `people`, who else is on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.auth import ENGINEERING, AuditorDep, Principal
from api.auth import PrincipalDep as CurrentUserDep
from api.deps import ClockDep, EngineDep, SessionDep, SitesDep
from api.schemas import (
    ActorPublic,
    AssignCreate,
    ClockPublic,
    FollowUpCreate,
    FollowUpPublic,
    NextDeadlinePublic,
    NoteCreate,
    PeoplePublic,
    PersonRefPublic,
    ProblemError,
    SlaPublic,
    TimelineEntryPublic,
    TransitionCreate,
    TransitionProblem,
    WorkOrderDetailPublic,
    WorkOrderPagePublic,
    WorkOrderPublic,
    problem_response,
)
from facmon.accounts.models import Role
from facmon.site import Site, Technician
from rules.db import Category, Milestone, Priority, WorkOrder, WorkOrderStatus
from rules.on_call import DISCIPLINE_OF_WORK_ORDER_KIND, on_call_for_work_order
from rules.sla import compliance, overall
from rules.store import get_work_order, list_work_orders
from rules.transitions import NEXT, IllegalTransition
from rules.workflow import (
    AlreadyAssigned,
    AssignRefused,
    FollowUpRefused,
    FollowUpTimeInvalid,
    WorkOrderNotFound,
    add_follow_up,
    add_note,
    assign,
    transition,
)

router = APIRouter(prefix="/work-orders", tags=["work orders"])

# Transitions and follow-ups made through this API are recorded with this source.
API_SOURCE = "api"


WorkOrderId = Annotated[int, Path(ge=1)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: problem_response("no such work order")}


def _not_found(work_order_id: int) -> ProblemError:
    return ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order with id {work_order_id}")


# What an audit entry keeps of a work order, before and after a change.
_AUDITED = ("status", "assignee", "acknowledged_at", "on_site_at", "resolved_at", "closed_at", "cancelled_at")


def snapshot(work_order: WorkOrder) -> dict[str, object]:
    return {name: getattr(work_order, name) for name in _AUDITED}


def _visible(session: Session, user: Principal, work_order_id: int) -> WorkOrder:
    """The work order, if `user` may see it: everyone but technicians any, technicians those of their sites."""
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise _not_found(work_order_id)
    if not user.sees_site(work_order.site):
        raise ProblemError(
            status.HTTP_403_FORBIDDEN, "Not yours to see", f"{user.username} does not work at {work_order.site}"
        )
    return work_order


def _changeable(session: Session, user: Principal, work_order_id: int) -> WorkOrder:
    """The work order, if `user` may change it: engineers any, technicians theirs or unassigned ones at their sites."""
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise _not_found(work_order_id)
    if not user.may_change_work_order(work_order.site, work_order.assignee):
        if not user.sees_site(work_order.site):
            why = f"{user.username} does not work at {work_order.site}"
        else:
            why = f"work order {work_order_id} is assigned to {work_order.assignee}"
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to change", why)
    return work_order


def _sla(work_order: WorkOrder, now: datetime) -> SlaPublic:
    clocks = compliance(work_order.clocks, now)
    return SlaPublic(
        profile=work_order.sla_profile,
        state=overall(clocks),
        clocks=[ClockPublic.model_validate(c) for c in clocks],
    )


def next_deadline(work_order: WorkOrder, now: datetime) -> NextDeadlinePublic | None:
    """The earliest deadline of the clocks still running (not met, not cancelled), passed or not."""
    running = [c for c in work_order.clocks if c.met_at is None and c.cancelled_at is None]
    if not running:
        return None
    clock = min(running, key=lambda c: (c.due_at, c.name))
    return NextDeadlinePublic(
        name=clock.name,
        milestone=Milestone(clock.milestone),
        due_at=clock.due_at,
        time_left_s=(clock.due_at - now).total_seconds(),
    )


def _fields(work_order: WorkOrder, now: datetime) -> dict[str, object]:
    base = {name: getattr(work_order, name) for name in WorkOrderPublic.model_fields if hasattr(work_order, name)}
    return base | {
        "sla": _sla(work_order, now),
        "next_statuses": list(NEXT[WorkOrderStatus(work_order.status)]),
        "next_deadline": next_deadline(work_order, now),
    }


# Timeline entries written by machines, not by a person acting on the work order.
_MACHINE_SOURCES = frozenset({"rules", "notifier"})


def find_site(sites: Sequence[Site], site_id: str) -> Site | None:
    return next((s for s in sites if s.id == site_id), None)


def _technician(site: Site | None, technician_id: str) -> Technician | None:
    if site is None:
        return None
    return next((t for t in site.technicians if t.id == technician_id), None)


def _person(site: Site | None, technician_id: str) -> PersonRefPublic:
    known = _technician(site, technician_id)
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
                technician=_person(site, actor) if _technician(site, actor) else None,
                last_at=last_at,
            )
            for actor, last_at in acted.items()
        ],
    )


def _detail(work_order: WorkOrder, now: datetime, sites: Sequence[Site]) -> WorkOrderDetailPublic:
    return WorkOrderDetailPublic.model_validate(
        _fields(work_order, now)
        | {
            "timeline": [TimelineEntryPublic.model_validate(e) for e in work_order.timeline],
            "follow_ups": [FollowUpPublic.model_validate(f) for f in work_order.follow_ups],
            "people": _people(work_order, find_site(sites, work_order.site), now),
        }
    )


def _invalid(location: str, field: str, message: str, value: object) -> RequestValidationError:
    # Same shape as FastAPI's own 422s, so a client reads every bad field the same way.
    return RequestValidationError([{"type": "value_error", "loc": (location, field), "msg": message, "input": value}])


WorkOrderSort = Literal["urgency", "detected_at", "-detected_at", "priority"]


@router.get("")
def read_work_orders(
    session: SessionDep,
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
    offset: Annotated[int, Query(ge=0)] = 0,
) -> WorkOrderPagePublic:
    """Work orders matching every filter; technicians only ever see those of their sites."""
    if mine and user.technician is None:
        raise _invalid("query", "mine", f"{user.username} is not a technician (no technician id)", mine)
    now = clock.now()
    page = list_work_orders(
        session,
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
    items = [WorkOrderPublic.model_validate(_fields(wo, now)) for wo in page.items]
    return WorkOrderPagePublic(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{work_order_id}", responses=_NOT_FOUND)
def read_work_order(
    session: SessionDep, sites: SitesDep, clock: ClockDep, user: CurrentUserDep, work_order_id: WorkOrderId
) -> WorkOrderDetailPublic:
    """One work order with its SLA clocks, timeline, follow-ups and the people on it."""
    return _detail(_visible(session, user, work_order_id), clock.now(), sites)


def _reload(session: Session, work_order_id: int) -> WorkOrder:
    session.expire_all()
    work_order = get_work_order(session, work_order_id)
    assert work_order is not None, "work orders are never deleted by the API"
    return work_order


@router.post(
    "/{work_order_id}/transitions",
    responses={
        **_NOT_FOUND,
        status.HTTP_409_CONFLICT: problem_response("the work order's status does not allow it", TransitionProblem),
    },
)
def create_transition(
    engine: EngineDep,
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    user: CurrentUserDep,
    auditor: AuditorDep,
    work_order_id: WorkOrderId,
    body: TransitionCreate,
) -> WorkOrderDetailPublic:
    """Move the work order to `to`; the answer is the work order after it, timeline included.

    A technician who acknowledges or arrives at an unassigned work order is assigned it (an `assigned` entry)."""
    to = WorkOrderStatus(body.to)
    before = snapshot(_changeable(session, user, work_order_id))
    takes = user.role is Role.TECHNICIAN and to in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE)
    try:
        transition(
            engine,
            work_order_id,
            to,
            actor=user.actor,
            source=API_SOURCE,
            at=clock.now(),
            note=body.note,
            take=user.technician if takes else None,
        )
    except WorkOrderNotFound as exc:
        raise _not_found(work_order_id) from exc
    except IllegalTransition as exc:
        allowed = ", ".join(s.value for s in exc.allowed) or "none (final)"
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            "Transition not allowed",
            f"work order {work_order_id} is {exc.current.value} and cannot become {to.value}: {exc.reason}. "
            f"Allowed next: {allowed}.",
            current_status=exc.current.value,
            allowed=[s.value for s in exc.allowed],
        ) from exc
    work_order = _reload(session, work_order_id)
    after = snapshot(work_order)
    auditor.record_now(
        engine, f"work_order.{to.value}", "work_order", work_order_id, before=before, after=after | {"note": body.note}
    )
    return _detail(work_order, clock.now(), sites)


@router.post(
    "/{work_order_id}/follow-ups",
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, status.HTTP_409_CONFLICT: problem_response("the work order is not resolved yet")},
)
def create_follow_up(
    engine: EngineDep,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUserDep,
    auditor: AuditorDep,
    work_order_id: WorkOrderId,
    body: FollowUpCreate,
) -> FollowUpPublic:
    """Record a follow-up visit or call (回访) on a resolved or closed work order."""
    _changeable(session, user, work_order_id)
    now = clock.now()
    try:
        follow_up = add_follow_up(
            engine,
            work_order_id,
            actor=user.actor,
            outcome=body.outcome,
            note=body.note,
            visited_at=body.visited_at or now,
            now=now,
            source=API_SOURCE,
        )
    except WorkOrderNotFound as exc:
        raise _not_found(work_order_id) from exc
    except FollowUpRefused as exc:
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            "Follow-up not allowed",
            f"work order {work_order_id}: {exc}",
            current_status=exc.current.value,
        ) from exc
    except FollowUpTimeInvalid as exc:
        raise _invalid("body", "visited_at", str(exc), body.visited_at) from exc
    public = FollowUpPublic.model_validate(follow_up)
    auditor.record_now(engine, "work_order.follow_up", "follow_up", public.id, after=public.model_dump())
    return public


def _may_assign(user: Principal, work_order: WorkOrder, technician: str | None) -> None:
    """Engineers and admins assign anyone; a technician only takes an unassigned work order at their site."""
    if user.role in ENGINEERING:
        return
    why: str | None = None
    if user.role is not Role.TECHNICIAN or user.technician is None:
        why = f"{user.username} is {user.role.value}; assigning needs an engineer or admin"
    elif not user.sees_site(work_order.site):
        why = f"{user.username} does not work at {work_order.site}"
    elif technician != user.technician:
        why = "a technician can only take a work order for themselves"
    elif work_order.assignee not in (None, user.technician):
        why = f"work order {work_order.id} is assigned to {work_order.assignee}"
    if why is not None:
        raise ProblemError(status.HTTP_403_FORBIDDEN, "Not yours to assign", why)


def _check_assignee(sites: Sequence[Site], work_order: WorkOrder, technician: str) -> None:
    site = find_site(sites, work_order.site)
    known = _technician(site, technician)
    if known is None:
        raise _invalid("body", "technician", f"{technician} is not a technician of site {work_order.site}", technician)
    discipline = DISCIPLINE_OF_WORK_ORDER_KIND.get(work_order.kind)
    if discipline is None or discipline not in known.disciplines:
        what = discipline.value if discipline else "no discipline"
        raise _invalid(
            "body",
            "technician",
            f"{technician} does not cover {what} work (the work order is on a {work_order.kind})",
            technician,
        )


@router.post(
    "/{work_order_id}/assign",
    responses={
        **_NOT_FOUND,
        status.HTTP_409_CONFLICT: problem_response("the work is done, or someone else took it meanwhile"),
    },
)
def create_assignment(
    engine: EngineDep,
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    user: CurrentUserDep,
    auditor: AuditorDep,
    work_order_id: WorkOrderId,
    body: AssignCreate,
) -> WorkOrderDetailPublic:
    """Assign the work order to a technician of its site who covers its discipline (null: to nobody).

    Engineers and admins assign anyone; a technician can only take an unassigned work order at their site for
    themselves. Assigning the assignee it already has changes nothing."""
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise _not_found(work_order_id)
    _may_assign(user, work_order, body.technician)
    if body.technician is not None:
        _check_assignee(sites, work_order, body.technician)
    try:
        result = assign(
            engine,
            work_order_id,
            body.technician,
            actor=user.actor,
            source=API_SOURCE,
            at=clock.now(),
            only_if_unassigned=user.role not in ENGINEERING,
        )
    except WorkOrderNotFound as exc:
        raise _not_found(work_order_id) from exc
    except AssignRefused as exc:
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            "Assignment not allowed",
            f"work order {work_order_id}: {exc}",
            current_status=exc.current.value,
        ) from exc
    except AlreadyAssigned as exc:
        raise ProblemError(
            status.HTTP_409_CONFLICT, "Already taken", f"work order {work_order_id}: {exc}", assignee=exc.assignee
        ) from exc
    if result.changed:
        auditor.record_now(
            engine,
            "work_order.assign",
            "work_order",
            work_order_id,
            before={"assignee": result.previous},
            after={"assignee": result.assignee},
        )
    return _detail(_reload(session, work_order_id), clock.now(), sites)


@router.post("/{work_order_id}/notes", status_code=status.HTTP_201_CREATED, responses=_NOT_FOUND)
def create_note(
    engine: EngineDep,
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    user: CurrentUserDep,
    auditor: AuditorDep,
    work_order_id: WorkOrderId,
    body: NoteCreate,
) -> WorkOrderDetailPublic:
    """Add a remark to the work order's timeline (type `note`); the answer is the work order with it."""
    _changeable(session, user, work_order_id)
    try:
        entry = add_note(engine, work_order_id, body.note, actor=user.actor, source=API_SOURCE, at=clock.now())
    except WorkOrderNotFound as exc:
        raise _not_found(work_order_id) from exc
    auditor.record_now(
        engine, "work_order.note", "work_order", work_order_id, after={"entry_id": entry.id, "note": body.note}
    )
    return _detail(_reload(session, work_order_id), clock.now(), sites)
