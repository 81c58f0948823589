"""Work orders: list and detail (with SLA compliance and the timeline), status transitions and follow-up visits.

Transitions are one endpoint, POST /work-orders/{id}/transitions with {"to": ...}, rather than one per action: the
lifecycle is one table (rules.transitions), a refusal names the allowed `to` values, which are exactly what a client
sends next, and `next_statuses` on every work order lets the phone page draw its buttons from the same table.

Two dependencies are seams: `get_clock` (the time of a transition and of the SLA figures; tests override it with a
fake clock) and `get_current_user` (None until the API authenticates; then the signed-in user is the actor and the
body's `actor` is no longer trusted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.exceptions import RequestValidationError

from api.deps import EngineDep, SessionDep
from api.schemas import (
    ClockPublic,
    FollowUpCreate,
    FollowUpPublic,
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
from facmon.clock import Clock, SystemClock
from rules.db import WorkOrder, WorkOrderStatus
from rules.sla import compliance, overall
from rules.store import get_work_order, list_work_orders
from rules.transitions import NEXT, IllegalTransition
from rules.workflow import (
    FollowUpRefused,
    FollowUpTimeInvalid,
    WorkOrderNotFound,
    add_follow_up,
    transition,
)

router = APIRouter(prefix="/work-orders", tags=["work orders"])

# Transitions and follow-ups made through this API are recorded with this source.
API_SOURCE = "api"


def get_clock() -> Clock:
    return SystemClock()


def get_current_user() -> str | None:
    """The authenticated user's name; None while the API has no authentication (the body's actor is used)."""
    return None


ClockDep = Annotated[Clock, Depends(get_clock)]
CurrentUserDep = Annotated[str | None, Depends(get_current_user)]
WorkOrderId = Annotated[int, Path(ge=1)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: problem_response("no such work order")}


def _not_found(work_order_id: int) -> ProblemError:
    return ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order with id {work_order_id}")


def _sla(work_order: WorkOrder, now: datetime) -> SlaPublic:
    clocks = compliance(work_order.clocks, now)
    return SlaPublic(
        profile=work_order.sla_profile,
        state=overall(clocks),
        clocks=[ClockPublic.model_validate(c) for c in clocks],
    )


def _fields(work_order: WorkOrder, now: datetime) -> dict[str, object]:
    base = {name: getattr(work_order, name) for name in WorkOrderPublic.model_fields if hasattr(work_order, name)}
    return base | {"sla": _sla(work_order, now), "next_statuses": list(NEXT[WorkOrderStatus(work_order.status)])}


def _detail(work_order: WorkOrder, now: datetime) -> WorkOrderDetailPublic:
    return WorkOrderDetailPublic.model_validate(
        _fields(work_order, now)
        | {
            "timeline": [TimelineEntryPublic.model_validate(e) for e in work_order.timeline],
            "follow_ups": [FollowUpPublic.model_validate(f) for f in work_order.follow_ups],
        }
    )


@router.get("")
def read_work_orders(
    session: SessionDep,
    clock: ClockDep,
    status_: Annotated[
        list[WorkOrderStatus] | None, Query(alias="status", description="any of these statuses (repeatable)")
    ] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> WorkOrderPagePublic:
    page = list_work_orders(
        session,
        statuses=[s.value for s in status_] if status_ else None,
        site=site,
        device=device,
        limit=limit,
        offset=offset,
    )
    now = clock.now()
    items = [WorkOrderPublic.model_validate(_fields(wo, now)) for wo in page.items]
    return WorkOrderPagePublic(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{work_order_id}", responses=_NOT_FOUND)
def read_work_order(session: SessionDep, clock: ClockDep, work_order_id: WorkOrderId) -> WorkOrderDetailPublic:
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise _not_found(work_order_id)
    return _detail(work_order, clock.now())


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
    clock: ClockDep,
    user: CurrentUserDep,
    work_order_id: WorkOrderId,
    body: TransitionCreate,
) -> WorkOrderDetailPublic:
    """Move the work order to `to`; the answer is the work order after it, timeline included."""
    to = WorkOrderStatus(body.to)
    try:
        transition(
            engine, work_order_id, to, actor=user or body.actor, source=API_SOURCE, at=clock.now(), note=body.note
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
    work_order = get_work_order(session, work_order_id)
    assert work_order is not None, "work orders are never deleted by the API"
    return _detail(work_order, clock.now())


@router.post(
    "/{work_order_id}/follow-ups",
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, status.HTTP_409_CONFLICT: problem_response("the work order is not resolved yet")},
)
def create_follow_up(
    engine: EngineDep, clock: ClockDep, user: CurrentUserDep, work_order_id: WorkOrderId, body: FollowUpCreate
) -> FollowUpPublic:
    """Record a follow-up visit or call (回访) on a resolved or closed work order."""
    now = clock.now()
    try:
        follow_up = add_follow_up(
            engine,
            work_order_id,
            actor=user or body.actor,
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
        # Same shape as FastAPI's own 422s, so a client reads every bad field the same way.
        error = {"type": "value_error", "loc": ("body", "visited_at"), "msg": str(exc), "input": body.visited_at}
        raise RequestValidationError([error]) from exc
    return FollowUpPublic.model_validate(follow_up)
