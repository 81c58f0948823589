"""The audit log: every change made through the API or the command line, with who, what, when, from where, and
the thing before and after. Written in the caller's session, so it commits (or not) with the change itself."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from api.accounts.models import AuditEntry


def jsonable(value: Any) -> Any:
    """Plain JSON for a snapshot: datetimes as ISO text, enums as their value, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    role: str | None,
    action: str,
    target_type: str,
    target_id: str | int,
    client: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=at,
        actor=actor,
        role=role,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        client=client,
        before=None if before is None else jsonable(before),
        after=None if after is None else jsonable(after),
    )
    session.add(entry)
    return entry
