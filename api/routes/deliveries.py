"""The delivery log of a work order: every message queued for it, per recipient and channel, with its attempts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select

from api.auth import PrincipalDep
from api.deps import SessionDep
from api.routes.work_orders import NOT_FOUND_OR_NOT_YOURS, WorkOrderId, visible
from api.schemas import _Public
from facmon.notifier.tables import Delivery

router = APIRouter(tags=["work orders"])


class DeliveryPublic(_Public):
    key: str
    recipient_id: str
    channel: str
    reason: str
    title: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    failed_at: datetime | None
    cancelled_at: datetime | None
    latency_s: float | None
    result: str  # delivered, failed, cancelled (the breach it escalated was withdrawn) or pending


def _public(row: Delivery) -> DeliveryPublic:
    result = (
        "delivered"
        if row.delivered_at
        else "failed"
        if row.failed_at
        else "cancelled"
        if row.cancelled_at
        else "pending"
    )
    return DeliveryPublic(
        key=row.key,
        recipient_id=row.recipient_id,
        channel=row.channel,
        reason=row.reason,
        title=str(row.payload["notification"]["title"]),
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=None if result != "pending" else row.next_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        cancelled_at=row.cancelled_at,
        latency_s=row.latency_s,
        result=result,
    )


@router.get(
    "/work-orders/{work_order_id}/deliveries",
    response_model=list[DeliveryPublic],
    responses=NOT_FOUND_OR_NOT_YOURS,
)
def list_deliveries(work_order_id: WorkOrderId, session: SessionDep, user: PrincipalDep) -> list[DeliveryPublic]:
    """Every message queued for the work order; technicians only for work orders of their sites."""
    visible(session, user, work_order_id)
    rows = session.execute(select(Delivery).where(Delivery.work_order_id == work_order_id).order_by(Delivery.id))
    return [_public(row) for row in rows.scalars()]
