"""What the API returns: the Public schemas (Create/Update families come with the endpoints that need them).

They are separate from the ORM models on purpose: a column added to a table does not leak into the API, and the
API's shape is documented in OpenAPI from these classes alone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from facmon.model import DeviceKind
from rules.db import Priority, WorkOrderStatus


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class HealthPublic(_Public):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    version: str
    sites: int


class DevicePublic(_Public):
    site: str
    building: str
    id: str
    kind: DeviceKind
    model: str
    role: str | None
    installed_on: date | None
    registration_code: str | None
    # "unknown" until the rules worker has seen an event from the device.
    comm: Literal["ok", "lost", "unknown"]
    last_event_at: datetime | None
    last_event_type: str | None
    open_work_orders: int


class WorkOrderPublic(_Public):
    id: int
    site: str
    building: str
    device: str
    kind: str
    fault: str
    title: str
    priority: Priority
    status: WorkOrderStatus
    detected_at: datetime
    due_at: datetime
    occurrences: int
    last_occurrence_at: datetime
    fault_cleared_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TimelineEntryPublic(_Public):
    at: datetime
    type: str
    detail: dict[str, Any]


class WorkOrderDetailPublic(WorkOrderPublic):
    timeline: list[TimelineEntryPublic]


class WorkOrderPagePublic(_Public):
    items: list[WorkOrderPublic]
    total: int = Field(description="work orders matching the filters, across all pages")
    limit: int
    offset: int


class Problem(_Public):
    """An error, as RFC 9457 problem details (served as application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class ProblemError(Exception):
    """Raised by a route to answer with a problem document; api.app turns it into the response."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail)


PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a problem document."""
    return {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
