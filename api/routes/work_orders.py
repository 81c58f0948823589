"""GET /work-orders and /work-orders/{id}: the work orders the rules opened, newest first, with their timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import SessionDep
from api.schemas import (
    ProblemError,
    WorkOrderDetailPublic,
    WorkOrderPagePublic,
    WorkOrderPublic,
    problem_response,
)
from rules.db import WorkOrderStatus
from rules.store import get_work_order, list_work_orders

router = APIRouter(prefix="/work-orders", tags=["work orders"])


@router.get("")
def read_work_orders(
    session: SessionDep,
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
    return WorkOrderPagePublic(
        items=[WorkOrderPublic.model_validate(wo) for wo in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get("/{work_order_id}", responses={status.HTTP_404_NOT_FOUND: problem_response("no such work order")})
def read_work_order(session: SessionDep, work_order_id: Annotated[int, Path(ge=1)]) -> WorkOrderDetailPublic:
    work_order = get_work_order(session, work_order_id)
    if work_order is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Work order not found", f"no work order with id {work_order_id}")
    return WorkOrderDetailPublic.model_validate(work_order)
