"""The audit log, for admins: every change, newest first, filtered by actor, action, target or time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.accounts.models import AuditEntry
from api.deps import EngineDep
from api.schemas import Moment, Offset, _Public

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntryPublic(_Public):
    id: int
    at: datetime
    actor: str
    role: str | None
    action: str = Field(description="e.g. work_order.acknowledged, user.create, token.revoke, auth.login_failed")
    target_type: str
    target_id: str
    client: str | None = Field(description="the client's address")
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPagePublic(_Public):
    items: list[AuditEntryPublic]
    total: int
    limit: int
    offset: int


@router.get("")
def read_audit(
    engine: EngineDep,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64, description="exact, or a prefix ending in '.'")] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> AuditPagePublic:
    query = select(AuditEntry)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(
            AuditEntry.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else AuditEntry.action == action
        )
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if from_ is not None:
        query = query.where(AuditEntry.at >= from_)
    if to is not None:
        query = query.where(AuditEntry.at < to)
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
        items = [AuditEntryPublic.model_validate(e) for e in rows]
    return AuditPagePublic(items=items, total=total, limit=limit, offset=offset)
