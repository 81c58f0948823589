"""Changes to work orders: status transitions, follow-up visits, assignment and notes.

Transitions are one endpoint, POST /work-orders/{id}/transitions with {"to": ...}, rather than one per action: the
lifecycle is one table (facmon.workorders.transitions), a refusal names the allowed `to` values, which are exactly
what a client
sends next, and `next_statuses` on every work order lets the phone page draw its buttons from the same table.

The signed-in principal (api.auth) is the actor of every change. Technicians see and change only their sites' work
orders, and change only unassigned ones or those assigned to them; a technician who acknowledges or arrives at an
unassigned work order takes it. `POST /assign` gives a work order to a technician who works at its site and covers
its discipline (a technician can only take one for themselves), `POST /notes` adds a remark; both are on the
timeline and in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from api.accounts.models import Role
from api.auth import ENGINEERING, AuditorDep, Principal
from api.auth import PrincipalDep as CurrentUserDep
from api.deps import ClockDep, EngineDep, SessionDep, SitesDep
from api.routes.work_orders import (
    API_SOURCE,
    NOT_FOUND,
    WorkOrderId,
    changeable,
    detail_of,
    find_site,
    invalid,
    not_found,
    snapshot,
    technician_of,
)
from api.schemas import (
    AssignCreate,
    FollowUpCreate,
    FollowUpPublic,
    NoteCreate,
    ProblemError,
    TransitionCreate,
    TransitionProblem,
    WorkOrderDetailPublic,
    problem_response,
)
from facmon.estate.on_call import DISCIPLINE_OF_WORK_ORDER_KIND
from facmon.estate.site import Site
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import (
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


def _reload(session: Session, work_order_id: int) -> WorkOrder:
    session.expire_all()
    work_order = get_work_order(session, work_order_id)
    assert work_order is not None, "work orders are never deleted by the API"
    return work_order


@router.post(
    "/{work_order_id}/transitions",
    responses={
        **NOT_FOUND,
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
    work_order = changeable(session, user, work_order_id)
    before = snapshot(work_order)
    arrived = _who_arrived(sites, user, work_order, body.on_behalf_of) if to is WorkOrderStatus.ON_SITE else None
    takes = user.role is Role.TECHNICIAN and to in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.ON_SITE)
    actor = arrived or user.actor
    try:
        transition(
            engine,
            work_order_id,
            to,
            actor=actor,
            source=API_SOURCE,
            at=clock.now(),
            note=body.note,
            take=user.technician if takes else None,
            recorded_by=user.username if actor != user.actor else None,
        )
    except WorkOrderNotFound as exc:
        raise not_found(work_order_id) from exc
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
    return detail_of(work_order, clock.now(), sites)


@router.post(
    "/{work_order_id}/follow-ups",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, status.HTTP_409_CONFLICT: problem_response("the work order is not resolved yet")},
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
    changeable(session, user, work_order_id)
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
        raise not_found(work_order_id) from exc
    except FollowUpRefused as exc:
        raise _refused("Follow-up not allowed", work_order_id, exc) from exc
    except FollowUpTimeInvalid as exc:
        raise invalid("body", "visited_at", str(exc), body.visited_at) from exc
    public = FollowUpPublic.model_validate(follow_up)
    auditor.record_now(engine, "work_order.follow_up", "follow_up", public.id, after=public.model_dump())
    return public


def _refused(title: str, work_order_id: int, exc: FollowUpRefused | AssignRefused) -> ProblemError:
    """409: the work order's status does not allow it now."""
    return ProblemError(
        status.HTTP_409_CONFLICT, title, f"work order {work_order_id}: {exc}", current_status=exc.current.value
    )


def _who_arrived(sites: Sequence[Site], user: Principal, work_order: WorkOrder, on_behalf_of: str | None) -> str:
    """The technician an `on_site` proves on site: the caller when a technician, else the named one; refused (403)
    unless that technician is one of the site's and covers the work order's discipline."""
    if user.role is Role.TECHNICIAN:
        if on_behalf_of not in (None, user.technician):
            raise ProblemError(
                status.HTTP_403_FORBIDDEN, "Not yours to record", "a technician records only their own arrival"
            )
        technician = user.technician
    elif user.role in ENGINEERING:
        if on_behalf_of is None:
            raise ProblemError(
                status.HTTP_403_FORBIDDEN,
                "Arrival needs the technician",
                f"{user.username} is {user.role.value}: record on site on behalf of the qualified technician who "
                "arrived (on_behalf_of)",
            )
        technician = on_behalf_of
    else:
        raise ProblemError(
            status.HTTP_403_FORBIDDEN, "Not allowed", f"{user.username} is {user.role.value}; arrival is not theirs"
        )
    known = technician_of(find_site(sites, work_order.site), technician) if technician else None
    discipline = DISCIPLINE_OF_WORK_ORDER_KIND.get(work_order.kind)
    if known is None or discipline is None or discipline not in known.disciplines:
        what = discipline.value if discipline else "no discipline"
        who = technician or user.username
        raise ProblemError(
            status.HTTP_403_FORBIDDEN,
            "Not qualified",
            f"{who} is not a technician of {work_order.site} covering {what} work (the work order is on a "
            f"{work_order.kind}): arrival is proved only by someone qualified",
        )
    return known.id


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
    known = technician_of(site, technician)
    if known is None:
        raise invalid("body", "technician", f"{technician} is not a technician of site {work_order.site}", technician)
    discipline = DISCIPLINE_OF_WORK_ORDER_KIND.get(work_order.kind)
    if discipline is None or discipline not in known.disciplines:
        what = discipline.value if discipline else "no discipline"
        raise invalid(
            "body",
            "technician",
            f"{technician} does not cover {what} work (the work order is on a {work_order.kind})",
            technician,
        )


@router.post(
    "/{work_order_id}/assign",
    responses={
        **NOT_FOUND,
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
        raise not_found(work_order_id)
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
        raise not_found(work_order_id) from exc
    except AssignRefused as exc:
        raise _refused("Assignment not allowed", work_order_id, exc) from exc
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
    return detail_of(_reload(session, work_order_id), clock.now(), sites)


@router.post("/{work_order_id}/notes", status_code=status.HTTP_201_CREATED, responses=NOT_FOUND)
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
    changeable(session, user, work_order_id)
    try:
        entry = add_note(engine, work_order_id, body.note, actor=user.actor, source=API_SOURCE, at=clock.now())
    except WorkOrderNotFound as exc:
        raise not_found(work_order_id) from exc
    auditor.record_now(
        engine, "work_order.note", "work_order", work_order_id, after={"entry_id": entry.id, "note": body.note}
    )
    return detail_of(_reload(session, work_order_id), clock.now(), sites)
